"""Label definitions and canned responses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid, NotFound
from app.models import CannedResponse, Label


async def get_label(session: AsyncSession, account_id: int, label_id: int) -> Label:
    """A label of the account; NotFound otherwise."""
    label = await session.scalar(select(Label).where(Label.id == label_id, Label.account_id == account_id))
    if label is None:
        raise NotFound("Label")
    return label


async def list_labels(session: AsyncSession, account_id: int) -> list[Label]:
    """The account's labels by title."""
    return list(await session.scalars(select(Label).where(Label.account_id == account_id).order_by(Label.title)))


async def save_label(session: AsyncSession, account_id: int, label: Label | None, fields: dict[str, Any]) -> Label:
    """Create (``label`` None) or change a label."""
    title = fields.get("title")
    if label is None:
        if not title or not str(title).strip():
            raise Invalid("title can't be blank", field="title")
        label = Label(account_id=account_id, title=str(title).strip())
        session.add(label)
    elif title:
        label.title = str(title).strip()
    for key in ("description", "color", "show_on_sidebar"):
        if fields.get(key) is not None:
            setattr(label, key, fields[key])
    with session.no_autoflush:
        clash = await session.scalar(
            select(Label.id).where(Label.account_id == account_id, Label.title == label.title, Label.id != (label.id or 0))
        )
    if clash is not None:
        raise Conflict("title has already been taken", errors=[{"field": "title", "message": "taken"}])
    await session.flush()
    return label


async def get_canned(session: AsyncSession, account_id: int, item_id: int) -> CannedResponse:
    """A canned response of the account; NotFound otherwise."""
    item = await session.scalar(
        select(CannedResponse).where(CannedResponse.id == item_id, CannedResponse.account_id == account_id)
    )
    if item is None:
        raise NotFound("Canned response")
    return item


async def list_canned(session: AsyncSession, account_id: int, search: str | None = None) -> list[CannedResponse]:
    """Canned responses; with ``search``, short-code prefix matches first (Chatwoot's order)."""
    query = select(CannedResponse).where(CannedResponse.account_id == account_id)
    if search:
        pattern = f"%{search}%"
        query = query.where(or_(CannedResponse.short_code.ilike(pattern), CannedResponse.content.ilike(pattern)))
    rows = list(await session.scalars(query.order_by(CannedResponse.short_code)))
    if search:
        needle = search.lower()
        rows.sort(key=lambda r: (not r.short_code.lower().startswith(needle), needle not in r.short_code.lower()))
    return rows


async def save_canned(
    session: AsyncSession, account_id: int, item: CannedResponse | None, fields: dict[str, Any]
) -> CannedResponse:
    """Create (``item`` None) or change a canned response."""
    short_code = fields.get("short_code")
    content = fields.get("content")
    if item is None:
        if not short_code or not content:
            raise Invalid("short_code and content can't be blank", field="short_code" if not short_code else "content")
        item = CannedResponse(account_id=account_id, short_code=str(short_code).strip(), content=str(content))
        session.add(item)
    else:
        if short_code:
            item.short_code = str(short_code).strip()
        if content:
            item.content = str(content)
    with session.no_autoflush:
        clash = await session.scalar(
            select(CannedResponse.id).where(
                CannedResponse.account_id == account_id,
                CannedResponse.short_code == item.short_code,
                CannedResponse.id != (item.id or 0),
            )
        )
    if clash is not None:
        raise Conflict("short_code has already been taken", errors=[{"field": "short_code", "message": "taken"}])
    await session.flush()
    return item
