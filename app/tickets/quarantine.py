"""Inbound items a channel could not read: stored with the reason and the raw bytes.

Nothing a platform handed over is dropped. An item that cannot become a message (a mail
the MIME parser cannot read, a webhook event of an unknown shape) is written here, in the
same transaction as the cursor that moved past it, and administrators list it through
``GET /api/v1/accounts/{account_id}/inboxes/{inbox_id}/quarantine``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Inbox, QuarantinedMessage, utcnow
from app.storage import FileStore
from connectors.base import Quarantined


def raw_bytes(raw: Any) -> tuple[bytes, str]:
    """The bytes to keep for a quarantined item, and their content type."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw), "message/rfc822"
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape"), "text/plain"
    return json.dumps(raw, ensure_ascii=False, default=str).encode("utf-8"), "application/json"


def source_ref_of(item: Quarantined) -> str:
    """Where the item came from (``source_ref`` attribute), else a digest of its bytes."""
    ref = getattr(item, "source_ref", None)
    if ref:
        return str(ref)
    return "sha256:" + hashlib.sha256(raw_bytes(item.raw)[0]).hexdigest()


async def store_quarantined(
    session: AsyncSession, store: FileStore | None, inbox_id: int, items: Sequence[Quarantined]
) -> int:
    """Store items not stored yet for the inbox (by source ref); returns how many were new."""
    if not items:
        return 0
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        return 0
    refs = {source_ref_of(item): item for item in items}
    known = set(await session.scalars(select(QuarantinedMessage.source_ref).where(
        QuarantinedMessage.inbox_id == inbox_id, QuarantinedMessage.source_ref.in_(list(refs)))))
    stored = 0
    for ref, item in refs.items():
        if ref in known:
            continue
        data, content_type = raw_bytes(item.raw)
        name = "quarantined.eml" if content_type == "message/rfc822" else "quarantined.txt"
        path = store.save(inbox.account_id, data, name) if store else None
        session.add(QuarantinedMessage(
            account_id=inbox.account_id, inbox_id=inbox_id, source_ref=ref[:2000],
            error=str(item.reason).encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:4000],
            raw_path=path, raw_size=len(data),
            content_type=content_type, created_at=utcnow(),
        ))
        stored += 1
    await session.flush()
    return stored


async def list_quarantined(
    session: AsyncSession, account_id: int, inbox_id: int, *, before: int | None = None, limit: int = 50
) -> list[QuarantinedMessage]:
    """The inbox's quarantined items, newest first (``before``: an id, for paging)."""
    query = select(QuarantinedMessage).where(
        QuarantinedMessage.account_id == account_id, QuarantinedMessage.inbox_id == inbox_id)
    if before is not None:
        query = query.where(QuarantinedMessage.id < before)
    return list(await session.scalars(query.order_by(QuarantinedMessage.id.desc()).limit(limit)))


async def get_quarantined(session: AsyncSession, account_id: int, item_id: int) -> QuarantinedMessage | None:
    """One quarantined item of the account."""
    return await session.scalar(select(QuarantinedMessage).where(
        QuarantinedMessage.account_id == account_id, QuarantinedMessage.id == item_id))


def quarantined_json(item: QuarantinedMessage) -> dict[str, Any]:
    """The API shape of a quarantined item."""
    return {
        "id": item.id,
        "inbox_id": item.inbox_id,
        "source_ref": item.source_ref,
        "error": item.error,
        "raw_size": item.raw_size,
        "content_type": item.content_type,
        "created_at": item.created_at.isoformat() if item.created_at else None,
    }
