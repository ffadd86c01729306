"""The connector runner of one process: claims inboxes, keeps their leases, runs them.

Every ``POSTROOM_CONNECTOR_SCAN_SECONDS`` a pass

1. renews this process's leases (the heartbeat) and stops the workers of leases it lost;
2. adds state rows for new inboxes of pulled channel types, and claims free or expired
   leases (see :mod:`app.runner.leases`), starting an :class:`InboxWorker` for each;
3. emits ``inbox.connection_warning`` once per silence for inboxes that have not fetched
   for longer than their connector's ``stale_after`` (Telegram: 20 hours, because it
   drops undelivered updates after 24).

Besides, an outbox poll wakes the send loop of every owned inbox with ``pending``
replies, through the partial index ``ix_messages_outbox``: at once when a transaction
that left a reply ``pending`` commits in any process (the hub's ``outbox`` topic) and at
least every second otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import select

from app.auth.secrets_box import SecretsBox
from app.config import Settings
from app.db import Database, queue_scan
from app.models import Message
from app.runner import leases
from app.runner.stale import warn_stale_inboxes
from app.runner.worker import InboxWorker
from app.storage import FileStore
from app.waits import wake_or_timeout
from connectors.registry import runner_channel_types

log = logging.getLogger("postroom.runner")

OUTBOX_POLL_SECONDS = 1.0
STALE_CHECK_SECONDS = 60.0


class ConnectorRunner:
    """Runs the pull loops and reply dispatch of the inboxes this process owns."""

    def __init__(
        self,
        db: Database,
        store: FileStore,
        box: SecretsBox,
        settings: Settings,
        *,
        only: Collection[int] | None = None,
    ) -> None:
        """``only`` limits the runner to some inbox ids (tests run one beside a server)."""
        self.db = db
        self.store = store
        self.box = box
        self.settings = settings
        self.only = set(only) if only is not None else None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = timedelta(seconds=settings.connector_lease_seconds)
        #: Interval of the pass; at most a third of the lease, so one missed beat is survivable.
        self.scan = min(settings.connector_scan_seconds, settings.connector_lease_seconds / 3)
        #: Set to send replies now (the realtime hub's ``outbox`` topic).
        self.wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.workers: dict[int, tuple[InboxWorker, asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_stale_check = 0.0

    async def start(self) -> None:
        """Run in the background."""
        self._tasks = [
            asyncio.create_task(self._supervise(), name="postroom-runner"),
            asyncio.create_task(self._poll_outbox(), name="postroom-runner-outbox"),
        ]

    async def stop(self, *, release: bool = True, grace: float = 15.0) -> None:
        """Stop every worker (waits are interrupted, transactions let finish) and give the
        leases back. ``release=False`` leaves them to run out, as a crash would."""
        self._stopping.set()
        for worker, _ in self.workers.values():
            worker.stopping.set()
        tasks = self._tasks + [task for _, task in self.workers.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        owned = list(self.workers)
        self.workers.clear()
        if release:
            try:
                await leases.release(self.db, self.owner, owned)
            except Exception:  # noqa: BLE001 - the leases will simply run out
                log.warning("could not release connector leases", exc_info=True)

    # -- the pass ------------------------------------------------------------------------
    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` or until :meth:`stop`; False once stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the runner alive; the next pass retries
                log.exception("connector runner pass failed")
            if not await self._pause(self.scan):
                return

    async def run_once(self) -> None:
        """One pass: heartbeat, claim, start workers, warn about silent inboxes."""
        self._reap()
        held = await leases.renew(self.db, self.owner, list(self.workers), self.lease)
        for inbox_id in set(self.workers) - held:
            log.warning("lost the lease of inbox %s", inbox_id)
            worker, _ = self.workers.pop(inbox_id)
            worker.stopping.set()
        types = runner_channel_types()  # pulled, and push channels for their replies
        await leases.ensure_rows(self.db, types)
        claimed = await leases.claim(self.db, self.owner, self.lease, types, exclude=list(self.workers), only=self.only)
        for inbox_id in claimed:
            worker = InboxWorker(self, inbox_id)
            task = asyncio.create_task(worker.run(), name=f"postroom-inbox-{inbox_id}")
            self.workers[inbox_id] = (worker, task)
            log.info("polling inbox %s", inbox_id)
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_stale_check >= STALE_CHECK_SECONDS:
            self._last_stale_check = loop.time()
            await warn_stale_inboxes(self.db, only=self.only)

    def _reap(self) -> None:
        """Forget workers that ended (inbox deleted, lease lost); the lease goes back."""
        for inbox_id, (_, task) in list(self.workers.items()):
            if not task.done():
                continue
            del self.workers[inbox_id]
            if not task.cancelled() and task.exception() is not None:
                log.warning("inbox %s worker ended: %r", inbox_id, task.exception())

    # -- the outbox ----------------------------------------------------------------------
    async def _poll_outbox(self) -> None:
        while not self._stopping.is_set():
            await wake_or_timeout(self.wake, OUTBOX_POLL_SECONDS)
            self.wake.clear()
            if self._stopping.is_set():
                return
            if not self.workers:
                continue
            try:
                async with self.db.read_session() as session:
                    await queue_scan(session)
                    waiting = set(await session.scalars(
                        select(Message.inbox_id).distinct().where(
                            Message.status == "pending", Message.inbox_id.in_(sorted(self.workers)))
                    ))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - try again on the next tick
                log.warning("outbox poll failed", exc_info=True)
                continue
            for inbox_id in waiting:
                entry = self.workers.get(inbox_id)
                if entry is not None:
                    entry[0].sender.wake.set()
