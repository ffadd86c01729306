"""Warnings for inboxes that have not fetched for too long.

Some platforms keep undelivered messages only for a while (Telegram: 24 hours). When a
pulled inbox has not fetched successfully for longer than its connector's
``stale_after``, an ``inbox.connection_warning`` event goes out, once per silence: the
conditional UPDATE on ``stale_warned_at`` lets only one process emit it, and a later
successful fetch re-arms it. Inboxes switched off (``disabled``) are not warned about.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, or_, select, update

from app.db import Database
from app.events.log import append_event
from app.models import ConnectorState, Inbox, utcnow
from connectors.registry import CONNECTORS


async def warn_stale_inboxes(db: Database, *, only: Collection[int] | None = None) -> int:
    """Emit the warnings that are due; returns how many were emitted."""
    now = utcnow()
    emitted = 0
    for channel_type, cls in CONNECTORS.items():
        if cls.stale_after is None:
            continue
        quiet_since = func.coalesce(ConnectorState.last_fetch_at, ConnectorState.created_at)
        due = (
            ConnectorState.state != "disabled",
            quiet_since < now - cls.stale_after,
            or_(ConnectorState.stale_warned_at.is_(None), ConnectorState.stale_warned_at < quiet_since),
        )
        query = (
            select(ConnectorState, Inbox)
            .join(Inbox, Inbox.id == ConnectorState.inbox_id)
            .where(Inbox.channel_type == channel_type, *due)
            .limit(500)
        )
        if only is not None:
            query = query.where(ConnectorState.inbox_id.in_(sorted(only)))
        async with db.read_session() as session:
            if not (await session.execute(query.limit(1))).first():
                continue  # nothing due: no write transaction
        async with db.write_session() as session:
            for state, inbox in (await session.execute(query)).all():
                won = await session.execute(
                    update(ConnectorState).where(ConnectorState.inbox_id == inbox.id, *due)
                    .values(stale_warned_at=now).execution_options(synchronize_session=False)
                )
                if won.rowcount != 1:
                    continue  # another process warned first
                last = state.last_fetch_at
                hours = cls.stale_after.total_seconds() / 3600
                append_event(
                    session, account_id=inbox.account_id, inbox_id=inbox.id,
                    event_type="inbox.connection_warning",
                    payload={
                        "inbox_id": inbox.id, "channel": channel_type, "state": state.state,
                        "last_fetch_at": last.isoformat() if last else None,
                        "last_error": state.last_error,
                        "message": f"{inbox.name}: nothing fetched for over {hours:g} hours; "
                                   "the platform may drop messages it holds for longer.",
                    },
                )
                emitted += 1
    return emitted
