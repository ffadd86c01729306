"""Database engine and the unit-of-work boundary.

SQLite (embedded default) and PostgreSQL (scale-out) from one codebase:

* SQLite runs in WAL mode with foreign keys on and a busy timeout. pysqlite's implicit
  transactions are switched off and Postroom emits its own ``BEGIN``: ``BEGIN IMMEDIATE``
  for write units of work, so two writers queue on the database lock instead of failing
  when a reader upgrades to a writer. Within one process, write units of work also take
  an ``asyncio.Lock`` before their ``BEGIN IMMEDIATE``: a writer waiting in SQLite's busy
  handler sleeps in steps of up to 100 ms and wakes well after the lock is free (under
  concurrent API writes most of a connection thread's time went to those sleeps, and
  each write waited tens of milliseconds); waiting on the asyncio lock, it starts the
  moment the previous unit of work ends. The busy timeout still covers other processes.
* PostgreSQL runs through asyncpg at READ COMMITTED.

Services never commit. :func:`write_session` and :func:`read_session` are the boundaries:
the write one flushes the pending events (see :mod:`app.events.log`), commits, and only
then runs the after-commit hooks (realtime wake-ups).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy import exc as exc_module
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

_write_mode: contextvars.ContextVar[bool] = contextvars.ContextVar("postroom_write", default=False)
#: ``session.info`` key: set in a SQLite write unit of work, whose transaction holds the
#: database's write lock from its first statement (``BEGIN IMMEDIATE``).
WRITE_LOCKED = "postroom_write_locked"

AfterCommitHook = Callable[[AsyncSession], Awaitable[None]]


def is_sqlite(url: str) -> bool:
    """True for a SQLite URL."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine with Postroom's per-dialect connection setup."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        isolation_level="READ COMMITTED",
        # Prepared statements are kept per connection (asyncpg), and PostgreSQL soon runs a
        # kept statement with a generic plan, made without the values. For the batch
        # lookups ("inbox_id = $1 AND source_id IN (500 parameters)") that plan reads every
        # row of the inbox and filters them: measured 1.5 s per lookup at 60,000 messages,
        # a first marketplace sync slowing three-fold as it went. Tenants of very different
        # sizes make generic plans a poor bet anyway; each execution is planned with its
        # values, as with unprepared SQL.
        connect_args={"server_settings": {"application_name": "postroom",
                                          "plan_cache_mode": "force_custom_plan"}},
    )
    _ping_idle_connections(engine)
    return engine


#: A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Check a pooled connection before use, but only once it has sat idle for a while.

    ``pool_pre_ping`` costs a round trip on every checkout: 15 % of a server's event-loop
    time under webhook load (docs/performance.md, "Inbound webhooks"). A connection
    handed back a moment ago is alive; one idle for seconds may have been cut (a database
    restart, a proxy's idle timeout), and raising ``DisconnectionError`` makes the pool
    replace it, as pre-ping would.
    """

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means "replace it"
            raise exc_module.DisconnectionError(str(exc)) from exc
        if not alive:
            raise exc_module.DisconnectionError("ping failed")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Own the transaction boundaries (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
            "PRAGMA cache_size=-65536",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _write_mode.get() else "BEGIN")


class Database:
    """One engine and its session factory, plus the after-commit hooks."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.after_commit: list[AfterCommitHook] = []
        self._serialize_writes = self.dialect == "sqlite"
        self._write_lock: asyncio.Lock | None = None
        self._write_lock_loop: asyncio.AbstractEventLoop | None = None
        self._write_lock_owner: asyncio.Task[object] | None = None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that writes: commits on success, rolls back on error.

        Pending events are written just before the commit; after-commit hooks run once
        the commit has succeeded.
        """
        token = _write_mode.set(True)
        try:
            async with self._one_writer():
                async with self.sessionmaker() as session:
                    if self._serialize_writes:
                        session.info[WRITE_LOCKED] = True
                    try:
                        yield session
                        await commit(session)
                    except BaseException:
                        await session.rollback()
                        raise
        finally:
            _write_mode.reset(token)
        for hook in self.after_commit:
            await hook(session)

    @asynccontextmanager
    async def _one_writer(self) -> AsyncIterator[None]:
        """On SQLite, this process's write units of work one at a time (see the module docstring).

        Re-entrant for the task that holds it, so a unit of work opened inside another
        behaves as it did without the lock.
        """
        task = asyncio.current_task()
        if not self._serialize_writes or task is None or self._write_lock_owner is task:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._write_lock_loop is not loop:
            self._write_lock, self._write_lock_loop = asyncio.Lock(), loop
        async with self._write_lock:
            self._write_lock_owner = task
            try:
                yield
            finally:
                self._write_lock_owner = None

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (never commits; closing ends its transaction)."""
        async with self.sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def commit(session: AsyncSession) -> None:
    """Record reporting facts, write the session's pending events, then commit (the one commit of a unit of work)."""
    from app.events.log import flush_pending_events
    from app.reports.recorder import record_pending

    await record_pending(session)  # reporting events, in this same transaction
    await flush_pending_events(session)
    await session.commit()


_NO_BITMAP_SCAN = text("SET LOCAL enable_bitmapscan = off")


async def queue_scan(session: AsyncSession) -> None:
    """Before reading a work queue through a partial index of pending rows (webhook
    deliveries, replies to send): on PostgreSQL, no bitmap scan for the rest of the
    transaction.

    Every row that leaves the queue leaves a dead entry in the partial index until VACUUM.
    A bitmap scan, which the planner prefers for the few rows it expects, visits every
    dead entry on every read: 18,000 buffers and 12 ms per claim after 19,000 webhook
    deliveries. A plain index scan marks dead entries once and skips them afterwards:
    62 buffers.
    """
    if session.bind.dialect.name == "postgresql":
        await session.execute(_NO_BITMAP_SCAN)
