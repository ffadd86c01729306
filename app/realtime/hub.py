"""The per-process distributor: reads the event log once and fans frames out.

One task per process follows the event log (woken by the broker, and once a second
regardless) and offers each event, encoded once, to the bounded queue of every
subscriber allowed to see it. A subscriber that falls ``queue_size`` frames behind is
told to go (the endpoint closes it with 4008) and resumes with ``since``.

Direct writes: a subscriber whose endpoint set a :class:`~app.realtime.wire.DirectWriter`
gets the frame written to its socket by the hub itself, with no task wake-up, as long as
nothing of it is waiting in its queue or being sent by its task and its transport is not
paused; otherwise the frame goes to the queue, so frames stay in order and a slow
client still fills its queue and is closed.

From memory: in the embedded set-up (``memory://`` broker, SQLite), a commit of this
process whose events are the next ones of the log is dispatched from the rows it just
wrote, without reading them back; any other commit (a gap, another process) wakes the
reader, which skips what was already dispatched.

Resume without gaps: :meth:`Hub.register` returns the last seq the hub has dispatched
(the *seam*). The new subscriber receives every event after the seam through its
queue; the endpoint replays ``since < seq <= seam`` from the database first. Both the
registration and each dispatch happen without an ``await`` in between, so no event
falls between the replay and the queue, and none is in both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select

from app.db import Database
from app.events.log import LAST_SEQ, WAKE_TOPICS, WRITTEN
from app.models import Event, utcnow
from app.realtime import metrics
from app.realtime.broker import Broker
from app.realtime.wakes import WakePublisher
from app.realtime.wire import DirectWriter, encode_text
from app.waits import wake_or_timeout

log = logging.getLogger("postroom.realtime")

READ_BATCH = 500


def encode_frame(seq: int | None, event: str, data: dict[str, Any]) -> str:
    """The wire form of one event: ``{"seq": n, "event": "…", "data": {…}}``."""
    return json.dumps({"seq": seq, "event": event, "data": data}, ensure_ascii=False, separators=(",", ":"))


class Outgoing(NamedTuple):
    """One frame for many subscribers: its text, and its websocket frame bytes, encoded once."""

    text: str
    wire: bytes


def outgoing(seq: int | None, event: str, data: dict[str, Any]) -> Outgoing:
    """Encode an event for every subscriber at once."""
    text = encode_frame(seq, event, data)
    return Outgoing(text, encode_text(text))


@dataclass(eq=False)
class Subscriber:
    """One stream connection's view: what it may see, and its bounded queue."""

    account_id: int
    user_id: int
    is_admin: bool
    inbox_ids: frozenset[int]
    queue_size: int
    queue: asyncio.Queue[str] = field(init=False)
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set by the endpoint once it may receive live frames directly (after its replay).
    writer: DirectWriter | None = field(default=None, init=False)
    #: Frames queued or taken by the endpoint's task and not sent yet (the hub writes
    #: directly only while it is 0, so frames stay in order).
    backlog: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)

    def may_see(self, account_id: int, inbox_id: int | None) -> bool:
        """Events of its account; agents only those of their inboxes (or of no inbox)."""
        if account_id != self.account_id:
            return False
        return self.is_admin or inbox_id is None or inbox_id in self.inbox_ids

    def offer(self, frame: str) -> None:
        """Queue a frame; on overflow, flag the connection to be closed."""
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(frame)
            self.backlog += 1
        except asyncio.QueueFull:
            self.overflowed.set()

    def sent(self) -> None:
        """The endpoint's task sent a frame it took from the queue."""
        self.backlog -= 1

    def deliver(self, frame: Outgoing) -> bool:
        """Write the frame to the socket now if nothing of this subscriber waits before it, else
        queue it; True when written."""
        writer = self.writer
        if writer is not None and not self.backlog and writer.write(frame.wire):
            return True
        self.offer(frame.text)
        return False


