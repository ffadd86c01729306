"""Conversations: lookup, listing, creation and changes (status, assignee, team, labels)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.errors import Invalid, NotFound
from app.events.log import append_event
from app.models import (
    Contact,
    ContactInbox,
    Conversation,
    ConversationLabel,
    Inbox,
    InboxMember,
    Message,
    Team,
    User,
    utcnow,
)
from app.models.conversations import PRIORITIES, STATUSES
from app.sla import hooks as sla_hooks
from app.tickets import search, sorting
from app.tickets.numbering import next_display_id
from app.tickets.views import present_conversation

ASSIGNEE_TYPES = ("all", "me", "unassigned", "assigned")


async def get_conversation(
    session: AsyncSession, principal: Principal, display_id: int, *, for_update: bool = False
) -> Conversation:
    """A conversation the caller may see, by its display id; NotFound otherwise."""
    query = select(Conversation).where(
        Conversation.account_id == principal.account_id,
        Conversation.display_id == display_id,
        principal.inbox_filter(Conversation.inbox_id),
    )
    if for_update and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    conversation = await session.scalar(query)
    if conversation is None:
        raise NotFound("Conversation")
    return conversation


@dataclass(frozen=True)
class ConversationFilter:
    """The list filters of Chatwoot's conversation index."""

    status: str | None = "open"
    assignee_type: str = "all"
    inbox_id: int | None = None
    team_id: int | None = None
    labels: tuple[str, ...] = ()
    q: str | None = None


def _filtered(principal: Principal, f: ConversationFilter, *, with_assignee: bool = True,
              dialect: str = "sqlite") -> Select:
    query = select(Conversation).where(
        Conversation.account_id == principal.account_id,
        principal.inbox_filter(Conversation.inbox_id),
    )
    if f.status and f.status != "all":
        query = query.where(Conversation.status == f.status)
    if f.inbox_id is not None:
        query = query.where(Conversation.inbox_id == f.inbox_id)
    if f.team_id is not None:
        query = query.where(Conversation.team_id == f.team_id)
    if f.labels:  # any of the labels, as Chatwoot's filter does
        query = query.where(
            select(ConversationLabel.conversation_id)
            .where(
                ConversationLabel.conversation_id == Conversation.id,
                ConversationLabel.label.in_(f.labels),
            )
            .exists()
        )
    if f.q:
        query = query.where(
            search.conversation_condition(
                f.q, dialect, principal.account_id, Conversation.id, Conversation.contact_id, Conversation.display_id
            )
        )
    if with_assignee:
        query = _assignee_clause(query, principal, f.assignee_type)
    return query


def _assignee_clause(query: Select, principal: Principal, assignee_type: str) -> Select:
    if assignee_type == "me":
        return query.where(Conversation.assignee_id == principal.user.id)
    if assignee_type == "unassigned":
        return query.where(Conversation.assignee_id.is_(None))
    if assignee_type == "assigned":
        return query.where(Conversation.assignee_id.is_not(None))
    return query


async def count_conversations(
    session: AsyncSession, principal: Principal, f: ConversationFilter
) -> dict[str, int]:
    """Chatwoot's ``meta`` counts: mine, unassigned, assigned and all, in one query."""
    base = _filtered(principal, f, with_assignee=False, dialect=session.bind.dialect.name).subquery()
    row = (
        await session.execute(
            select(
                func.count().filter(base.c.assignee_id == principal.user.id),
                func.count().filter(base.c.assignee_id.is_(None)),
                func.count().filter(base.c.assignee_id.is_not(None)),
                func.count(),
            )
        )
    ).one()
    return {
        "mine_count": row[0],
        "unassigned_count": row[1],
        "assigned_count": row[2],
        "all_count": row[3],
    }


def encode_cursor(conversation: Conversation, sort: str = sorting.DEFAULT_SORT) -> str:
    """An opaque keyset cursor pointing just after ``conversation`` in order ``sort``."""
    return sorting.encode_cursor(sort, conversation)


