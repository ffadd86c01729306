"""Inboxes and inbox members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from app.api.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep
from app.api.schemas import InboxCreate, InboxMembers, InboxUpdate
from app.errors import NotFound
from app.tickets import inboxes as inbox_service
from app.tickets import quarantine
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


def _with_csat(channel: dict[str, Any] | None, enabled: bool | None) -> dict[str, Any] | None:
    """Chatwoot's top-level ``csat_survey_enabled`` goes with the channel settings."""
    if enabled is None:
        return channel
    return {**(channel or {}), "csat_survey_enabled": enabled}


@router.post("/inboxes", summary="Create an inbox for a channel (administrators)")
async def create_inbox(
    account_id: int, body: InboxCreate, request: Request, principal: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    inbox = await inbox_service.create_inbox(
        session, runtime.box, account_id, name=body.name, channel=_with_csat(body.channel, body.csat_survey_enabled),
        fields=body.model_dump(exclude={"name", "channel", "csat_survey_enabled"}, exclude_none=True),
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
        fields=body.model_dump(exclude={"channel", "csat_survey_enabled"}, exclude_none=True),
        channel=_with_csat(body.channel, body.csat_survey_enabled),
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


@router.get("/inboxes/{inbox_id}/quarantine", summary="List what the inbox could not read (administrators)")
async def list_quarantine(
    account_id: int, inbox_id: int, principal: AdminDep, session: SessionDep, before: int | None = None,
) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, account_id, inbox_id)
    rows = await quarantine.list_quarantined(session, account_id, inbox.id, before=before)
    return {"payload": [quarantine.quarantined_json(row) for row in rows]}


@router.get("/inboxes/{inbox_id}/quarantine/{quarantined_id}/raw", summary="Download a quarantined item's raw bytes (administrators)")
async def download_quarantined(
    account_id: int, inbox_id: int, quarantined_id: int, principal: AdminDep, session: SessionDep,
    runtime: RuntimeDep,
) -> Any:
    item = await quarantine.get_quarantined(session, account_id, quarantined_id)
    if item is None or item.inbox_id != inbox_id or not item.raw_path:
        raise NotFound("Quarantined message")
    return FileResponse(runtime.store.path(item.raw_path), media_type=item.content_type,
                        filename=f"quarantined-{item.id}.{'eml' if item.content_type == 'message/rfc822' else 'txt'}")
