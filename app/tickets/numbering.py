"""Per-account sequential conversation numbers (Chatwoot's ``display_id``)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Account


async def next_display_id(session: AsyncSession, account_id: int) -> int:
    """Take the account's next conversation number.

    The counter row stays locked until the transaction ends (on PostgreSQL), so numbers
    are gap-free and unique; ``UNIQUE(account_id, display_id)`` backs it up.
    """
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(last_display_id=Account.last_display_id + 1)
        .returning(Account.last_display_id)
    )
    return result.scalar_one()
