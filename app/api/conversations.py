"""Conversations, their status, assignments and labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import PrincipalDep, RuntimeDep, SessionDep
from app.api.schemas import Assignment, ConversationCreate, ConversationUpdate, Labels, TogglePriority, ToggleStatus
from app.errors import Invalid
from app.sla.service import apply_policy
from app.models import Team, User
from app.tickets import conversations as service
from app.tickets import replies, search, sorting
from app.tickets.presenters import agent_json, team_json
from app.tickets.views import present_conversation, present_conversations

router = APIRouter(prefix="/api/v1/accounts/{account_id}/conversations", tags=["conversations"])


def _when(value: datetime | int | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        raise Invalid("snoozed_until needs a time zone", field="snoozed_until")
    return value


LabelsQuery = Annotated[list[str] | None, Query(alias="labels[]")]
#: ``labels=a`` or ``labels=a,b``: Rails hands Chatwoot these too (the SDK's get_counts sends them).
PlainLabelsQuery = Annotated[list[str] | None, Query(alias="labels", include_in_schema=False)]


def _labels(bracketed: list[str] | None, plain: list[str] | None) -> tuple[str, ...]:
    """The label filter from ``labels[]=…`` and/or comma-separated ``labels=…``."""
    split = [part.strip() for value in plain or () for part in value.split(",")]
    return tuple(label for label in [*(bracketed or ()), *split] if label)


def _filter(status: str, assignee_type: str, inbox_id: int | None, team_id: int | None,
            labels: tuple[str, ...], q: str | None) -> service.ConversationFilter:
    """Chatwoot's index filters; as in Chatwoot, a search (``q``) ignores the status."""
    if assignee_type not in service.ASSIGNEE_TYPES:
        raise Invalid(f"assignee_type must be one of {', '.join(service.ASSIGNEE_TYPES)}", field="assignee_type")
    q = search.normalize_query(q)
    return service.ConversationFilter(
        status="all" if q else status, assignee_type=assignee_type, inbox_id=inbox_id, team_id=team_id,
        labels=labels, q=q or None,
    )


@router.get("", summary="List conversations (Chatwoot filters; `after` for keyset paging)")
async def list_conversations(
    account_id: int,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: str = "open",
    assignee_type: str = "all",
    inbox_id: int | None = None,
    team_id: int | None = None,
    labels: LabelsQuery = None,
    plain_labels: PlainLabelsQuery = None,
    q: str | None = None,
    sort_by: str | None = Query(default=None, description="Chatwoot's orders: `last_activity_at_desc` "
                                "(default), `last_activity_at_asc`, `created_at_desc|asc`, `priority_desc|asc`, "
                                "`waiting_since_asc|desc`; and `sla_due_at_asc`: soonest SLA due time first, "
                                "conversations without a running clock last."),
    page: int = Query(default=1, ge=1),
    after: str | None = Query(default=None, description="Cursor from `meta.next_cursor`; "
                              "keyset paging, as fast on page 10,000 as on page 1. "
                              "Cursor pages skip the counts (use /conversations/meta)."),
) -> dict[str, Any]:
    f = _filter(status, assignee_type, inbox_id, team_id, _labels(labels, plain_labels), q)
    sort = sorting.resolve(sort_by)
    limit = runtime.settings.page_size
    rows = await service.list_conversations(session, principal, f, page=page, after=after, limit=limit, sort=sort)
    meta: dict[str, Any] = {"current_page": page if after is None else None}
    if after is None:
        meta.update(await service.count_conversations(session, principal, f))
    meta["sort_by"] = sort
    meta["next_cursor"] = service.encode_cursor(rows[-1], sort) if len(rows) == limit else None
    return {"data": {"meta": meta, "payload": await present_conversations(session, rows)}}


@router.get("/meta", summary="Conversation counts: mine, unassigned, assigned, all")
async def conversation_meta(
    account_id: int,
    principal: PrincipalDep,
    session: SessionDep,
    status: str = "open",
    inbox_id: int | None = None,
    team_id: int | None = None,
    labels: LabelsQuery = None,
    plain_labels: PlainLabelsQuery = None,
    q: str | None = None,
) -> dict[str, Any]:
    f = _filter(status, "all", inbox_id, team_id, _labels(labels, plain_labels), q)
    return {"meta": await service.count_conversations(session, principal, f)}


@router.get("/search", summary="Search conversations by message text, contact or number (any script)")
async def search_conversations(
    account_id: int,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    q: str = "",
    assignee_type: str = "all",
    inbox_id: int | None = None,
    page: int = Query(default=1, ge=1),
) -> dict[str, Any]:
    """Chatwoot's ``conversations/search``: every status, newest activity first.

    An empty ``q`` finds nothing; one or two characters scan (no trigram index helps),
    three or more use the trigram index.
    """
    f = _filter("all", assignee_type, inbox_id, None, (), q)
    if not f.q:
        empty = {"mine_count": 0, "unassigned_count": 0, "assigned_count": 0, "all_count": 0}
        return {"data": {"meta": {**empty, "current_page": page}, "payload": []}}
    limit = runtime.settings.page_size
    rows = await service.list_conversations(session, principal, f, page=page, limit=limit)
    meta: dict[str, Any] = {**await service.count_conversations(session, principal, f), "current_page": page}
    return {"data": {"meta": meta, "payload": await present_conversations(session, rows)}}


