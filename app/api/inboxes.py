"""Inboxes and inbox members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep
from app.api.schemas import InboxCreate, InboxMembers, InboxUpdate
from app.errors import NotFound
from app.tickets import inboxes as inbox_service
from app.tickets.presenters import agent_json, inbox_json

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["inboxes"])


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _visible_inbox(session: Any, principal: Any, inbox_id: int) -> Any:
    inbox = await inbox_service.get_inbox(session, principal.account_id, inbox_id)
    if not principal.can_see_inbox(inbox.id):
        raise NotFound("Inbox")
    return inbox


@router.get("/inboxes", summary="List inboxes (agents: their own)")
async def list_inboxes(account_id: int, request: Request, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    only = None if principal.is_admin else principal.inbox_ids
    rows = await inbox_service.list_inboxes(session, account_id, only)
    states = await inbox_service.connections(session, rows)
    return {"payload": [inbox_json(i, public_base_url=_base(request), connection=states.get(i.id)) for i in rows]}


async def _present(session: Any, inbox: Any, request: Request) -> dict[str, Any]:
    states = await inbox_service.connections(session, [inbox])
    return inbox_json(inbox, public_base_url=_base(request), connection=states.get(inbox.id))


@router.get("/inboxes/{inbox_id}", summary="Get an inbox")
async def get_inbox(account_id: int, inbox_id: int, request: Request, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return await _present(session, await _visible_inbox(session, principal, inbox_id), request)


@router.post("/inboxes", summary="Create an inbox for a channel (administrators)")
async def create_inbox(
    account_id: int, body: InboxCreate, request: Request, principal: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    inbox = await inbox_service.create_inbox(
        session, runtime.box, account_id, name=body.name, channel=body.channel,
        fields=body.model_dump(exclude={"name", "channel"}, exclude_none=True),
    )
    return await _present(session, inbox, request)


@router.patch("/inboxes/{inbox_id}", summary="Change an inbox (administrators)")
async def update_inbox(
    account_id: int, inbox_id: int, body: InboxUpdate, request: Request,
    principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, account_id, inbox_id)
    await inbox_service.update_inbox(
        session, runtime.box, inbox,
        fields=body.model_dump(exclude={"channel"}, exclude_none=True), channel=body.channel,
    )
    return await _present(session, inbox, request)


@router.delete("/inboxes/{inbox_id}", summary="Delete an inbox and its conversations (administrators)")
async def delete_inbox(account_id: int, inbox_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await inbox_service.delete_inbox(session, await inbox_service.get_inbox(session, account_id, inbox_id))
    return {}


@router.get("/inbox_members/{inbox_id}", summary="List an inbox's agents")
async def list_members(account_id: int, inbox_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    inbox = await _visible_inbox(session, principal, inbox_id)
    return {"payload": [agent_json(u) for u in await inbox_service.members(session, inbox)]}


@router.post("/inbox_members", summary="Add agents to an inbox (administrators)")
async def add_members(account_id: int, body: InboxMembers, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, account_id, body.inbox_id)
    await inbox_service.add_members(session, inbox, body.user_ids)
    return {"payload": [agent_json(u) for u in await inbox_service.members(session, inbox)]}


@router.patch("/inbox_members", summary="Set exactly these agents as an inbox's members (administrators)")
async def set_members(account_id: int, body: InboxMembers, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, account_id, body.inbox_id)
    await inbox_service.set_members(session, inbox, body.user_ids)
    return {"payload": [agent_json(u) for u in await inbox_service.members(session, inbox)]}


@router.delete("/inbox_members", summary="Remove agents from an inbox (administrators)")
async def remove_members(account_id: int, body: InboxMembers, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, account_id, body.inbox_id)
    await inbox_service.remove_members(session, inbox, body.user_ids)
    return {}
