"""One owned inbox: its pull loop (pulled channels) and its reply sender, under the process's lease.

The pull loop fetches from the saved cursor, stores the messages, the edits and the new
cursor in one transaction (fenced by the lease, see :func:`app.runner.leases.hold`), and on
errors backs off with jitter (``retry_after`` honoured) while the inbox's state row says
why. While a connector pages through a backlog (``fetch_ahead``), the next page is fetched
while the current one is stored; it is used only if the store saved the cursor it starts
from. The reply sender is :class:`app.runner.dispatch.ReplySender`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Inbox, utcnow
from app.runner import leases
from app.runner.backoff import retry_delay
from app.runner.dispatch import ReplySender
from app.tickets.edits import apply_edits
from app.tickets.ingest import ingest_messages
from app.tickets.quarantine import store_quarantined
from connectors.base import (
    AuthFailed,
    Connector,
    ConnectorConfig,
    InboundMessage,
    NotConfigured,
    PullConnector,
    RateLimited,
    TransientError,
)
from connectors.registry import connector_for

if TYPE_CHECKING:
    from app.runner.supervisor import ConnectorRunner

log = logging.getLogger("postroom.runner")

#: A quiet, healthy inbox writes ``last_fetch_at`` at most this often.
SUCCESS_WRITE_SECONDS = 60.0


@dataclass
class _Loaded:
    """The inbox's connector as last built, and what it was built from."""

    fingerprint: str
    connector: Connector | None
    problem: str | None = None


def _fingerprint(inbox: Inbox) -> str:
    """What the inbox's connector is built from; a change rebuilds it."""
    return json.dumps([inbox.settings, inbox.credentials_encrypted], sort_keys=True, default=str)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Stopped(Exception):
    """The worker was asked to stop while it waited."""


