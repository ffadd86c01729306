"""Ids for new rows, taken ahead in one query, so that rows can be inserted together.

A new row's id is often needed as soon as the row is made (other rows point to it). With
the id taken ahead, the rows of a batch are written in one statement instead of one
``INSERT … RETURNING id`` each: SQLAlchemy cannot batch the latter on SQLite (no INSERT
form there ties the new rowids to the order of the rows given, so the ORM falls back to a
statement per row), and on PostgreSQL every statement is a network round trip.

* PostgreSQL: ``nextval`` of the table's sequence, ``count`` times in one query; always safe.
* SQLite: ``max(id) + 1`` onwards, only inside a write unit of work. It holds the
  database's one write lock from its ``BEGIN IMMEDIATE`` (``app.db``), so no other
  connection inserts before the batch does, and a rowid table gives a new row
  ``max(id) + 1``. The caller must write the rows before the same transaction inserts
  others into the table without an id.
"""

from __future__ import annotations

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import WRITE_LOCKED

_NEXTVAL = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)")


def can_take(session: AsyncSession) -> bool:
    """Whether this session can take ids ahead (see the module docstring)."""
    return session.bind.dialect.name == "postgresql" or bool(session.sync_session.info.get(WRITE_LOCKED))


def orm_batches_only_given_ids(session: AsyncSession) -> bool:
    """SQLite in a write unit of work: the ORM's flush inserts new rows one statement
    each unless their ids are given, and here they can be taken ahead."""
    return session.bind.dialect.name == "sqlite" and can_take(session)


async def take_ids(session: AsyncSession, table: Table, count: int) -> list[int]:
    """``count`` ids for new rows of ``table`` (``can_take`` must hold), in one query."""
    if count <= 0:
        return []
    if session.bind.dialect.name == "postgresql":
        return list((await session.execute(_NEXTVAL, {"table": table.name, "count": count})).scalars())
    highest = int((await session.execute(select(func.coalesce(func.max(table.c.id), 0)))).scalar_one())
    return list(range(highest + 1, highest + 1 + count))
