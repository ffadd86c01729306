"""Channel type -> connector class. Adding a channel is one package and one line here.

The runner polls every inbox of a pulled channel type (a ``PullConnector``) and receives
push channels' webhooks at ``/webhooks/<channel>/<inbox identifier>`` (a
``PushConnector``); replies on every listed channel type are stored ``pending`` and sent
by the dispatcher (``app.tickets.replies``).
"""

from __future__ import annotations

from connectors.base import Connector, PullConnector, PushConnector
from connectors.email import AmazonRelayConnector, EmailConnector, WalmartRelayConnector
from connectors.line import LineConnector
from connectors.meta import FacebookConnector, InstagramConnector
from connectors.ebay import EbayConnector
from connectors.lazada import LazadaConnector
from connectors.shopee import ShopeeConnector
from connectors.telegram import TelegramConnector
from connectors.tiktok_shop import TikTokShopConnector
from connectors.whatsapp import WhatsAppConnector

CONNECTORS: dict[str, type[Connector]] = {
    "telegram": TelegramConnector,
    "email": EmailConnector,
    "amazon": AmazonRelayConnector,  # buyer messages arrive by e-mail relay only
    "walmart": WalmartRelayConnector,
    "facebook": FacebookConnector,
    "instagram": InstagramConnector,
    "whatsapp": WhatsAppConnector,
    "line": LineConnector,
    "shopee": ShopeeConnector,
    "lazada": LazadaConnector,
    "tiktok_shop": TikTokShopConnector,
    "ebay": EbayConnector,
}


def connector_for(channel_type: str) -> type[Connector] | None:
    """The connector class of a channel type, or None when Postroom has none."""
    return CONNECTORS.get(channel_type)


def push_connector_for(channel_type: str) -> type[PushConnector] | None:
    """The connector class of a push channel type (webhooks), or None."""
    cls = CONNECTORS.get(channel_type)
    return cls if cls is not None and issubclass(cls, PushConnector) else None


def pulled_channel_types() -> frozenset[str]:
    """Channel types the runner polls."""
    return frozenset(kind for kind, cls in CONNECTORS.items() if issubclass(cls, PullConnector))


def push_channel_types() -> frozenset[str]:
    """Channel types whose platforms call Postroom's webhook."""
    return frozenset(kind for kind, cls in CONNECTORS.items() if issubclass(cls, PushConnector))


def runner_channel_types() -> frozenset[str]:
    """Channel types whose inboxes the runner holds leases on: polled or dispatched."""
    return pulled_channel_types() | dispatched_channel_types()


def dispatched_channel_types() -> frozenset[str]:
    """Channel types whose replies the dispatcher sends."""
    return frozenset(kind for kind, cls in CONNECTORS.items() if cls.dispatches_replies)