@router.post("", summary="Start a conversation with a contact")
async def create_conversation(
    account_id: int, body: ConversationCreate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await service.create_conversation(
        session, principal, **body.model_dump(exclude={"message"}, exclude_none=True)
    )
    if body.message and body.message.get("content"):
        await replies.create_message(session, principal, conversation, content=str(body.message["content"]))
    return await present_conversation(session, conversation)


@router.get("/{conversation_id}", summary="Get a conversation")
async def get_conversation(account_id: int, conversation_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return await present_conversation(session, await service.get_conversation(session, principal, conversation_id))


@router.patch("/{conversation_id}", summary="Change status, priority, assignee, team or attributes")
async def update_conversation(
    account_id: int, conversation_id: int, body: ConversationUpdate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id, for_update=True)
    given = body.model_fields_set
    if "status" in given and body.status:
        await service.change_status(session, principal, conversation, body.status, snoozed_until=_when(body.snoozed_until))
    await service.assign(
        session, principal, conversation,
        assignee_id=body.assignee_id if "assignee_id" in given else ...,
        team_id=body.team_id if "team_id" in given else ...,
    )
    if "sla_policy_id" in given:
        await apply_policy(session, conversation, body.sla_policy_id)
    await service.update_attributes(
        session, conversation,
        priority=body.priority if "priority" in given else ...,
        custom_attributes=body.custom_attributes,
        additional_attributes=body.additional_attributes,
    )
    return await present_conversation(session, conversation)


@router.post("/{conversation_id}/toggle_status", summary="Set the status (toggles open/resolved when none is given)")
async def toggle_status(
    account_id: int, conversation_id: int, body: ToggleStatus, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id, for_update=True)
    status = body.status or ("open" if conversation.status == "resolved" else "resolved")
    await service.change_status(session, principal, conversation, status, snoozed_until=_when(body.snoozed_until))
    return {
        "meta": {},
        "payload": {
            "success": True,
            "current_status": conversation.status,
            "conversation_id": conversation.display_id,
            "snoozed_until": int(conversation.snoozed_until.timestamp()) if conversation.snoozed_until else None,
        },
    }


@router.post("/{conversation_id}/toggle_priority", summary="Set the priority")
async def toggle_priority(
    account_id: int, conversation_id: int, body: TogglePriority, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id, for_update=True)
    await service.update_attributes(session, conversation, priority=body.priority)
    return {"success": True, "priority": conversation.priority}


@router.post("/{conversation_id}/custom_attributes", summary="Merge custom attributes")
async def custom_attributes(
    account_id: int, conversation_id: int, body: dict[str, Any], principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id, for_update=True)
    attributes = body.get("custom_attributes")
    if not isinstance(attributes, dict):
        raise Invalid("custom_attributes must be an object", field="custom_attributes")
    await service.update_attributes(session, conversation, custom_attributes=attributes)
    return {"custom_attributes": conversation.custom_attributes}


@router.post("/{conversation_id}/assignments", summary="Assign to an agent or a team")
async def assignments(
    account_id: int, conversation_id: int, body: Assignment, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any] | None:
    conversation = await service.get_conversation(session, principal, conversation_id, for_update=True)
    given = body.model_fields_set
    if "team_id" in given and "assignee_id" not in given:
        await service.assign(session, principal, conversation, team_id=body.team_id)
        team = await session.get(Team, conversation.team_id) if conversation.team_id else None
        return team_json(team) if team else None
    await service.assign(session, principal, conversation, assignee_id=body.assignee_id)
    user = await session.get(User, conversation.assignee_id) if conversation.assignee_id else None
    return agent_json(user) if user else None


@router.get("/{conversation_id}/labels", summary="A conversation's labels")
async def get_labels(account_id: int, conversation_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id)
    return {"payload": await service.labels_of(session, conversation)}


@router.post("/{conversation_id}/labels", summary="Replace a conversation's labels")
async def set_labels(
    account_id: int, conversation_id: int, body: Labels, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id, for_update=True)
    return {"payload": await service.set_labels(session, conversation, body.labels)}


@router.post("/{conversation_id}/update_last_seen", summary="Mark the conversation read by agents")
async def update_last_seen(account_id: int, conversation_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    conversation = await service.get_conversation(session, principal, conversation_id)
    await service.mark_seen(session, conversation)
    return {"success": True}
