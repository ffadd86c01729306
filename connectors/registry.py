"""Channel type -> connector class. Adding a channel is one package and one line here.

The runner polls every inbox whose channel type is listed; replies on these channel types
are stored ``pending`` and sent by the dispatcher (``app.tickets.replies``).
"""

from __future__ import annotations

from connectors.base import PullConnector
from connectors.telegram import TelegramConnector

CONNECTORS: dict[str, type[PullConnector]] = {
    "telegram": TelegramConnector,
}


def connector_for(channel_type: str) -> type[PullConnector] | None:
    """The connector class of a channel type, or None when Postroom does not pull it."""
    return CONNECTORS.get(channel_type)


def pulled_channel_types() -> frozenset[str]:
    """Channel types the runner polls."""
    return frozenset(CONNECTORS)


def dispatched_channel_types() -> frozenset[str]:
    """Channel types whose replies the dispatcher sends."""
    return frozenset(kind for kind, cls in CONNECTORS.items() if cls.dispatches_replies)