async def list_conversations(
    session: AsyncSession,
    principal: Principal,
    f: ConversationFilter,
    *,
    page: int = 1,
    after: str | None = None,
    limit: int = 25,
    sort: str = sorting.DEFAULT_SORT,
) -> list[Conversation]:
    """A page of conversations in order ``sort`` (``app.tickets.sorting``; newest activity first).

    With ``after`` (a cursor from the previous page) the page is found by keyset on the
    sort's columns and the id, an index range scan however deep the page; page 1 the same
    way from the start; other ``page`` numbers (Chatwoot's) with OFFSET.
    """
    dialect = session.bind.dialect.name
    columns = sorting.SORTS[sort]
    base = _filtered(principal, f, dialect=dialect)
    if not after and page > 1:
        query = base.order_by(*sorting.order_by(sort)).offset((page - 1) * limit)
        return list(await session.scalars(query.limit(limit)))
    values = sorting.decode_cursor(sort, after) if after else None
    if not columns[0].nullable:
        query = base.order_by(*sorting.order_by(sort))
        if values is not None:
            query = query.where(sorting.after(columns, values, dialect))
        return list(await session.scalars(query.limit(limit)))
    # Nullable lead: the non-NULL rows first, then the NULL ones (each an index range).
    lead = columns[0].expr()
    rows: list[Conversation] = []
    if values is None or values[0] is not None:
        query = base.where(lead.is_not(None)).order_by(*sorting.order_by(sort, non_null_lead=True))
        if values is not None:
            query = query.where(sorting.after(columns, values, dialect))
        rows = list(await session.scalars(query.limit(limit)))
    if len(rows) < limit:
        query = base.where(lead.is_(None)).order_by(*sorting.order_by(sort)[1:])
        if values is not None and values[0] is None:
            query = query.where(sorting.after(columns[1:], values[1:], dialect))
        rows += await session.scalars(query.limit(limit - len(rows)))
    return rows