class InboxWorker:
    """Polls one inbox and sends its replies while this process holds its lease.

    Stopping is cooperative: :attr:`stopping` interrupts waits (long polls, sleeps,
    backoff) but never a database transaction, which is let finish, so no connection is
    abandoned in the middle of a write.
    """

    def __init__(self, runner: ConnectorRunner, inbox_id: int) -> None:
        self.runner = runner
        self.inbox_id = inbox_id
        self.stopping = asyncio.Event()
        self.sender = ReplySender(self)
        self._loaded: _Loaded | None = None
        self._load_lock = asyncio.Lock()
        self._gone = False
        self._failures = 0
        self._pause_until = 0.0
        self._last_success_write = 0.0
        self._state = "starting"
        #: A fetch started ahead: (connector, the cursor it fetches from, its task).
        self._ahead: tuple[PullConnector, dict[str, Any], asyncio.Task[Any]] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Both loops, until the inbox is deleted, the lease is lost, or :attr:`stopping`."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._until_stopped(self._pull_loop()))
                group.create_task(self._until_stopped(self.sender.run()))
        finally:
            self._drop_ahead()
            if self._loaded is not None and self._loaded.connector is not None:
                await self._loaded.connector.aclose()

    async def connector(self) -> _Loaded | None:
        """The connector for the inbox's current settings, rebuilt when they change
        (None once the inbox is gone)."""
        async with self._load_lock:
            return await self._reload()

    async def _reload(self) -> _Loaded | None:
        async with self.runner.db.read_session() as session:
            inbox = await session.get(Inbox, self.inbox_id)
            if inbox is None:
                self._gone = True
                return None
            fingerprint = _fingerprint(inbox)
            if self._loaded is not None and self._loaded.fingerprint == fingerprint:
                return self._loaded
            old = self._loaded
            self._loaded = self._build(inbox, fingerprint)
        if old is not None:
            self._pause_until = self.sender.pause_until = 0.0  # new settings: try at once
            self._failures = 0
            if old.connector is not None:
                await old.connector.aclose()
        return self._loaded

    def _build(self, inbox: Inbox, fingerprint: str) -> _Loaded:
        cls = connector_for(inbox.channel_type)
        if cls is None:
            return _Loaded(fingerprint, None, f"no connector for channel type {inbox.channel_type}")
        try:
            secrets = self.runner.box.open(inbox.credentials_encrypted) if inbox.credentials_encrypted else {}
            config = ConnectorConfig(inbox_id=inbox.id, settings=dict(inbox.settings or {}), secrets=secrets,
                                     save_secrets=self._save_secrets)
            return _Loaded(fingerprint, cls(config))
        except NotConfigured as exc:
            return _Loaded(fingerprint, None, str(exc))
        except Exception as exc:  # noqa: BLE001 - unreadable credentials, bad settings
            return _Loaded(fingerprint, None, f"{type(exc).__name__}: {exc}")

    async def _save_secrets(self, values: dict[str, Any]) -> None:
        """Store secrets the connector changed (refreshed tokens), encrypted, and keep the
        connector that holds them: it is not rebuilt for its own change. Credentials an
        admin changed meanwhile win (the connector is rebuilt from them)."""
        async with self.runner.db.write_session() as session:
            inbox = await session.get(Inbox, self.inbox_id, with_for_update=True)
            loaded = self._loaded
            if inbox is None or loaded is None or _fingerprint(inbox) != loaded.fingerprint:
                return
            current = self.runner.box.open(inbox.credentials_encrypted) if inbox.credentials_encrypted else {}
            inbox.credentials_encrypted = self.runner.box.seal({**current, **values})
            await session.flush()
            loaded.fingerprint = _fingerprint(inbox)

    @property
    def gone(self) -> bool:
        """The inbox was deleted."""
        return self._gone

    @property
    def loaded(self) -> _Loaded | None:
        """The connector as last built (None before the first load)."""
        return self._loaded

    async def _until_stopped(self, loop: Any) -> None:
        try:
            await loop
        except Stopped:
            pass

    async def unless_stopped(self, awaitable: Any) -> Any:
        """Await ``awaitable``; cancel it and raise :class:`Stopped` when asked to stop."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped

    async def sleep(self, seconds: float) -> None:
        """Sleep; :class:`Stopped` when asked to stop meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))
        except TimeoutError:
            return
        raise Stopped

    # -- pulling -----------------------------------------------------------------------
    async def _pull_loop(self) -> None:
        while not self.stopping.is_set() and not self._gone:
            try:
                await self._pull_once()
            except (Stopped, asyncio.CancelledError):
                raise
            except leases.LeaseLost:
                log.warning("inbox %s: lease lost, stopping", self.inbox_id)
                self.stopping.set()
            except Exception:  # noqa: BLE001 - e.g. the database is away: try again shortly
                log.exception("pull loop failed", extra={"inbox_id": self.inbox_id})
                await self.sleep(self.runner.settings.connector_scan_seconds)

    async def _pull_once(self) -> None:
        """Fetch once, or wait a little when the inbox is switched off or backing off."""
        settings = self.runner.settings
        loaded = await self.connector()
        if loaded is None:
            return
        if loaded.connector is None:
            await self._set_state("disabled", loaded.problem)
            await self.sleep(settings.connector_scan_seconds)
            return
        if not isinstance(loaded.connector, PullConnector):
            # A push channel: its platform calls the webhook; this worker only sends replies.
            await self._set_state("connected", None)
            await self.sleep(settings.connector_scan_seconds)
            return
        wait = self._pause_until - time.monotonic()
        if wait > 0:  # re-read the settings meanwhile: new credentials end the pause
            await self.sleep(min(wait, settings.connector_scan_seconds))
            return
        await self._fetch_once(loaded.connector)

    async def _fetch_once(self, connector: PullConnector) -> None:
        schedule = self.runner.settings.connector_backoff_seconds
        cursor = await leases.load_cursor(self.runner.db, self.inbox_id)
        try:
            messages, new_cursor = await self.unless_stopped(self._fetch(connector, cursor))
        except Stopped:
            raise
        except RateLimited as exc:
            self._failures += 1
            await self.backoff("backing_off", str(exc), retry_delay(self._failures, schedule, exc.retry_after))
        except AuthFailed as exc:
            self._failures += 1
            await self.backoff("auth_failed", str(exc), self.runner.settings.connector_auth_retry_seconds)
        except NotConfigured as exc:
            await self.backoff("disabled", str(exc), self.runner.settings.connector_scan_seconds)
        except (TransientError, TimeoutError) as exc:
            self._failures += 1
            text = str(exc) or "fetch timed out"
            await self.backoff("backing_off", text, retry_delay(self._failures, schedule))
        except Exception as exc:  # noqa: BLE001 - a connector bug must not stop the runner
            log.exception("fetch failed", extra={"inbox_id": self.inbox_id})
            self._failures += 1
            await self.backoff("backing_off", f"{type(exc).__name__}: {exc}", retry_delay(self._failures, schedule))
        else:
            quarantined = connector.drain_quarantined()
            if connector.fetch_ahead(new_cursor):
                task = asyncio.ensure_future(asyncio.wait_for(connector.fetch(new_cursor), connector.fetch_timeout))
                task.add_done_callback(_retrieve)  # a dropped fetch's error is not worth a warning
                self._ahead = (connector, new_cursor, task)
            await self._store(messages, cursor, new_cursor, quarantined)

    def _fetch(self, connector: PullConnector, cursor: dict[str, Any]) -> Awaitable[Any]:
        """The fetch from ``cursor``: the one started ahead when it fetches from there."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            if ahead[0] is connector and ahead[1] == cursor:
                return ahead[2]
            ahead[2].cancel()  # the store before it failed, or the connector was rebuilt
        return asyncio.wait_for(connector.fetch(cursor), connector.fetch_timeout)

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[2].cancel()
            self._ahead = None

    async def _store(self, messages: list[InboundMessage], cursor: dict[str, Any], new_cursor: dict[str, Any],
                     quarantined: list[Any] | None = None) -> None:
        """Messages, edits and the cursor in one transaction, fenced by the lease."""
        fresh = [m for m in messages if not m.edited]
        edits = [m for m in messages if m.edited]
        now = utcnow()
        quiet = not messages and not quarantined and new_cursor == cursor
        if quiet and self._state == "connected" and time.monotonic() - self._last_success_write < SUCCESS_WRITE_SECONDS:
            self._failures = 0
            return
        owner = self.runner.owner

        async def also(session: AsyncSession) -> None:
            if quarantined:  # unreadable items move past with the cursor, never lost
                await store_quarantined(session, self.runner.store, self.inbox_id, quarantined)
            if edits:
                await apply_edits(session, edits)
            if new_cursor != cursor:
                await leases.save_cursor(session, self.inbox_id, new_cursor)
            await leases.hold(session, self.inbox_id, owner, state="connected", failures=0,
                              last_fetch_at=now, next_attempt_at=None)

        try:
            if fresh:
                await ingest_messages(self.runner.db, fresh, store=self.runner.store,
                                      reopen_window_days=self.runner.settings.reopen_window_days, also=also)
            else:
                async with self.runner.db.write_session() as session:
                    await also(session)
        except leases.LeaseLost:
            raise  # the new owner fetches these again from the old cursor
        except Exception as exc:  # noqa: BLE001 - e.g. the database is away: retry the fetch
            log.exception("storing fetched messages failed", extra={"inbox_id": self.inbox_id})
            self._failures += 1
            delay = retry_delay(self._failures, self.runner.settings.connector_backoff_seconds)
            await self.backoff("backing_off", f"storing failed: {type(exc).__name__}: {exc}", delay)
            return
        self._failures = 0
        self._state = "connected"
        self._last_success_write = time.monotonic()

    async def backoff(self, state: str, error: str, delay: float) -> None:
        """Pause fetching for ``delay`` seconds and record why on the state row."""
        self._pause_until = time.monotonic() + delay
        log.warning("inbox %s %s for %.1fs: %s", self.inbox_id, state, delay, error)
        self._state = state
        await leases.record(self.runner.db, self.inbox_id, self.runner.owner, state=state,
                            last_error=error[:2000], last_error_at=utcnow(),
                            next_attempt_at=leases.after(delay), failures=self._failures)

    async def _set_state(self, state: str, error: str | None) -> None:
        if self._state == state:
            return
        self._state = state
        values: dict[str, Any] = {"state": state, "next_attempt_at": None}
        if error:
            values.update(last_error=error[:2000], last_error_at=utcnow())
        await leases.record(self.runner.db, self.inbox_id, self.runner.owner, **values)
