"""The lease rows: which process polls which inbox, and what the inbox's state is.

One ``connector_states`` row per pulled inbox. A process *claims* rows whose lease is
free or has run out (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so processes
claiming at once never wait on each other or take the same row; SQLite serializes
writers, and the conditional ``UPDATE`` re-checks the lease either way), *renews* its
leases with heartbeats, and *releases* them on a clean stop. A process that dies simply
stops renewing; its leases run out and another process claims them.

Writes that must not happen after the lease moved on (the cursor, with the messages it
covers) go through :func:`hold`, which fails the transaction when this process no longer
owns the row: the new owner re-fetches from the old cursor instead.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import ConnectorCursor, ConnectorState, Inbox, utcnow

CURSOR_NAME = "default"


class LeaseLost(Exception):
    """This process no longer owns the inbox's lease."""


async def ensure_rows(db: Database, channel_types: Collection[str]) -> int:
    """A state row for every inbox of the pulled channel types; returns how many were added."""
    async with db.read_session() as session:
        missing = list(await session.scalars(
            select(Inbox.id).where(
                Inbox.channel_type.in_(sorted(channel_types)),
                ~select(ConnectorState.inbox_id).where(ConnectorState.inbox_id == Inbox.id).exists(),
            )
        ))
    if not missing:
        return 0
    now = utcnow()
    insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    async with db.write_session() as session:
        await session.execute(
            insert(ConnectorState).on_conflict_do_nothing(),
            [{"inbox_id": i, "state": "starting", "failures": 0, "created_at": now, "updated_at": now}
             for i in missing],
        )
    return len(missing)


async def claim(
    db: Database,
    owner: str,
    lease: timedelta,
    channel_types: Collection[str],
    *,
    exclude: Collection[int] = (),
    only: Collection[int] | None = None,
    limit: int = 100,
) -> list[int]:
    """Take free or expired leases (up to ``limit``); returns the inbox ids now owned."""
    now = utcnow()
    free = or_(ConnectorState.lease_until.is_(None), ConnectorState.lease_until < now,
               ConnectorState.lease_owner == owner)
    query = (
        select(ConnectorState.inbox_id)
        .join(Inbox, Inbox.id == ConnectorState.inbox_id)
        .where(free, Inbox.channel_type.in_(sorted(channel_types)))
        .order_by(ConnectorState.inbox_id)
        .limit(limit)
    )
    if exclude:
        query = query.where(ConnectorState.inbox_id.not_in(sorted(exclude)))
    if only is not None:
        query = query.where(ConnectorState.inbox_id.in_(sorted(only)))
    async with db.read_session() as session:
        if (await session.scalar(query.limit(1))) is None:
            return []  # the usual pass: nothing to claim, and no write lock taken
    async with db.write_session() as session:
        if db.dialect == "postgresql":
            query = query.with_for_update(of=ConnectorState, skip_locked=True)
        ids = list(await session.scalars(query))
        if not ids:
            return []
        taken = await session.scalars(
            update(ConnectorState)
            .where(ConnectorState.inbox_id.in_(ids), free)
            .values(lease_owner=owner, lease_until=now + lease, heartbeat_at=now)
            .returning(ConnectorState.inbox_id)
            .execution_options(synchronize_session=False)
        )
        return sorted(taken)


async def renew(db: Database, owner: str, inbox_ids: Collection[int], lease: timedelta) -> set[int]:
    """Heartbeat: extend this process's leases; returns the ones it still owns."""
    if not inbox_ids:
        return set()
    now = utcnow()
    async with db.write_session() as session:
        held = await session.scalars(
            update(ConnectorState)
            .where(ConnectorState.inbox_id.in_(sorted(inbox_ids)), ConnectorState.lease_owner == owner)
            .values(lease_until=now + lease, heartbeat_at=now)
            .returning(ConnectorState.inbox_id)
            .execution_options(synchronize_session=False)
        )
        return set(held)


async def release(db: Database, owner: str, inbox_ids: Collection[int]) -> None:
    """Give leases up at once (a clean stop), so another process need not wait them out."""
    if not inbox_ids:
        return
    async with db.write_session() as session:
        await session.execute(
            update(ConnectorState)
            .where(ConnectorState.inbox_id.in_(sorted(inbox_ids)), ConnectorState.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


async def hold(session: AsyncSession, inbox_id: int, owner: str, **values: Any) -> None:
    """Write ``values`` to the inbox's state row in the caller's transaction, only while
    this process owns the lease; :class:`LeaseLost` (rolling the transaction back) otherwise."""
    result = await session.execute(
        update(ConnectorState)
        .where(ConnectorState.inbox_id == inbox_id, ConnectorState.lease_owner == owner)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"inbox {inbox_id}: the lease moved to another process")


async def record(db: Database, inbox_id: int, owner: str, **values: Any) -> bool:
    """Write ``values`` to the state row in a transaction of their own, if still the owner."""
    try:
        async with db.write_session() as session:
            await hold(session, inbox_id, owner, **values)
        return True
    except LeaseLost:
        return False


async def load_cursor(db: Database, inbox_id: int) -> dict[str, Any]:
    """The inbox's saved cursor (``{}`` before the first fetch)."""
    async with db.read_session() as session:
        row = await session.get(ConnectorCursor, (inbox_id, CURSOR_NAME))
        return dict(row.value) if row is not None else {}


async def save_cursor(session: AsyncSession, inbox_id: int, value: dict[str, Any]) -> None:
    """Save the cursor in the caller's transaction (the one storing the messages it covers)."""
    row = await session.get(ConnectorCursor, (inbox_id, CURSOR_NAME))
    if row is None:
        session.add(ConnectorCursor(inbox_id=inbox_id, name=CURSOR_NAME, value=value))
    else:
        row.value = value
    await session.flush()


def after(seconds: float, now: datetime | None = None) -> datetime:
    """``now`` plus some seconds."""
    return (now or utcnow()) + timedelta(seconds=seconds)
