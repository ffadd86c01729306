"""The narrow interface every connector implements (push channels: ``connectors.base.push``).

A connector talks to one platform for one inbox. It never touches the database: the
runner (``app/runner``) gives it the inbox's settings and secrets, a cursor to fetch
from, and the replies to send, and stores what it returns.

* ``fetch(cursor)`` returns the messages after ``cursor`` and the cursor that follows
  them. The runner saves that cursor in the same transaction as the messages, so a
  crash replays them (and ingest's unique index makes the replay harmless). A fetch may
  long-poll; it must return within ``fetch_timeout`` seconds.
* ``send(message)`` delivers one reply and returns the platform's id for it.

Both raise the typed errors of :mod:`connectors.base.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from connectors.base.errors import NotConfigured
from connectors.base.messages import InboundMessage, OutboundMessage

#: A connector's position in its source, as JSON (Telegram: ``{"offset": 42}``).
Cursor = dict[str, Any]


@dataclass(frozen=True)
class ConnectorConfig:
    """What a connector knows about its inbox: id, plain settings, decrypted secrets."""

    inbox_id: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    #: Stores changed secrets (refreshed tokens) encrypted with the inbox's credentials;
    #: given by the runner, None elsewhere.
    save_secrets: Callable[[dict[str, Any]], Awaitable[None]] | None = field(default=None, compare=False)

    def secret(self, name: str) -> str:
        """A required secret; :class:`NotConfigured` when it is missing or blank."""
        value = self.secrets.get(name)
        if not value or not str(value).strip():
            raise NotConfigured(f"{name} is not set")
        return str(value).strip()


class Connector(ABC):
    """What every connector does: deliver replies for one inbox (pull and push alike)."""

    #: The inbox channel type this connector serves (``Inbox.channel_type``).
    channel_type: ClassVar[str]
    #: Warn (an ``inbox.connection_warning`` event) when the inbox has not fetched for
    #: this long, because the platform drops what it holds after a while.
    stale_after: ClassVar[timedelta | None] = None
    #: Replies on this channel are sent by the dispatcher (stored ``pending`` first).
    dispatches_replies: ClassVar[bool] = True

    def __init__(self, config: ConnectorConfig) -> None:
        """Check the configuration; raise :class:`NotConfigured` when it is incomplete."""
        self.config = config

    @abstractmethod
    async def send(self, message: OutboundMessage) -> str:
        """Deliver a reply; returns the platform's message id."""

    async def aclose(self) -> None:
        """Release connections (called when the runner lets the inbox go)."""


class PullConnector(Connector):
    """A channel whose messages Postroom fetches (long polling, paging through an API)."""

    @property
    def fetch_timeout(self) -> float:
        """The longest a ``fetch`` may take (long polls included)."""
        return 60.0

    @abstractmethod
    async def fetch(self, cursor: Cursor) -> tuple[list[InboundMessage], Cursor]:
        """Messages after ``cursor``, and the cursor to fetch from next time."""

    def drain_quarantined(self) -> list[Any]:
        """Items the last ``fetch`` could not read (``connectors.base.push.Quarantined``);
        the runner stores them in the transaction that saves the cursor past them."""
        return []

    def fetch_ahead(self, cursor: Cursor) -> bool:
        """Whether the runner may start fetching from ``cursor`` while it stores the page
        that led there: true while the connector pages through a backlog, where a fetch
        depends on nothing but its cursor. The fetched page is used only if the cursor
        was saved; otherwise it is dropped and fetched again."""
        return False


def redact(text: str, secrets: Iterable[Any]) -> str:
    """``text`` with every secret value replaced, for error messages and logs."""
    for secret in secrets:
        value = str(secret or "")
        if len(value) >= 4:
            text = text.replace(value, "<redacted>")
    return text
