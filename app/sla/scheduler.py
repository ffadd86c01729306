"""The breach and warning scheduler: reads only what is due, emits each event once.

A pass reads the active clocks with ``due_at <= now + longest lead`` through the
partial index on ``due_at`` (nothing else is touched when nothing is due). A warning
or a breach is a conditional UPDATE (``WHERE status = 'active'`` / ``warned & bit = 0``)
in the same transaction as its event, so it is emitted exactly once even if two
schedulers overlap. Normally only one runs: on PostgreSQL the process holding a
session-level advisory lock on its own connection; when that process dies its
connection closes, the lock is released, and another process takes over within a pass.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.models import Conversation, SlaClock, utcnow
from app.sla import engine
from app.sla.engine import emit_clock_event, next_check

log = logging.getLogger("postroom.sla")

SCHEDULER_LOCK = 0x736C61  # "sla"
DEFAULT_LEADS = (7200.0, 1800.0)
BATCH = 1000


class SlaScheduler:
    """Emits ``sla.warning`` and ``sla.breached`` within a pass interval of the due time."""

    def __init__(self, db: Database, *, leads: tuple[float, ...] = DEFAULT_LEADS, interval: float = 0.5) -> None:
        self.db = db
        self.leads = tuple(sorted(leads, reverse=True))
        engine.LEADS = self.leads
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._lock_connection: AsyncConnection | None = None

    async def start(self) -> None:
        """Run passes in the background."""
        self._task = asyncio.create_task(self._run(), name="postroom-sla-scheduler")

    async def stop(self) -> None:
        """Stop, releasing the leadership lock."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._lock_connection is not None:
            await self._lock_connection.close()
            self._lock_connection = None

    async def _leader(self) -> bool:
        if self.db.dialect != "postgresql":
            return True
        if self._lock_connection is None:
            self._lock_connection = await self.db.engine.connect()
        try:
            held = await self._lock_connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK})
            await self._lock_connection.commit()
            return bool(held)
        except Exception:  # noqa: BLE001 - a broken connection: drop it and retry next pass
            await self._lock_connection.close()
            self._lock_connection = None
            return False

    async def _run(self) -> None:
        while True:
            try:
                if await self._leader():
                    while await self.run_once() >= BATCH:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the scheduler alive
                log.exception("SLA scheduler pass failed")
            await asyncio.sleep(self.interval)

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass; returns how many clocks it looked at."""
        now = now or utcnow()
        async with self.db.read_session() as session:  # the usual case: nothing to do, no write lock
            if await session.scalar(select(SlaClock.id).where(
                    SlaClock.status == "active", SlaClock.next_check_at <= now).limit(1)) is None:
                return 0
        async with self.db.write_session() as session:
            rows = (await session.execute(
                select(SlaClock, Conversation.display_id)
                .join(Conversation, Conversation.id == SlaClock.conversation_id)
                .where(SlaClock.status == "active", SlaClock.next_check_at <= now)
                .order_by(SlaClock.next_check_at).limit(BATCH)
            )).all()
            # Writes below are explicit statements; the loaded rows are only read (and
            # their copies updated for the event payloads), never flushed back.
            session.expunge_all()
            due = [(clock, display_id) for clock, display_id in rows if clock.due_at <= now]
            if due:
                # One statement for every breach of the pass; RETURNING says which this
                # pass won (an overlapping scheduler may have taken some).
                won = set((await session.execute(
                    update(SlaClock)
                    .where(SlaClock.id.in_([clock.id for clock, _ in due]), SlaClock.status == "active")
                    .values(status="breached", breached_at=SlaClock.due_at)
                    .returning(SlaClock.id)
                    .execution_options(synchronize_session=False))).scalars())
                for clock, display_id in due:
                    if clock.id in won:
                        clock.status, clock.breached_at = "breached", clock.due_at
                        emit_clock_event(session, clock, "sla.breached", display_id)
            for clock, display_id in rows:
                if clock.due_at <= now:
                    continue
                warned = clock.warned
                for index, lead in enumerate(self.leads):
                    bit = 1 << index
                    if clock.due_at - timedelta(seconds=lead) > now or warned & bit:
                        continue
                    done = await session.execute(
                        update(SlaClock).where(SlaClock.id == clock.id, SlaClock.warned.op("&")(bit) == 0)
                        .values(warned=SlaClock.warned.op("|")(bit))
                        .execution_options(synchronize_session=False))
                    if done.rowcount == 1:
                        warned |= bit
                        emit_clock_event(session, clock, "sla.warning", display_id, {"lead_seconds": lead})
                clock.warned = warned
                await session.execute(update(SlaClock).where(SlaClock.id == clock.id)
                                      .values(next_check_at=next_check(clock))
                                      .execution_options(synchronize_session=False))
            return len(rows)
