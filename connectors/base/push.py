"""Push-style channels: the platform calls Postroom's webhook instead of being polled.

One pattern for every push channel (``app/api/push.py`` runs it):

1. the request's **raw body** is checked against the platform's signature header
   (:meth:`PushConnector.verify`, constant-time) before anything is parsed; a failure
   stores nothing and answers 401 (no signature) or 403 (a wrong one);
2. the body is parsed into a :class:`WebhookBatch`: messages for ``app.tickets.ingest``
   (whose ``UNIQUE(inbox_id, source_id)`` turns redeliveries into no-ops), delivery
   receipts for our replies, contact events (follow / unfollow), and the events that
   could not be understood, which are quarantined rather than dropped; files a platform
   names by id only are fetched then (:meth:`PushConnector.download_media`,
   ``connectors.base.media``), and one that cannot be fetched is noted on its message;
3. all of it is stored in one transaction and the platform gets its 200 at once.

Replies go out through the runner's dispatcher like any other channel's: a push
connector implements ``send`` too, it is simply never polled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from connectors.base.connector import Connector
from connectors.base.errors import ConnectorError
from connectors.base.media import Media, MediaUnavailable
from connectors.base.messages import InboundMessage, SenderIdentity


class SignatureInvalid(ConnectorError):
    """The request did not prove it came from the platform (401: missing, 403: wrong)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.status_code = 401 if missing else 403


class HandshakeRefused(ConnectorError):
    """A subscription handshake (Meta's ``hub.challenge``) with the wrong token or mode."""


@dataclass(frozen=True)
class WebhookRequest:
    """One webhook call as received: the raw body, lower-cased headers, query parameters."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    #: The URL the call was made to (Shopee signs it along with the body).
    url: str = ""


ReceiptStatus = Literal["sent", "delivered", "read", "failed"]


@dataclass
class Receipt:
    """The platform's news about replies we sent.

    Either ``source_ids`` names the messages (WhatsApp statuses, Messenger delivery
    ``mids``), or ``watermark`` covers every reply sent to ``recipient`` up to that time
    (Messenger's read receipts).
    """

    status: ReceiptStatus
    source_ids: list[str] = field(default_factory=list)
    recipient: str | None = None
    watermark: datetime | None = None
    #: ``"<code>: <title>"`` of a failed delivery.
    error: str | None = None


@dataclass
class ContactEvent:
    """Something a contact did that is not a message (LINE follow / unfollow)."""

    kind: Literal["follow", "unfollow"]
    sender: SenderIdentity
    at: datetime | None = None


@dataclass
class Quarantined:
    """A signed event Postroom could not turn into anything: kept, with the reason."""

    reason: str
    raw: Any
    #: Where it came from, when the platform names it (else a digest of ``raw`` is used).
    source_ref: str | None = None


@dataclass
class WebhookBatch:
    """What one webhook call carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    contacts: list[ContactEvent] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    #: Events understood and deliberately ignored (echoes of our own replies, typing…).
    skipped: int = 0


class PushConnector(Connector):
    """A channel whose platform calls ``POST /webhooks/<channel>/<inbox identifier>``."""

    #: Plain settings made up when the inbox is created (Meta's ``verify_token``), shown
    #: by the inbox API for the administrator to paste into the platform's console.
    generated_settings: ClassVar[tuple[str, ...]] = ()

    def handshake(self, query: Mapping[str, str]) -> str:
        """Answer a subscription check (the body to return); :class:`HandshakeRefused`
        when the channel has none or the request is not right."""
        raise HandshakeRefused("this channel has no subscription handshake")

    @abstractmethod
    def verify(self, request: WebhookRequest) -> None:
        """Check the signature of the raw body; :class:`SignatureInvalid` when it fails."""

    @abstractmethod
    def parse(self, request: WebhookRequest) -> WebhookBatch:
        """The batch a verified request carries (never raises for one bad event)."""

    #: Answer a verified call with an empty 200 body instead of the storage summary
    #: (Shopee asks for "2xx with an empty body").
    empty_acknowledgement: ClassVar[bool] = False

    async def complete(self, batch: WebhookBatch) -> None:
        """Fill in what parsing could not (a marketplace's image bytes) before storing."""

    @property
    def fetches_profiles(self) -> bool:
        """Whether :meth:`profile` can ask the platform anything (credentials permitting)."""
        return False

    async def profile(self, sender_id: str) -> SenderIdentity | None:
        """The platform's profile of a sender Postroom has not met yet (None: unknown)."""
        return None

    #: How notes about files that could not be fetched name the platform.
    platform_name: ClassVar[str] = "the platform"

    async def download_media(self, platform_id: str) -> Media:
        """The bytes of a file the webhook named by ``platform_id`` only (channels whose
        parsers set ``InboundAttachment.platform_id``); :class:`MediaUnavailable` when the
        platform will not give it."""
        raise MediaUnavailable("this channel cannot fetch files by id")


def json_body(raw: bytes, batch: WebhookBatch) -> Any | None:
    """The decoded body of a webhook call; None (the body quarantined in ``batch``) when it
    is not JSON."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        batch.quarantined.append(Quarantined(f"body is not JSON: {exc}", raw.decode("utf-8", "replace")))
        return None


def hmac_sha256_matches(secret: str, body: bytes, provided: str | None, *,
                        encoding: Literal["hex", "base64"], prefix: str = "") -> bool:
    """Whether ``provided`` is ``prefix`` + HMAC-SHA256(secret, body), compared in
    constant time (``hmac.compare_digest``)."""
    if not provided or not secret:
        return False
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    expected = prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
    return hmac.compare_digest(expected.encode(), provided.strip().encode())


def require_signature(secret: str, request: WebhookRequest, header: str, *,
                      encoding: Literal["hex", "base64"], prefix: str = "") -> None:
    """:class:`SignatureInvalid` unless ``header`` carries the body's HMAC-SHA256."""
    provided = request.headers.get(header.lower())
    if not provided:
        raise SignatureInvalid(f"{header} is missing", missing=True)
    if not hmac_sha256_matches(secret, request.body, provided, encoding=encoding, prefix=prefix):
        raise SignatureInvalid(f"{header} does not match the body")
