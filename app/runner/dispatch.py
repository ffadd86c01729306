"""The reply sender of one owned inbox: the dispatcher's per-inbox loop.

It delivers the inbox's ``pending`` replies in order: ``sent`` with the platform's id,
``failed`` with the platform's code and text; a transient error (rate limit, network,
5xx) pauses the inbox's sending with backoff, ``retry_after`` honoured, and retries the
same reply until the give-up time. Sending is at least once: a process killed between
the platform's answer and the commit of ``sent`` leaves the reply pending, and the next
owner sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app.models import utcnow
from app.runner import leases
from app.runner.backoff import retry_delay
from app.tickets import outbox
from connectors.base import AuthFailed, PermanentSendError, RateLimited, TransientError

if TYPE_CHECKING:
    from app.runner.worker import InboxWorker

log = logging.getLogger("postroom.runner")

#: Replies read per batch.
BATCH = 20


class ReplySender:
    """Sends one inbox's pending replies while its worker runs."""

    def __init__(self, worker: InboxWorker) -> None:
        self.worker = worker
        #: Set when replies may be waiting (the runner's outbox poll, a pause ending).
        self.wake = asyncio.Event()
        #: ``time.monotonic()`` before which nothing is sent (after a transient error).
        self.pause_until = 0.0
        self._failures = 0

    async def run(self) -> None:
        """Send whenever woken (or every scan interval) until the inbox goes or stopping."""
        while not self.worker.gone and not self.worker.stopping.is_set():
            try:
                await self.worker.unless_stopped(
                    asyncio.wait_for(self.wake.wait(), self.worker.runner.settings.connector_scan_seconds))
            except TimeoutError:
                pass
            self.wake.clear()
            if self.worker.gone:
                return
            wait = self.pause_until - time.monotonic()
            if wait > 0:
                await self.worker.sleep(wait)
            try:
                while await self._send_batch():
                    pass
            except Exception:  # noqa: BLE001 - the database is away: the next wake retries
                log.exception("sending replies failed", extra={"inbox_id": self.worker.inbox_id})

    async def _send_batch(self) -> bool:
        """Send the pending replies, oldest first; True when more may be waiting."""
        runner = self.worker.runner
        db, store, settings = runner.db, runner.store, runner.settings
        async with db.read_session() as session:
            rows = await outbox.pending_replies(session, self.worker.inbox_id, limit=BATCH)
            pending = [(row.id, row.created_at, await outbox.outbound_for(session, store, row)) for row in rows]
        if not pending:
            return False
        loaded = self.worker.loaded or await self.worker.connector()
        if loaded is None:
            return False
        give_up = timedelta(seconds=settings.connector_send_give_up_seconds)
        for message_id, created_at, outbound in pending:
            if loaded.connector is None:
                await self._mark(outbox.mark_failed, message_id, f"not sent: {loaded.problem}")
                continue
            try:
                platform_id = await loaded.connector.send(outbound)
            except PermanentSendError as exc:
                await self._mark(outbox.mark_failed, message_id, f"{exc.code}: {exc.text}")
            except AuthFailed as exc:
                await self._mark(outbox.mark_failed, message_id, str(exc))
                await self.worker.backoff("auth_failed", str(exc), settings.connector_auth_retry_seconds)
            except Exception as exc:  # noqa: BLE001 - transient (rate limit, network, 5xx) or a bug
                text = str(exc) or type(exc).__name__
                if not isinstance(exc, TransientError):
                    log.exception("send failed", extra={"inbox_id": self.worker.inbox_id})
                if utcnow() - created_at > give_up:
                    await self._mark(outbox.mark_failed, message_id, f"not sent in time: {text}")
                    continue
                self._failures += 1
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                delay = retry_delay(self._failures, settings.connector_backoff_seconds, retry_after)
                self.pause_until = time.monotonic() + delay
                await leases.record(db, self.worker.inbox_id, runner.owner,
                                    last_error=f"send: {text}"[:2000], last_error_at=utcnow())
                self.wake.set()  # come back once the pause is over
                return False
            else:
                self._failures = 0
                await self._mark(outbox.mark_sent, message_id, platform_id)
        return len(pending) >= BATCH

    async def _mark(self, action: Any, message_id: int, value: str) -> None:
        async with self.worker.runner.db.write_session() as session:
            await action(session, message_id, value)
