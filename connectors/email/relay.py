"""Marketplace mail relays: Amazon and Walmart buyer messages reach the seller by e-mail.

Amazon has no API to read buyer messages: each buyer writes from an anonymised alias
``…@marketplace.amazon.<tld>`` and the seller answers that alias from the address
registered in Seller Central (Seller Central help, "Buyer-Seller Messaging"; see
``docs/channels/email.md``). Walmart relays customer mail the same way. An inbox of
channel type ``amazon`` or ``walmart`` reads its mailbox like any e-mail inbox, and:

* relay mail (from a relay alias) gets ``marketplace`` and the ``order_id`` found in its
  subject or text as conversation attributes, and one conversation per buyer alias and
  order;
* the marketplace's own notices (``donotreply@amazon.com``, order and account
  notifications) are ``automatic``: stored, no clock, and never answered — a reply
  addressed to anything but a relay alias is refused before it is sent.

The relay and notice domains are settings (``relay_domains``, ``notice_domains``), so a
marketplace that changes them needs no release.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import InboundMessage
from connectors.email.threading import thread_key_for


@dataclass(frozen=True)
class Relay:
    """How one marketplace's mail relay looks."""

    marketplace: str
    #: Domains (and their subdomains) buyers' aliases are on.
    relay_domains: tuple[str, ...]
    #: Domains the marketplace's own notices come from (never answered).
    notice_domains: tuple[str, ...]
    order_id: re.Pattern[str]


RELAYS: dict[str, Relay] = {
    "amazon": Relay(
        "amazon",
        relay_domains=("marketplace.amazon.com", "marketplace.amazon.co.uk", "marketplace.amazon.de",
                       "marketplace.amazon.fr", "marketplace.amazon.it", "marketplace.amazon.es",
                       "marketplace.amazon.co.jp", "marketplace.amazon.ca", "marketplace.amazon.com.mx",
                       "marketplace.amazon.com.au", "marketplace.amazon.in", "marketplace.amazon.sg",
                       "marketplace.amazon.ae", "marketplace.amazon.sa", "marketplace.amazon.nl",
                       "marketplace.amazon.se", "marketplace.amazon.pl", "marketplace.amazon.com.tr",
                       "marketplace.amazon.com.br", "marketplace.amazon.com.be"),
        notice_domains=("amazon.com", "amazon.co.uk", "amazon.de", "amazon.fr", "amazon.it", "amazon.es",
                        "amazon.co.jp", "amazon.ca", "amazon.com.mx", "amazon.com.au", "amazon.in",
                        "amazon.sg", "amazon.ae", "amazon.sa", "amazon.nl", "amazon.se", "amazon.pl",
                        "amazon.com.tr", "amazon.com.br", "amazon.com.be"),
        # Amazon order ids: 3-7-7 digits (111-1234567-1234567).
        order_id=re.compile(r"\b(\d{3}-\d{7}-\d{7})\b"),
    ),
    "walmart": Relay(
        "walmart",
        relay_domains=("relay.walmart.com",),
        notice_domains=("walmart.com", "email.walmart.com"),
        # Walmart purchase order / customer order numbers: 13 to 15 digits after "order".
        order_id=re.compile(r"(?i)\border\s*(?:number|no\.?|#|id)?\s*[:#]?\s*(\d{13,15})\b"),
    ),
}


def relay_for(marketplace: str, settings: Mapping[str, Any]) -> Relay:
    """The relay of a marketplace, with the inbox's own domain lists when it sets them."""
    base = RELAYS[marketplace]
    relay_domains = _domains(settings.get("relay_domains")) or base.relay_domains
    notice_domains = _domains(settings.get("notice_domains")) or base.notice_domains
    return Relay(marketplace, relay_domains, notice_domains, base.order_id)


def _domains(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    return tuple(str(d).strip().lower() for d in items if str(d).strip())


def _on(address: str, domains: tuple[str, ...]) -> bool:
    domain = address.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def is_relay_address(relay: Relay, address: str) -> bool:
    """Whether ``address`` is a buyer's relay alias (the only addresses a reply may go to)."""
    return _on(address, relay.relay_domains)


def apply_relay(relay: Relay, message: InboundMessage) -> InboundMessage:
    """Mark relay mail with its marketplace and order; notices as automatic."""
    sender = (message.sender.email or message.sender.source_id).lower()
    if is_relay_address(relay, sender):
        text = message.metadata.get("full_text") or message.text or ""
        found = relay.order_id.search(f"{message.subject or ''}\n{text}")
        attributes: dict[str, Any] = {"marketplace": relay.marketplace}
        if found:
            attributes["order_id"] = found.group(1)
            # One conversation per buyer and order: the relay starts a new mail thread
            # for many messages about the same order.
            message.thread_key = thread_key_for(f"{relay.marketplace}:{sender}:{found.group(1)}")
        message.conversation_attributes = {**message.conversation_attributes, **attributes}
        message.metadata["relay"] = relay.marketplace
    elif _on(sender, relay.notice_domains):
        message.automatic = True
        message.metadata["automatic"] = "marketplace_notice"
    return message