async def _check_assignee(session: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await session.scalar(
        select(User).where(User.id == user_id, User.account_id == principal.account_id)
    )
    if user is None:
        raise NotFound("Agent", field="assignee_id")
    return user


async def _check_team(session: AsyncSession, principal: Principal, team_id: int) -> Team:
    team = await session.scalar(
        select(Team).where(Team.id == team_id, Team.account_id == principal.account_id)
    )
    if team is None:
        raise NotFound("Team", field="team_id")
    return team


async def create_conversation(
    session: AsyncSession,
    principal: Principal,
    *,
    inbox_id: int,
    source_id: str | None = None,
    contact_id: int | None = None,
    status: str = "open",
    assignee_id: int | None = None,
    team_id: int | None = None,
    additional_attributes: dict[str, Any] | None = None,
    custom_attributes: dict[str, Any] | None = None,
) -> Conversation:
    """Start a conversation with a contact on an inbox (agent-initiated)."""
    inbox = await session.scalar(
        select(Inbox).where(Inbox.id == inbox_id, Inbox.account_id == principal.account_id)
    )
    if inbox is None or not principal.can_see_inbox(inbox.id):
        raise NotFound("Inbox", field="inbox_id")
    if status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
    contact_inbox = None
    if source_id:
        contact_inbox = await session.scalar(
            select(ContactInbox).where(
                ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == source_id
            )
        )
    if contact_inbox is None and contact_id is not None:
        contact = await session.scalar(
            select(Contact).where(Contact.id == contact_id, Contact.account_id == principal.account_id)
        )
        if contact is None:
            raise NotFound("Contact", field="contact_id")
        contact_inbox = await session.scalar(
            select(ContactInbox)
            .where(ContactInbox.inbox_id == inbox.id, ContactInbox.contact_id == contact.id)
            .order_by(ContactInbox.id)
            .limit(1)
        )
        if contact_inbox is None:
            contact_inbox = ContactInbox(
                contact_id=contact.id, inbox_id=inbox.id, source_id=source_id or _new_source_id()
            )
            session.add(contact_inbox)
            await session.flush()
    if contact_inbox is None:
        raise Invalid("give a contact_id or the source_id of a contact on this inbox", field="source_id")
    if assignee_id is not None:
        await _check_assignee(session, principal, assignee_id)
    if team_id is not None:
        await _check_team(session, principal, team_id)
    return await start_conversation(
        session, inbox, contact_inbox, status=status, assignee_id=assignee_id, team_id=team_id,
        additional_attributes=additional_attributes, custom_attributes=custom_attributes,
    )


async def start_conversation(
    session: AsyncSession,
    inbox: Inbox,
    contact_inbox: ContactInbox,
    *,
    status: str = "open",
    assignee_id: int | None = None,
    team_id: int | None = None,
    thread_key: str | None = None,
    additional_attributes: dict[str, Any] | None = None,
    custom_attributes: dict[str, Any] | None = None,
) -> Conversation:
    """A new conversation on ``inbox`` with the contact behind ``contact_inbox``."""
    now = utcnow()
    conversation = Conversation(
        account_id=inbox.account_id,
        display_id=await next_display_id(session, inbox.account_id),
        inbox_id=inbox.id,
        contact_id=contact_inbox.contact_id,
        contact_inbox_id=contact_inbox.id,
        status=status,
        assignee_id=assignee_id,
        team_id=team_id,
        thread_key=thread_key,
        last_activity_at=now,
        additional_attributes=additional_attributes or {},
        custom_attributes=custom_attributes or {},
        created_at=now,
    )
    session.add(conversation)
    await session.flush()
    await emit(session, conversation, "conversation.created")
    return conversation


def _new_source_id() -> str:
    import uuid

    return str(uuid.uuid4())


async def emit(
    session: AsyncSession,
    conversation: Conversation,
    event_type: str,
    changed: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Queue a conversation event carrying the conversation's REST shape."""
    await session.flush()
    body = await present_conversation(session, conversation)
    if changed:
        body["changed_attributes"] = changed
    append_event(
        session,
        account_id=conversation.account_id,
        inbox_id=conversation.inbox_id,
        conversation_id=conversation.id,
        event_type=event_type,
        payload=body,
    )
    return body


async def _activity(session: AsyncSession, conversation: Conversation, text: str) -> None:
    """An activity line in the conversation (assigned, resolved, reopened, …)."""
    from app.tickets.replies import add_activity

    await add_activity(session, conversation, text)


async def change_status(
    session: AsyncSession,
    principal: Principal,
    conversation: Conversation,
    status: str,
    *,
    snoozed_until: datetime | None = None,
) -> None:
    """Set the status; resolving clears the waiting clock; emits status_changed."""
    if status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
    previous = conversation.status
    if status == "snoozed":
        conversation.snoozed_until = snoozed_until
    else:
        conversation.snoozed_until = None
    if previous == status and status != "snoozed":
        return
    conversation.status = status
    if status == "resolved":
        conversation.waiting_since = None
    inbox = await session.get(Inbox, conversation.inbox_id)
    assert inbox is not None
    await sla_hooks.after_status(session, conversation, inbox, previous, utcnow())
    await _activity(
        session,
        conversation,
        {
            "resolved": f"Conversation was marked resolved by {principal.user.name}",
            "open": f"Conversation was reopened by {principal.user.name}",
            "pending": f"Conversation was marked pending by {principal.user.name}",
            "snoozed": f"Conversation was snoozed by {principal.user.name}",
        }[status],
    )
    await emit(
        session,
        conversation,
        "conversation.status_changed",
        {"status": {"previous_value": previous, "current_value": status}},
    )
    if status == "resolved":
        from app.config import get_settings
        from app.reports import csat

        await csat.on_resolved(session, conversation, inbox, get_settings().public_url)


async def assign(
    session: AsyncSession,
    principal: Principal,
    conversation: Conversation,
    *,
    assignee_id: int | None | object = ...,
    team_id: int | None | object = ...,
) -> None:
    """Assign to an agent and/or a team (None unassigns); emits assignee/team.changed."""
    if assignee_id is not ... and assignee_id != conversation.assignee_id:
        previous = conversation.assignee_id
        if assignee_id is None:
            conversation.assignee_id = None
            await _activity(session, conversation, f"Conversation unassigned by {principal.user.name}")
        else:
            user = await _check_assignee(session, principal, int(assignee_id))  # type: ignore[arg-type]
            conversation.assignee_id = user.id
            await _activity(
                session, conversation, f"Assigned to {user.name} by {principal.user.name}"
            )
        await emit(
            session,
            conversation,
            "assignee.changed",
            {"assignee_id": {"previous_value": previous, "current_value": conversation.assignee_id}},
        )
    if team_id is not ... and team_id != conversation.team_id:
        previous = conversation.team_id
        if team_id is None:
            conversation.team_id = None
        else:
            team = await _check_team(session, principal, int(team_id))  # type: ignore[arg-type]
            conversation.team_id = team.id
            await _activity(
                session, conversation, f"Assigned to {team.name} team by {principal.user.name}"
            )
        await emit(
            session,
            conversation,
            "team.changed",
            {"team_id": {"previous_value": previous, "current_value": conversation.team_id}},
        )


async def update_attributes(
    session: AsyncSession,
    conversation: Conversation,
    *,
    priority: str | None | object = ...,
    custom_attributes: dict[str, Any] | None = None,
    additional_attributes: dict[str, Any] | None = None,
) -> None:
    """Priority and attribute changes; emits conversation.updated when anything changed."""
    changed: dict[str, dict[str, Any]] = {}
    if priority is not ... and priority != conversation.priority:
        if priority is not None and priority not in PRIORITIES and priority != "none":
            raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}", field="priority")
        new = None if priority == "none" else priority
        changed["priority"] = {"previous_value": conversation.priority, "current_value": new}
        conversation.priority = new  # type: ignore[assignment]
    if custom_attributes is not None:
        merged = {**(conversation.custom_attributes or {}), **custom_attributes}
        changed["custom_attributes"] = {
            "previous_value": conversation.custom_attributes,
            "current_value": merged,
        }
        conversation.custom_attributes = merged
    if additional_attributes is not None:
        merged = {**(conversation.additional_attributes or {}), **additional_attributes}
        changed["additional_attributes"] = {
            "previous_value": conversation.additional_attributes,
            "current_value": merged,
        }
        conversation.additional_attributes = merged
    if changed:
        await emit(session, conversation, "conversation.updated", changed)


async def labels_of(session: AsyncSession, conversation: Conversation) -> list[str]:
    """The conversation's labels."""
    rows = await session.scalars(
        select(ConversationLabel.label)
        .where(ConversationLabel.conversation_id == conversation.id)
        .order_by(ConversationLabel.label)
    )
    return list(rows)


async def set_labels(
    session: AsyncSession, conversation: Conversation, labels: list[str]
) -> list[str]:
    """Replace the conversation's labels (Chatwoot's POST …/labels semantics)."""
    wanted = sorted({label.strip() for label in labels if label and label.strip()})
    current = await labels_of(session, conversation)
    if wanted == current:
        return current
    await session.execute(
        delete(ConversationLabel).where(ConversationLabel.conversation_id == conversation.id)
    )
    for label in wanted:
        session.add(ConversationLabel(conversation_id=conversation.id, label=label))
    await emit(
        session,
        conversation,
        "conversation.updated",
        {"labels": {"previous_value": current, "current_value": wanted}},
    )
    return wanted


async def mark_seen(session: AsyncSession, conversation: Conversation) -> None:
    """The agent has read the conversation up to now (resets the unread count)."""
    conversation.agent_last_seen_at = utcnow()


async def member_inbox_ids(session: AsyncSession, user: User) -> frozenset[int]:
    """The inboxes an agent is a member of."""
    rows = await session.scalars(select(InboxMember.inbox_id).where(InboxMember.user_id == user.id))
    return frozenset(rows)