class Hub:
    """Follows the event log and the broker; serves this process's subscribers."""

    def __init__(
        self, db: Database, broker: Broker, *, retention_days: float = 7.0, catch_up_seconds: float = 1.0
    ) -> None:
        self.db = db
        self.catch_up_seconds = catch_up_seconds
        self.broker = broker
        #: Sends this process's wake-ups to the others, off the commit path.
        self.wakes = WakePublisher(broker)
        self.retention = timedelta(days=retention_days)
        self.last_dispatched = 0
        #: True once a pass was skipped for want of subscribers (see :meth:`join`).
        self._skipped = False
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._wake = asyncio.Event()
        #: Other log followers in this process (webhooks) woken with the hub.
        self.wake_listeners: list[asyncio.Event] = []
        #: Loops woken only by commits of their topic (see ``app.events.log.wake_topics``).
        self.topic_listeners: dict[str, list[asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.presence = Presence(self)

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start following the log from its current end."""
        async with self.db.read_session() as session:
            self.last_dispatched = int(await session.scalar(select(func.max(Event.seq))) or 0)
        self.broker.on_message(self._on_broker_message)
        await self.broker.start()
        if type(self.broker) is not Broker:
            self.wakes.start()
        self.db.after_commit.append(self._after_commit)
        self._tasks = [
            asyncio.create_task(self._follow(), name="postroom-hub-follow"),
            asyncio.create_task(self._prune_loop(), name="postroom-hub-prune"),
            asyncio.create_task(self.presence.expire_loop(), name="postroom-presence"),
        ]

    async def stop(self) -> None:
        """Stop the tasks and the broker."""
        if self._after_commit in self.db.after_commit:
            self.db.after_commit.remove(self._after_commit)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.wakes.stop()
        await self.broker.stop()

    # -- subscribers -----------------------------------------------------------------
    async def log_end(self) -> int | None:
        """The log's end while the hub rests (no subscribers: see :meth:`_dispatch_batch`),
        else None. An endpoint reads it before it accepts a stream and hands it to :meth:`join`."""
        if not self._skipped or self._subscribers:
            return None
        async with self.db.read_session() as session:
            return int(await session.scalar(select(func.max(Event.seq))) or 0)

    def join(self, subscriber: Subscriber, log_end: int | None) -> int:
        """Register a stream's subscriber (what the endpoints call); returns the seam.

        While nobody subscribes, the hub does not read the log. The first subscriber after
        such a rest moves the hub to ``log_end``, the end read *before* its stream was
        accepted: everything committed once the client could act is after it, so nothing
        the client caused is skipped, and nothing from before it came is sent. With
        subscribers present the hub never jumps: a jump would skip events they wait for.

        A rested hub is woken: the wake-ups of what was committed since ``log_end`` may all
        have come while nobody was registered (the stream is accepted, authenticated, then
        joined) and found nothing to do; without this the new subscriber waited for the
        periodic catch-up.
        """
        rested = self._skipped
        if log_end is not None and rested and not self._subscribers:
            self.last_dispatched = max(self.last_dispatched, log_end)
            self._skipped = False
        seam = self.register(subscriber)
        if rested:
            self._wake.set()
        return seam

    def register(self, subscriber: Subscriber) -> int:
        """Add a subscriber; returns the seam (see the module docstring)."""
        self._subscribers.setdefault(subscriber.account_id, set()).add(subscriber)
        metrics.CONNECTED.inc()
        return self.last_dispatched

    def unregister(self, subscriber: Subscriber) -> None:
        """Remove a subscriber."""
        group = self._subscribers.get(subscriber.account_id)
        if group is not None and subscriber in group:
            group.discard(subscriber)
            metrics.CONNECTED.dec()
            if not group:
                del self._subscribers[subscriber.account_id]

    def connections_of(self, user_id: int) -> int:
        """How many of this process's streams a user holds."""
        return sum(1 for group in self._subscribers.values() for s in group if s.user_id == user_id)

    def queue_depths(self) -> list[int]:
        """Current queue depth of every subscriber (for /metrics)."""
        return [s.queue.qsize() for group in self._subscribers.values() for s in group]

    # -- wake-ups --------------------------------------------------------------------
    async def _after_commit(self, session: Any) -> None:
        seq = session.info.pop(LAST_SEQ, None)
        written = session.info.pop(WRITTEN, None)
        topics = sorted(session.info.pop(WAKE_TOPICS, ()))
        if seq is None and not topics:
            return
        if type(self.broker) is not Broker:  # other processes learn of it through the broker
            self._set_wake(topics)
            self.wakes.add(seq, topics)
        elif written is not None and self._dispatch_written(*written):
            self._set_wake(topics, hub=False)
        else:
            self._set_wake(topics)

    def _dispatch_written(self, seqs: list[int], rows: list[dict[str, Any]]) -> bool:
        """Dispatch the events a commit of this process just wrote, from memory, when they
        are the next ones of the log (the embedded set-up: one process, SQLite's one
        writer); False leaves them to the log's reader. Saves a read of the log per
        commit, and its wait, on the path from commit to agents."""
        if (not self._subscribers or self._skipped or seqs[0] != self.last_dispatched + 1
                or seqs[-1] - seqs[0] != len(seqs) - 1 or len(rows) != len(seqs)):
            return False
        self._dispatch_rows([
            (seq, row["account_id"], row["inbox_id"], row["event_type"], row["payload"], row["created_at"])
            for seq, row in zip(seqs, rows, strict=True)])
        return True

    def listen(self, topic: str, event: asyncio.Event) -> None:
        """Set ``event`` whenever a transaction of ``topic`` commits, in any process."""
        self.topic_listeners.setdefault(topic, []).append(event)

    def _set_wake(self, topics: list[str] | tuple[str, ...] = (), *, hub: bool = True) -> None:
        if hub:
            self._wake.set()
        for listener in self.wake_listeners:
            listener.set()
        for topic in topics:
            for listener in self.topic_listeners.get(topic, ()):
                listener.set()

    async def _on_broker_message(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "wake":
            self._set_wake(message.get("topics") or ())
        elif kind == "ephemeral":
            self.dispatch_ephemeral(message["account_id"], message.get("inbox_id"), message["event"], message["data"])

    async def publish_ephemeral(self, account_id: int, inbox_id: int | None, event: str, data: dict[str, Any]) -> None:
        """Typing and presence: to every process's subscribers, never to the log."""
        message = {"kind": "ephemeral", "account_id": account_id, "inbox_id": inbox_id, "event": event, "data": data}
        if type(self.broker) is Broker:
            self.dispatch_ephemeral(account_id, inbox_id, event, data)
        else:
            await self.broker.publish(message)

    def dispatch_ephemeral(self, account_id: int, inbox_id: int | None, event: str, data: dict[str, Any]) -> None:
        """Offer an ephemeral frame (seq null) to the subscribers that may see it."""
        frame = outgoing(None, event, data)
        for subscriber in list(self._subscribers.get(account_id, ())):
            if subscriber.may_see(account_id, inbox_id):
                subscriber.deliver(frame)

    # -- following the log -----------------------------------------------------------
    async def _follow(self) -> None:
        while True:
            await wake_or_timeout(self._wake, self.catch_up_seconds)
            self._wake.clear()
            try:
                while await self._dispatch_batch() == READ_BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep following; the next pass retries
                log.exception("reading the event log failed")
                await asyncio.sleep(1)

    async def _dispatch_batch(self) -> int:
        if not self._subscribers:
            # Nobody to send to: reading the log on every commit would be wasted (a
            # webhook-only process reads nothing). :meth:`join` catches up.
            self._skipped = True
            return 0
        metrics.LOG_READS.inc()
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    select(Event.seq, Event.account_id, Event.inbox_id, Event.event_type, Event.payload, Event.created_at)
                    .where(Event.seq > self.last_dispatched)
                    .order_by(Event.seq)
                    .limit(READ_BATCH)
                )
            ).all()
        self._dispatch_rows(rows)
        return len(rows)

    def _dispatch_rows(self, rows: Sequence[tuple[int, int, int | None, str, dict[str, Any], datetime]]) -> None:
        """Offer each event after the seam to the subscribers that may see it, in order.

        Synchronous: the dispatch and the seam move together (see the module docstring).
        """
        now = time.time()
        for seq, account_id, inbox_id, event_type, payload, created_at in rows:
            if seq <= self.last_dispatched:
                continue  # a join moved the hub past it while this read was under way
            group = self._subscribers.get(account_id)
            if group:
                frame = outgoing(seq, event_type, payload)
                delivered = written = 0
                for subscriber in list(group):
                    # may_see, inlined (the group is the account's): this loop runs per delivery
                    if subscriber.is_admin or inbox_id is None or inbox_id in subscriber.inbox_ids:
                        written += subscriber.deliver(frame)
                        delivered += 1
                metrics.DELIVERIES.inc(delivered)
                metrics.DIRECT_WRITES.inc(written)
            metrics.EVENTS.inc()
            metrics.LAG.observe(max(0.0, now - created_at.timestamp()))
            self.last_dispatched = seq

    # -- retention -------------------------------------------------------------------
    async def prune(self) -> int:
        """Delete events older than the retention, except the newest event; returns how many.

        The newest stays so that seq keeps growing: SQLite gives a new row the largest
        rowid plus one, so deleting the newest events would hand their seqs out again,
        and streams (and the webhook fan-out) that already passed them would never see
        the new events.
        """
        newest = select(func.max(Event.seq)).scalar_subquery()
        async with self.db.write_session() as session:
            result = await session.execute(
                delete(Event).where(Event.created_at < utcnow() - self.retention, Event.seq < newest))
        return result.rowcount or 0

    async def _prune_loop(self) -> None:
        while True:
            try:
                removed = await self.prune()
                if removed:
                    log.info("pruned old events", extra={"fields": {"count": removed}})
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("pruning the event log failed")
            await asyncio.sleep(3600)


class Presence:
    """Agents' availability from their streams' heartbeats (never written to the log)."""

    EXPIRY_SECONDS = 90.0

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._seen: dict[tuple[int, int], tuple[str, float]] = {}

    async def heartbeat(self, account_id: int, user_id: int, status: str = "online") -> None:
        """Record a heartbeat; announce a change of status."""
        if status not in ("online", "busy", "offline"):
            status = "online"
        previous = self._seen.get((account_id, user_id))
        self._seen[(account_id, user_id)] = (status, time.monotonic())
        if previous is None or previous[0] != status:
            await self.hub.publish_ephemeral(account_id, None, "presence.update", {"users": {str(user_id): status}})

    async def left(self, account_id: int, user_id: int) -> None:
        """The user's last stream in this process closed."""
        if self._seen.pop((account_id, user_id), None) is not None:
            await self.hub.publish_ephemeral(account_id, None, "presence.update", {"users": {str(user_id): "offline"}})

    async def expire_loop(self) -> None:
        """Mark agents offline after missed heartbeats."""
        while True:
            await asyncio.sleep(self.EXPIRY_SECONDS / 3)
            cutoff = time.monotonic() - self.EXPIRY_SECONDS
            for (account_id, user_id), (_, seen) in list(self._seen.items()):
                if seen < cutoff:
                    await self.left(account_id, user_id)
