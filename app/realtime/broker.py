"""Wake-ups and ephemeral events between server processes.

The event log is the truth; the broker only says "there is something new, up to seq
n" (so a lost notification delays an event, never loses it: every process also reads
the log once a second) and carries ephemeral events (typing, presence) that are never
written to the log. Chosen by ``POSTROOM_BROKER_URL``:

* ``memory://``: one process; the in-process hooks are enough.
* ``postgresql://…``: LISTEN/NOTIFY on a dedicated asyncpg connection per process.
  NOTIFY is sent after the commit, on its own connection, so the global lock a NOTIFY
  takes at commit never sits inside the write transactions. That connection is replaced
  when it fails (a terminated backend, a proxy's idle timeout).
* ``redis://…``: pub/sub on one channel.

Commits' wake-ups are published by one task of the hub, off the commit path
(``app.realtime.wakes``); typing and presence are published by the request that
carries them. Either way no publish waits longer than :data:`PUBLISH_TIMEOUT`: a broker
that stops answering delays wake-ups, never anything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.realtime import metrics

log = logging.getLogger("postroom.broker")

CHANNEL = "postroom_events"
#: Seconds a publish (a NOTIFY, connecting for one, a Redis PUBLISH) may take before the
#: message is given up: a broker that stopped answering must not hold up the wake-ups
#: that follow, nor a request publishing a typing indicator.
PUBLISH_TIMEOUT = 2.0
Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class Broker:
    """In-process broker (``memory://``): publishing calls the local handler."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    def on_message(self, handler: Handler) -> None:
        """Register the one handler (the process's hub) for incoming messages."""
        self._handler = handler

    async def start(self) -> None:
        """Connect and start listening."""

    async def stop(self) -> None:
        """Stop listening and disconnect."""

    async def publish(self, message: dict[str, Any]) -> None:
        """Send a message to every process (this one included)."""
        await self._deliver(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        if self._handler is not None:
            result = self._handler(message)
            if asyncio.iscoroutine(result):
                await result


class PostgresBroker(Broker):
    """LISTEN/NOTIFY with reconnect; payloads are small JSON documents."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._listen: Any = None
        self._notify: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._watch(), name="postroom-pg-listen")

    async def _connect(self) -> None:
        import asyncpg

        self._listen = await asyncpg.connect(self.dsn)
        await self._listen.add_listener(CHANNEL, self._on_notify)

    async def _notify_connection(self) -> Any:
        """The NOTIFY connection, made at the first publish and again after one failed."""
        if self._notify is None or self._notify.is_closed():
            import asyncpg

            self._notify = await asyncpg.connect(self.dsn)
        return self._notify

    def _drop_notify(self) -> None:
        """Forget a NOTIFY connection that failed (the next publish connects again)."""
        if self._notify is not None:
            self._notify.terminate()
        self._notify = None

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        metrics.BROKER_RECEIVED.inc()
        asyncio.get_running_loop().create_task(self._deliver(json.loads(payload)))

    async def _watch(self) -> None:
        delay = 0.5
        while True:
            await asyncio.sleep(5)
            try:
                await asyncio.wait_for(self._listen.execute("SELECT 1"), 5)
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                log.warning("broker connection lost, reconnecting", extra={"fields": {"error": repr(exc)}})
                metrics.BROKER_RECONNECTS.inc()
                await self._close()
                while True:
                    try:
                        await self._connect()
                        await self._deliver({"kind": "wake"})  # catch up what was missed
                        break
                    except Exception:  # noqa: BLE001
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 30)

    async def publish(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message, separators=(",", ":"))
        if len(payload.encode()) >= 7900:
            log.warning("broker message too large for NOTIFY, dropped", extra={"fields": {"kind": message.get("kind")}})
            return
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT), self._lock:
                await self._send(payload)
            metrics.BROKER_PUBLISHED.inc()
        except Exception as exc:  # noqa: BLE001 - the periodic catch-up covers a lost wake-up
            metrics.BROKER_PUBLISH_FAILURES.inc()
            log.warning("NOTIFY failed", extra={"fields": {"error": repr(exc)}})

    async def _send(self, payload: str) -> None:
        """NOTIFY, once more on a fresh connection if the first try fails: a NOTIFY
        connection that died while idle would otherwise lose every later wake-up of this
        process (each then waits for the other processes' periodic catch-up)."""
        for attempt in (1, 2):
            try:
                connection = await self._notify_connection()
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                return
            except asyncio.CancelledError:
                self._drop_notify()  # cut off mid-way (the time limit): its state is unknown
                raise
            except Exception:
                self._drop_notify()
                if attempt == 2:
                    raise

    async def _close(self) -> None:
        for connection in (self._listen, self._notify):
            if connection is not None:
                try:
                    await connection.close(timeout=2)
                except Exception:  # noqa: BLE001
                    connection.terminate()
        self._listen = self._notify = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._close()


class RedisBroker(Broker):
    """Redis pub/sub with reconnect."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        import redis.asyncio as redis

        self._client = redis.from_url(self.url)
        self._task = asyncio.create_task(self._listen(), name="postroom-redis-listen")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self._ready.set()
                delay = 0.5
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        metrics.BROKER_RECEIVED.inc()
                        await self._deliver(json.loads(item["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any failure
                log.warning("redis broker lost, reconnecting", extra={"fields": {"error": repr(exc)}})
                metrics.BROKER_RECONNECTS.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                await self._deliver({"kind": "wake"})
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001
                    pass

    async def publish(self, message: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._client.publish(CHANNEL, json.dumps(message, separators=(",", ":")))
            metrics.BROKER_PUBLISHED.inc()
        except Exception as exc:  # noqa: BLE001 - the periodic catch-up covers a lost wake-up
            metrics.BROKER_PUBLISH_FAILURES.inc()
            log.warning("PUBLISH failed", extra={"fields": {"error": repr(exc)}})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            await self._client.aclose()


def broker_for(url: str) -> Broker:
    """The broker a ``POSTROOM_BROKER_URL`` names."""
    if url.startswith("memory://"):
        return Broker()
    if url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        dsn = url.replace("postgresql+asyncpg://", "postgresql://").replace("postgres://", "postgresql://", 1)
        return PostgresBroker(dsn)
    if url.startswith(("redis://", "rediss://")):
        return RedisBroker(url)
    raise ValueError(f"unknown broker URL scheme: {url.split('://')[0]}://")
