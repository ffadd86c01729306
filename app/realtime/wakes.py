"""This process's wake-ups to the other processes, sent off the commit path and merged.

A wake-up says "the log has grown, up to seq n; these topics committed". Sending it is a
round trip to the broker (a NOTIFY, a Redis PUBLISH). Awaited inside every commit, that
round trip held up the next write of the process and the answer to the request that
wrote: under load, the webhook group commit waited for one NOTIFY per transaction. Here
a commit only notes its wake-up; one task sends them, and the wake-ups that come while a
send is under way are merged into the next one (the highest seq, the union of the
topics), so a burst of commits costs the broker one message per round trip instead of
one per commit. Nothing is lost by merging: a wake-up only makes the other processes
read the log (and run the loops of its topics) sooner than their periodic catch-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.realtime.broker import Broker


class WakePublisher:
    """Merges the wake-ups of this process's commits and sends them through the broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._seq: int | None = None
        self._topics: set[str] = set()
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, seq: int | None, topics: list[str] | tuple[str, ...]) -> None:
        """Note a commit's wake-up; it is sent with the next message (never waits)."""
        if seq is not None and (self._seq is None or seq > self._seq):
            self._seq = seq
        self._topics.update(topics)
        self._due.set()

    def start(self) -> None:
        """Start sending in the background."""
        self._task = asyncio.create_task(self._run(), name="postroom-wake-publisher")

    async def stop(self) -> None:
        """Stop, after sending what is still due (the broker's publish has its own time limit)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._due.is_set():
            await self._send()

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            await self._send()

    async def _send(self) -> None:
        self._due.clear()
        message: dict[str, Any] = {"kind": "wake", "seq": self._seq, "topics": sorted(self._topics)}
        self._seq, self._topics = None, set()
        await self.broker.publish(message)  # never raises: a failed send is logged there
