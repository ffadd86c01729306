"""Group commit for push channels' webhooks: concurrent calls share transactions.

A webhook call must not be answered before what it carried is committed (a 200 tells the
platform it may forget the event). One transaction per call caps a process at its
commit rate, so calls arriving while a transaction runs wait for the next one and are
stored together: up to :data:`MAX_MESSAGES` messages per transaction, each call answered
once the transaction holding it has committed.

A transaction costs about as much for one call as for ten (its statements and commit are
mostly per batch), so while calls come together (the last transaction held more than
one) a transaction first waits :data:`GATHER_SECONDS` for the calls arriving meanwhile:
the event loop reads and parses the requests already in its sockets, and they join. A
lone call after a quiet spell is stored at once.

If a shared transaction fails, each call is retried in a transaction of its own, so one
bad call cannot fail the others; ``UNIQUE(inbox_id, source_id)`` keeps retries from
storing anything twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Inbox
from app.runtime import Runtime
from app.tickets.ingest import IngestResult, ingest_messages
from app.tickets.quarantine import store_quarantined
from app.tickets.receipts import apply_contact_events, apply_receipts
from connectors.base import WebhookBatch

log = logging.getLogger("postroom.webhooks_in")

#: Messages per shared transaction, at most.
MAX_MESSAGES = 200
#: How long a transaction waits for more calls while calls come together. Under load it
#: gave 1.3–1.5 times the events/s for two thirds of the servers' CPU per event (1, 3 and
#: 6 ms did about the same; docs/performance.md).
GATHER_SECONDS = 0.002


@dataclass
class _Call:
    inbox_id: int
    batch: WebhookBatch
    done: asyncio.Future[list[IngestResult]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommitter:
    """Stores webhook batches of one process, several calls per transaction."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[_Call] = asyncio.Queue()
        #: Whether the last transaction held more than one call (calls come together).
        self._shared = False
        self._task = self.loop.create_task(self._run(), name="postroom-webhook-group-commit")

    async def store(self, inbox_id: int, batch: WebhookBatch) -> list[IngestResult]:
        """Store one call's batch; returns once it is committed (ingest results of its messages)."""
        call = _Call(inbox_id, batch)
        self._queue.put_nowait(call)
        return await asyncio.shield(call.done)

    async def aclose(self) -> None:
        """Stop the background task (calls still queued are stored first)."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            calls = [await self._queue.get()]
            if self._shared:
                await asyncio.sleep(GATHER_SECONDS)
            count = len(calls[0].batch.messages)
            while not self._queue.empty() and count < MAX_MESSAGES:
                calls.append(self._queue.get_nowait())
                count += len(calls[-1].batch.messages)
            self._shared = len(calls) > 1
            try:
                results = await self._commit(calls)
            except Exception:  # noqa: BLE001 - one bad call must not fail the others
                if len(calls) > 1:
                    log.warning("shared webhook transaction failed; storing %d calls one by one", len(calls),
                                exc_info=True)
                for call in calls:
                    try:
                        (result,) = await self._commit([call])
                    except Exception as exc:  # noqa: BLE001 - reported to the caller (a 500: the platform retries)
                        if not call.done.done():
                            call.done.set_exception(exc)
                    else:
                        if not call.done.done():
                            call.done.set_result(result)
                continue
            for call, result in zip(calls, results, strict=True):
                if not call.done.done():
                    call.done.set_result(result)

    async def _commit(self, calls: list[_Call]) -> list[list[IngestResult]]:
        """Every call's messages, receipts, contact events and quarantined events, in one
        transaction; the ingest results split back per call."""
        messages = [m for call in calls for m in call.batch.messages]

        async def also(session: AsyncSession) -> None:
            for call in calls:
                batch = call.batch
                if not (batch.contacts or batch.receipts or batch.quarantined):
                    continue
                inbox = await session.get(Inbox, call.inbox_id)
                if inbox is None:
                    continue
                if batch.contacts:
                    await apply_contact_events(session, inbox, batch.contacts)
                if batch.receipts:
                    await apply_receipts(session, inbox, batch.receipts)
                if batch.quarantined:
                    await store_quarantined(session, self.runtime.store, inbox.id, batch.quarantined)

        results = await ingest_messages(self.runtime.db, messages, store=self.runtime.store,
                                        reopen_window_days=self.runtime.settings.reopen_window_days, also=also)
        split, start = [], 0
        for call in calls:
            split.append(results[start:start + len(call.batch.messages)])
            start += len(call.batch.messages)
        return split
