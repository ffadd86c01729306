"""The marketplaces' reply rules and the messengers' reply windows, as data.

Sources (see docs/sla.md for the pages): Amazon Seller Central help 202152030 and
200549770 (24 h including weekends and holidays; auto-responders are not a response;
"no response needed"); Walmart Marketplace Customer Care policy (48 h including
weekends); Etsy Star Seller (first message of each thread within 24 h); Shopee and
TikTok Shop chat response rate (12 h; auto-replies don't count); Lazada same-day cycle
(18:00 yesterday–18:00 today answered by 19:00; holidays excluded); Mercado Libre
exclusion rules (8 business hours, 21:00–08:00 not counted); eBay Money Back
Guarantee (return and item-not-received requests: 3 business days); Meta Messenger
Platform policy (24 h standard window, HUMAN_AGENT up to 7 days, people only);
WhatsApp Cloud API (24 h customer service window, templates after).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from app.sla.calendar import CALENDAR, BusinessCalendar, Clock, Holiday, daily_cycle_due

HOUR = 3600.0


@dataclass(frozen=True)
class MarketplaceRule:
    """One marketplace's reply obligation."""

    kind: str
    label: str
    seconds: float
    #: ``every_message``: the oldest unanswered buyer message starts the clock and one
    #: reply answers all before it; ``first_in_thread``: only a conversation's first
    #: buyer message counts.
    scope: str = "every_message"
    #: ``calendar``, ``business`` (``business_hours`` below) or ``daily_cycle`` (Lazada).
    clock: str = "calendar"
    business_hours: tuple[tuple[str, str], ...] = ()
    business_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    #: Only when the conversation's custom attributes mark it as such (eBay requests).
    requires_attribute: tuple[str, tuple[str, ...]] | None = None
    source: str = ""

    def due(self, received: datetime, *, timezone: str, holidays: tuple[Holiday, ...]) -> datetime:
        """When a buyer message received at ``received`` must be answered."""
        if self.clock == "daily_cycle":
            return daily_cycle_due(received, timezone=timezone, cutoff=time(18), due=time(19), holidays=holidays)
        return self.counting_clock(timezone, holidays).add(received, self.seconds)

    def counting_clock(self, timezone: str, holidays: tuple[Holiday, ...]) -> Clock:
        """The clock response times are measured in."""
        if self.clock == "business":
            return BusinessCalendar(timezone, {d: list(self.business_hours) for d in self.business_days}, holidays)
        return CALENDAR


MARKETPLACE_RULES: dict[str, MarketplaceRule] = {
    "amazon": MarketplaceRule("amazon", "Amazon 24-hour reply", 24 * HOUR,
                              source="sellercentral.amazon.com/help/hub/reference/202152030"),
    "walmart": MarketplaceRule("walmart", "Walmart 48-hour reply", 48 * HOUR,
                               source="marketplacelearn.walmart.com Customer Care policy"),
    "etsy": MarketplaceRule("etsy", "Etsy first message 24 h", 24 * HOUR, scope="first_in_thread",
                            source="help.etsy.com Star Seller program"),
    "shopee": MarketplaceRule("shopee", "Shopee 12-hour chat response", 12 * HOUR,
                              source="Shopee Seller Education Hub: Chat Response Rate"),
    "tiktok_shop": MarketplaceRule("tiktok_shop", "TikTok Shop 12-hour response", 12 * HOUR,
                                   source="TikTok Shop Seller University: response rate"),
    "lazada": MarketplaceRule("lazada", "Lazada same-day cycle (19:00)", 0, clock="daily_cycle",
                              source="Lazada Seller Center: Chat Response Rate (same-day cycle)"),
    "mercado_libre": MarketplaceRule("mercado_libre", "Mercado Libre 8 business hours", 8 * HOUR,
                                     scope="first_in_thread", clock="business",
                                     business_hours=(("08:00", "21:00"),),
                                     source="vendedores.mercadolibre.com.ar reglas de exclusión"),
    "ebay": MarketplaceRule("ebay", "eBay request 3 business days", 3 * 24 * HOUR, clock="business",
                            business_hours=(("00:00", "24:00"),), business_days=("mon", "tue", "wed", "thu", "fri"),
                            requires_attribute=("ebay_request", ("return", "item_not_received")),
                            source="ebay.com/help 4667 (Money Back Guarantee requests)"),
}


@dataclass(frozen=True)
class ReplyWindow:
    """When a channel stops accepting a free-form reply."""

    seconds: float
    #: After the window: people (not bots) may still answer with this tag until ``tag_seconds``.
    human_tag: str | None = None
    tag_seconds: float = 0.0
    #: After the window: only this kind of message (WhatsApp templates).
    after: str | None = None
    rule: str = ""


WINDOWS: dict[str, ReplyWindow] = {
    "facebook": ReplyWindow(24 * HOUR, human_tag="HUMAN_AGENT", tag_seconds=7 * 24 * HOUR,
                            rule="Messenger allows a free reply within 24 hours of the customer's last message, "
                                 "and a person's reply tagged HUMAN_AGENT within 7 days"),
    "instagram": ReplyWindow(24 * HOUR, human_tag="HUMAN_AGENT", tag_seconds=7 * 24 * HOUR,
                             rule="Instagram allows a free reply within 24 hours of the customer's last message, "
                                  "and a person's reply tagged HUMAN_AGENT within 7 days"),
    "whatsapp": ReplyWindow(24 * HOUR, after="template",
                            rule="WhatsApp allows free-form messages within 24 hours of the customer's last "
                                 "message or call; after that only approved templates"),
}
#: A Click-to-Messenger ad opens a 7-day standard window.
AD_WINDOW_SECONDS = 7 * 24 * HOUR


def window_for(channel_type: str, inbox_settings: dict, conversation_attributes: dict) -> ReplyWindow | None:
    """The reply window of a conversation's channel, or None when it has none."""
    if channel_type == "api":
        hours = inbox_settings.get("agent_reply_time_window")
        if hours:
            return ReplyWindow(float(hours) * HOUR, rule=f"this API inbox allows replies within {hours} hours "
                                                         "of the customer's last message")
        return None
    window = WINDOWS.get(channel_type)
    if window and channel_type in ("facebook", "instagram") and conversation_attributes.get("entry_point") == "ad":
        return ReplyWindow(AD_WINDOW_SECONDS, window.human_tag, window.tag_seconds, window.after,
                           window.rule.replace("24 hours", "7 days (conversation started from an ad)"))
    return window


def closes(last_incoming: datetime, window: ReplyWindow) -> datetime:
    """When the free-reply window after a customer message closes."""
    return last_incoming + timedelta(seconds=window.seconds)
