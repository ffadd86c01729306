"""The one ingest path: every channel's messages enter the ticket model here.

:func:`ingest_batch` takes :class:`InboundMessage` objects inside a unit of work and
for each one finds or creates the contact and its identity on the inbox, finds the
conversation (by thread key, then by the ids the message replies to), reopens or starts
one as needed, keeps ``waiting_since``, ``first_reply_created_at`` and
``last_activity_at`` right, stores the message and queues its events.

Exactly once: ``UNIQUE(inbox_id, source_id)`` on messages. A message already stored
answers ``duplicate`` and changes nothing. When two processes race on the same message,
the loser's transaction fails on the unique index and :func:`ingest_messages` retries
it, which then finds the winner's row.

A batch costs a fixed number of lookups, not a few per message: the stored messages, the
senders' identities and the conversations of the batch's thread keys and identities are
loaded up front (a handful of ``IN`` queries), then kept up to date in memory as the batch
creates rows. Changes to conversations and contacts are flushed together at the end of the
batch rather than before every query (autoflush is off inside the batch; rows that later
lookups must see, new contacts, identities and conversations, are flushed as they are
made). Messages are inserted together, in batch order, in one multi-row ``INSERT …
RETURNING id`` at the end of the batch, their attachments in a second one right after
(the files are saved as each message is taken); their event payloads get their ids then.
A reply looked up by the ids it answers finds the batch's own messages in memory, and
the others in one query.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Literal

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from app.db import Database
from app.errors import NotFound
from app.events.log import append_event, hold_conversation
from app.models import (
    Account,
    AgentBotInbox,
    Attachment,
    Contact,
    ContactInbox,
    Conversation,
    ConversationLabel,
    Inbox,
    Message,
    Team,
    User,
    utcnow,
)
from app.models.conversations import new_conversation_uuid
from app.sla import hooks as sla_hooks
from app.sla.engine import update_reply_window
from app.storage import FileStore
from app.tickets import ids_ahead, new_conversations, presenters
from app.tickets.views import conversation_labels
from connectors.base import InboundAttachment, InboundMessage

DEFAULT_REOPEN_WINDOW_DAYS = 30
MAX_RACE_RETRIES = 3
#: Keys per ``IN (…)`` of the batch lookups (well below every driver's parameter limit).
_IN_CHUNK = 500


@dataclass(frozen=True)
class IngestResult:
    """What ingest did with one message."""

    status: Literal["created", "duplicate"]
    message_id: int
    conversation_id: int
    conversation_created: bool = False


@dataclass(eq=False)
class _PendingMessage:
    """A message row decided on and waiting for the batch's insert."""

    row: dict[str, Any]
    conversation_id: int
    conversation_created: bool
    #: Its ``message.created`` payload, which shows its id once it has one.
    body: dict[str, Any] | None = None
    id: int | None = None
    #: Its attachments' rows (files already saved), inserted right after the message;
    #: the payload lists them then.
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def result(self) -> IngestResult:
        assert self.id is not None, "the batch's messages are inserted before results are read"
        return IngestResult("created", self.id, self.conversation_id, self.conversation_created)


@dataclass
class _BatchContext:
    """Rows looked up once per batch, kept current as the batch writes."""

    inboxes: dict[int, Inbox] = field(default_factory=dict)
    identities: dict[tuple[int, str], tuple[ContactInbox, Contact]] = field(default_factory=dict)
    #: (inbox_id, sender source_id) known to have no identity yet.
    no_identity: set[tuple[int, str]] = field(default_factory=set)
    #: Contacts this batch created whose ``contact.created`` is still to be queued.
    unannounced: set[Contact] = field(default_factory=set)
    #: (inbox_id, source_id) -> (message id, conversation id) of the messages stored, or
    #: the pending message of this batch …
    stored: dict[tuple[int, str], tuple[int, int] | _PendingMessage] = field(default_factory=dict)
    #: … among the (inbox_id, source_id) looked up.
    checked: set[tuple[int, str]] = field(default_factory=set)
    #: The newest conversation of a thread key and of an identity (None: there is none).
    by_thread: dict[tuple[int, str], Conversation | None] = field(default_factory=dict)
    by_contact_inbox: dict[int, Conversation | None] = field(default_factory=dict)
    #: Labels of the conversations at hand (ingest never changes labels).
    labels: dict[int, list[str]] = field(default_factory=dict)
    #: Whether an inbox has an active agent bot (its new conversations start pending).
    bot_inboxes: dict[int, bool] = field(default_factory=dict)
    #: Messages decided on and not inserted yet, in batch order.
    pending: list[_PendingMessage] = field(default_factory=list)
    #: Conversation numbers taken for the batch's new conversations, per account (those
    #: left unused at the batch's end are given back: see ``_give_back_display_ids``).
    display_ids: dict[int, list[int]] = field(default_factory=dict)
    #: How many conversations the batch may create at most, until their ids are taken …
    possible_new_conversations: int = 0
    #: … and those ids, taken ahead (see ``app.tickets.new_conversations``).
    conversation_ids: list[int] = field(default_factory=list)
    #: Attachment files to write (path reserved in the store, data) before the commit.
    files: list[tuple[str, bytes]] = field(default_factory=list)


async def ingest_batch(
    session: AsyncSession,
    messages: Sequence[InboundMessage],
    *,
    store: FileStore | None = None,
    reopen_window_days: int = DEFAULT_REOPEN_WINDOW_DAYS,
    now: datetime | None = None,
) -> list[IngestResult]:
    """Ingest messages in the caller's transaction (services never commit)."""
    context = _BatchContext()
    outcomes: list[IngestResult | _PendingMessage] = []
    with session.no_autoflush:
        await _prefetch(session, context, messages, now or utcnow())
        for message in messages:
            outcomes.append(
                await _ingest_one(
                    session,
                    message,
                    context,
                    store=store,
                    reopen_window_days=reopen_window_days,
                    now=now or utcnow(),
                )
            )
        await _give_back_display_ids(session, context)
        async with _files_written(store, context.files):
            await _insert_pending(session, context)
            await session.flush()
    return [o.result() if isinstance(o, _PendingMessage) else o for o in outcomes]


@asynccontextmanager
async def _files_written(store: FileStore | None, files: list[tuple[str, bytes]]) -> AsyncIterator[None]:
    """Write the batch's attachment files in a worker thread while the body runs (the
    batch's inserts), and leave only once they are all written: the rows naming them are
    committed after this, so a committed row never names a missing file.

    Creating a file can wait several milliseconds for the file system's journal while
    the database syncs; in the event loop that wait stalled everything else.
    """
    if store is None or not files:
        yield
        return
    writing = asyncio.ensure_future(asyncio.to_thread(store.write_all, list(files)))
    try:
        yield
    except BaseException:
        await asyncio.wait([writing])  # the thread runs to its end; the body's error comes first
        raise
    await writing


async def ingest(
    session: AsyncSession,
    message: InboundMessage,
    *,
    store: FileStore | None = None,
    reopen_window_days: int = DEFAULT_REOPEN_WINDOW_DAYS,
    now: datetime | None = None,
) -> IngestResult:
    """Ingest one message in the caller's transaction."""
    (result,) = await ingest_batch(
        session, [message], store=store, reopen_window_days=reopen_window_days, now=now
    )
    return result


async def ingest_messages(
    db: Database,
    messages: Sequence[InboundMessage],
    *,
    store: FileStore | None = None,
    reopen_window_days: int = DEFAULT_REOPEN_WINDOW_DAYS,
    also: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> list[IngestResult]:
    """Ingest messages in one transaction of their own and commit.

    ``also`` runs inside the same transaction (a connector saves its cursor there, so
    the cursor moves only with the messages it covers). Races with another process on
    the same message are retried; the retry sees the other's row as a duplicate.
    """
    for attempt in range(MAX_RACE_RETRIES):
        try:
            async with db.write_session() as session:
                results = await ingest_batch(
                    session, messages, store=store, reopen_window_days=reopen_window_days
                )
                if also is not None:
                    await also(session)
            return results
        except DBAPIError as exc:
            if not is_retryable_race(exc) or attempt == MAX_RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


#: PostgreSQL's deadlock and serialization failures: the transaction can simply run again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_retryable_race(exc: DBAPIError) -> bool:
    """A unique-index collision with another process, or a deadlock it caused."""
    if isinstance(exc, IntegrityError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
    return sqlstate in _RETRYABLE_SQLSTATES


async def _ingest_one(
    session: AsyncSession,
    inbound: InboundMessage,
    context: _BatchContext,
    *,
    store: FileStore | None,
    reopen_window_days: int,
    now: datetime,
) -> IngestResult | _PendingMessage:
    stored_key = (inbound.inbox_id, inbound.source_id)
    if stored_key not in context.checked:
        await _load_stored(session, context, inbound.inbox_id, [inbound.source_id])
    existing = context.stored.get(stored_key)
    if isinstance(existing, _PendingMessage):
        await _insert_pending(session, context)  # the duplicate's result names its id
        return IngestResult("duplicate", existing.id or 0, existing.conversation_id)
    if existing is not None:
        return IngestResult("duplicate", existing[0], existing[1])

    inbox = await _inbox(session, context, inbound.inbox_id)
    sent_at = _sent_at(inbound, now)
    message_type = "incoming" if inbound.direction == "incoming" else "outgoing"
    contact_inbox, contact, contact_created = await _identity(session, context, inbox, inbound, now)
    window = inbox.reopen_window_days or reopen_window_days

    conversation = await _find_conversation(session, context, inbox, inbound, contact_inbox)
    created = False
    previous_status = None
    if conversation is not None and conversation.status == "resolved":
        if inbound.automatic or inbound.direction == "outgoing":
            pass  # machine mail and echoes never reopen
        elif conversation.last_activity_at < now - timedelta(days=window):
            conversation = None  # too old: a new conversation
        else:
            previous_status = conversation.status
            conversation.status = "pending" if await _has_bot(session, context, inbox.id) else "open"
    elif conversation is not None and conversation.status == "snoozed" and _reopens(inbound):
        previous_status = conversation.status
        conversation.status = "open"
        conversation.snoozed_until = None

    if conversation is None:
        conversation = await _new_conversation(
            session, context, inbox, contact, contact_inbox, inbound, message_type, sent_at,
            status="pending" if await _has_bot(session, context, inbox.id) else "open",
        )
        created = True
        context.by_contact_inbox[contact_inbox.id] = conversation
        if conversation.thread_key:
            context.by_thread[(inbox.id, conversation.thread_key)] = conversation
        context.labels[conversation.id] = []

    additional: dict[str, Any] = {}
    if inbound.subject:
        additional["subject"] = inbound.subject
    if inbound.in_reply_to:
        additional["in_reply_to"] = inbound.in_reply_to
    if inbound.metadata:
        additional["metadata"] = inbound.metadata
    message_row = {
        "account_id": inbox.account_id,
        "inbox_id": inbox.id,
        "conversation_id": conversation.id,
        "message_type": message_type,
        "content_type": "incoming_email" if inbox.channel_type == "email" else "text",
        "content": inbound.text,
        "html_content": inbound.html,
        "private": False,
        "source_id": inbound.source_id,
        "sender_type": "contact" if message_type == "incoming" else None,
        "sender_id": contact.id if message_type == "incoming" else None,
        "status": "sent",
        "automatic": inbound.automatic,
        "content_attributes": {"external_echo": True} if message_type == "outgoing" else {},
        "additional_attributes": additional,
        "created_at": sent_at,
        "updated_at": now,
    }
    pending = _PendingMessage(message_row, conversation.id, created,
                              attachments=_attachment_rows(store, inbox.account_id, inbound.attachments,
                                                           context.files))
    context.pending.append(pending)
    context.stored[stored_key] = pending
    context.checked.add(stored_key)

    if not created:  # a new conversation was inserted with its clocks set
        _apply_message_to_conversation(conversation, message_type, inbound.automatic, sent_at)
    if inbound.conversation_attributes:
        conversation.custom_attributes = {
            **(conversation.custom_attributes or {}),
            **inbound.conversation_attributes,
        }
    if message_type == "incoming":
        contact.last_activity_at = max(contact.last_activity_at or sent_at, sent_at)
    await sla_hooks.after_ingest(
        session, conversation, inbox, message_type=message_type, automatic=inbound.automatic,
        at=sent_at, created=created, previous_status=previous_status,
    )

    await _queue_events(
        session,
        context,
        inbox=inbox,
        contact=contact,
        contact_inbox=contact_inbox,
        conversation=conversation,
        message=pending,
        contact_created=contact_created,
        conversation_created=created,
        previous_status=previous_status,
    )
    return pending


#: Core inserts of the batch's messages and attachments (the ORM's unit of work is not
#: needed for plain rows). Each row's id is matched to it by columns that tell the rows
#: apart: asking for the ids in the rows' order (``sort_by_parameter_order``) would make
#: SQLAlchemy send SQLite one INSERT per row, as SQLite cannot promise that order.
_MESSAGE_KEY = ("inbox_id", "source_id")  # unique
_ATTACHMENT_KEY = ("message_id", "storage_path", "external_url", "file_name", "content_type")
_INSERT_MESSAGES = insert(Message.__table__).returning(
    Message.__table__.c.id, *(Message.__table__.c[k] for k in _MESSAGE_KEY)
)
_INSERT_ATTACHMENTS = insert(Attachment.__table__).returning(
    Attachment.__table__.c.id, *(Attachment.__table__.c[k] for k in _ATTACHMENT_KEY)
)


async def _insert_rows(
    session: AsyncSession, statement: Any, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> list[int]:
    """Insert ``rows`` (one statement) and return their ids in the rows' order; rows
    alike in every ``key`` column are interchangeable and get theirs in ascending order."""
    ids: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for returned in await session.execute(statement, rows):
        ids[tuple(returned[1:])].append(returned[0])
    for found in ids.values():
        found.sort(reverse=True)
    return [ids[tuple(row[k] for k in key)].pop() for row in rows]


async def _insert_pending(session: AsyncSession, context: _BatchContext) -> None:
    """Insert the messages waiting in the batch, in order, and give them their ids."""
    if not context.pending:
        return
    await new_conversations.write_waiting(session)
    ids = await _insert_rows(session, _INSERT_MESSAGES, [p.row for p in context.pending], _MESSAGE_KEY)
    attachments = []
    for pending, message_id in zip(context.pending, ids, strict=True):
        pending.id = message_id
        if pending.body is not None:
            pending.body["id"] = message_id
        for row in pending.attachments:
            row["message_id"] = message_id
            attachments.append(row)
    if attachments:
        attachment_ids = await _insert_rows(session, _INSERT_ATTACHMENTS, attachments, _ATTACHMENT_KEY)
        for row, attachment_id in zip(attachments, attachment_ids, strict=True):
            row["id"] = attachment_id
        for pending in context.pending:
            if pending.body is not None and pending.attachments:
                pending.body["attachments"] = _attachments_json(pending.attachments)
    context.pending.clear()


# The batch lookups, built once (building and keying a statement costs about as much as
# running it); each takes a list of keys through an expanding IN parameter.
#: The inbox, with those of the given messages it has stored already (outer join: one
#: row with NULLs when none is).
_INBOX_AND_STORED = (
    select(Inbox, Message.source_id, Message.id, Message.conversation_id)
    .outerjoin(
        Message,
        and_(
            Message.inbox_id == Inbox.id,
            Message.source_id.in_(bindparam("keys", expanding=True)),
        ),
    )
    .where(Inbox.id == bindparam("inbox"))
)
_CONTACTS_BY_EMAIL = select(Contact).where(
    Contact.account_id == bindparam("account"), Contact.email.in_(bindparam("keys", expanding=True))
)
_HAS_LABELS = (
    select(ConversationLabel.conversation_id)
    .where(ConversationLabel.conversation_id == Conversation.id)
    .exists()
)
_OLDER = aliased(Conversation)
#: Senders' identities and contacts, each with its newest conversation (if any) and
#: whether that has labels.
_IDENTITIES = (
    select(ContactInbox, Contact, Conversation, _HAS_LABELS)
    .join(Contact, Contact.id == ContactInbox.contact_id)
    .outerjoin(
        Conversation,
        Conversation.id
        == select(func.max(_OLDER.id))
        .where(_OLDER.contact_inbox_id == ContactInbox.id)
        .correlate(ContactInbox)
        .scalar_subquery(),
    )
    .where(
        ContactInbox.inbox_id == bindparam("inbox"),
        ContactInbox.source_id.in_(bindparam("keys", expanding=True)),
    )
)
#: The newest conversation of each thread key, and whether it has labels.
_NEWEST_BY_THREAD = select(Conversation, _HAS_LABELS).where(
    Conversation.id.in_(
        select(func.max(Conversation.id))
        .where(
            Conversation.inbox_id == bindparam("inbox"),
            Conversation.thread_key.in_(bindparam("keys", expanding=True)),
        )
        .group_by(Conversation.thread_key)
    )
)


def _chunks(keys: Iterable[Any]) -> list[list[Any]]:
    ordered = sorted(set(keys))
    return [ordered[i : i + _IN_CHUNK] for i in range(0, len(ordered), _IN_CHUNK)]


async def _prefetch(
    session: AsyncSession,
    context: _BatchContext,
    messages: Sequence[InboundMessage],
    now: datetime,
) -> None:
    """Load what the batch's messages will look up, in a few queries for the whole batch,
    and make the identities (contacts) of its new senders, in one flush."""
    sources: dict[int, set[str]] = defaultdict(set)
    for m in messages:
        sources[m.inbox_id].add(m.source_id)
    for inbox_id, source_ids in sources.items():
        await _load_stored(session, context, inbox_id, source_ids)
    fresh = [m for m in messages if (m.inbox_id, m.source_id) not in context.stored]
    for inbox_id in dict.fromkeys(m.inbox_id for m in fresh):
        await _inbox(session, context, inbox_id)

    labelled: list[int] = []
    senders: dict[int, set[str]] = defaultdict(set)
    for m in fresh:
        senders[m.inbox_id].add(m.sender.source_id)
    for inbox_id, sender_ids in senders.items():
        for chunk in _chunks(sender_ids):
            rows = await session.execute(_IDENTITIES, {"inbox": inbox_id, "keys": chunk})
            for contact_inbox, contact, conversation, flagged in rows:
                context.identities[(inbox_id, contact_inbox.source_id)] = (contact_inbox, contact)
                context.by_contact_inbox[contact_inbox.id] = conversation
                if conversation is not None:
                    _note_labels(context, conversation.id, flagged, labelled)
            context.no_identity.update(
                (inbox_id, s) for s in chunk if (inbox_id, s) not in context.identities
            )
    new_senders: dict[tuple[int, str], InboundMessage] = {}
    for m in fresh:
        key = (m.inbox_id, m.sender.source_id)
        if key in context.no_identity:
            new_senders.setdefault(key, m)
    if new_senders:
        await _create_identities(session, context, new_senders, now)

    threads: dict[int, set[str]] = defaultdict(set)
    for m in fresh:
        if m.thread_key:
            threads[m.inbox_id].add(m.thread_key)
    for inbox_id, keys in threads.items():
        for chunk in _chunks(keys):
            context.by_thread.update({(inbox_id, key): None for key in chunk})
            rows = await session.execute(_NEWEST_BY_THREAD, {"inbox": inbox_id, "keys": chunk})
            for conversation, flagged in rows:
                context.by_thread[(inbox_id, conversation.thread_key)] = conversation
                _note_labels(context, conversation.id, flagged, labelled)
    if labelled:
        context.labels.update(await conversation_labels(session, labelled))
        for conversation_id in labelled:
            context.labels.setdefault(conversation_id, [])
    await _load_answered(session, context, fresh)
    await _take_display_ids(session, context, fresh)


async def _load_answered(session: AsyncSession, context: _BatchContext, fresh: Sequence[InboundMessage]) -> None:
    """Look up, in one query per inbox, the messages that the batch's replies answer where
    their thread key found no conversation (``_replied_conversation`` reads them then);
    otherwise each such reply looked them up alone."""
    answered: dict[int, set[str]] = defaultdict(set)
    for m in fresh:
        if m.in_reply_to and context.by_thread.get((m.inbox_id, m.thread_key)) is None:
            answered[m.inbox_id].update(i for i in m.in_reply_to if (m.inbox_id, i) not in context.checked)
    for inbox_id, source_ids in answered.items():
        if source_ids:
            await _load_stored(session, context, inbox_id, source_ids)


async def _take_display_ids(session: AsyncSession, context: _BatchContext, fresh: Sequence[InboundMessage]) -> None:
    """Take, in one statement per account, the numbers of the conversations the batch may
    create: one per thread key and per sender that has no conversation yet. A message that
    replies to others may still find their conversation (an e-mail answering one of ours
    under a new thread key); the numbers it leaves unused are given back at the batch's
    end, so numbers stay gap-free."""
    keys: set[tuple[Any, ...]] = set()
    for m in fresh:
        if m.thread_key:
            if context.by_thread.get((m.inbox_id, m.thread_key), False) is None:
                keys.add(("thread", m.inbox_id, m.thread_key))
        else:
            contact_inbox = context.identities.get((m.inbox_id, m.sender.source_id), (None,))[0]
            if contact_inbox is not None and context.by_contact_inbox.get(contact_inbox.id, False) is None:
                keys.add(("sender", m.inbox_id, m.sender.source_id))
    wanted: dict[int, int] = defaultdict(int)
    for _, inbox_id, _ in keys:
        wanted[context.inboxes[inbox_id].account_id] += 1
    context.possible_new_conversations = sum(wanted.values())
    for account_id, count in wanted.items():
        if count < 2 or identity_key(Account, account_id) in session.identity_map:
            continue  # one number costs the same statement either way
        last = (await session.execute(_TAKE_DISPLAY_IDS, {"account": account_id, "count": count})).scalar_one()
        context.display_ids[account_id] = list(range(last - count + 1, last + 1))


async def _give_back_display_ids(session: AsyncSession, context: _BatchContext) -> None:
    """Return the numbers taken and left unused. They are the highest taken (numbers are
    handed out in order), and the counter row stays locked by this transaction since they
    were taken, so the counter steps back over them; the condition on its value leaves a
    counter that moved on meanwhile as it is (a gap, never a number twice)."""
    for account_id, unused in context.display_ids.items():
        if unused:
            await session.execute(_GIVE_BACK_DISPLAY_IDS, {"account": account_id, "count": len(unused),
                                                           "last": unused[-1]})
            unused.clear()


def _note_labels(context: _BatchContext, conversation_id: int, flagged: bool, labelled: list[int]) -> None:
    """A conversation without labels needs no label query; one with them joins the list."""
    if flagged:
        labelled.append(conversation_id)
    else:
        context.labels.setdefault(conversation_id, [])


async def _load_stored(
    session: AsyncSession, context: _BatchContext, inbox_id: int, source_ids: Iterable[str]
) -> None:
    """Note which of these messages are stored already (and load the inbox on the way)."""
    for chunk in _chunks(source_ids):
        context.checked.update((inbox_id, source_id) for source_id in chunk)
        rows = await session.execute(_INBOX_AND_STORED, {"inbox": inbox_id, "keys": chunk})
        for inbox, source_id, message_id, conversation_id in rows:
            context.inboxes.setdefault(inbox_id, inbox)
            if message_id is not None:
                context.stored[(inbox_id, source_id)] = (message_id, conversation_id)


def _reopens(inbound: InboundMessage) -> bool:
    return inbound.direction == "incoming" and not inbound.automatic


def _apply_message_to_conversation(
    conversation: Conversation, message_type: str, automatic: bool, sent_at: datetime
) -> None:
    """Keep the conversation's clocks right after a new message."""
    if conversation.last_activity_at is None or sent_at > conversation.last_activity_at:
        conversation.last_activity_at = sent_at
    if message_type == "incoming" and not automatic:
        if conversation.waiting_since is None:
            conversation.waiting_since = sent_at
    elif message_type == "outgoing":
        # An echo of a reply a person sent on the platform itself.
        if conversation.first_reply_created_at is None:
            conversation.first_reply_created_at = sent_at
        conversation.waiting_since = None


async def _has_bot(session: AsyncSession, context: _BatchContext, inbox_id: int) -> bool:
    """Conversations of an inbox with an agent bot start (and reopen) pending, for the bot."""
    if inbox_id not in context.bot_inboxes:
        context.bot_inboxes[inbox_id] = (
            await session.scalar(select(AgentBotInbox.inbox_id).where(AgentBotInbox.inbox_id == inbox_id))
        ) is not None
    return context.bot_inboxes[inbox_id]


async def _inbox(session: AsyncSession, context: _BatchContext, inbox_id: int) -> Inbox:
    inbox = context.inboxes.get(inbox_id)
    if inbox is None:
        inbox = await session.get(Inbox, inbox_id)
        if inbox is None:
            raise NotFound("Inbox")
        context.inboxes[inbox_id] = inbox
    return inbox


async def _identity(
    session: AsyncSession,
    context: _BatchContext,
    inbox: Inbox,
    inbound: InboundMessage,
    now: datetime,
) -> tuple[ContactInbox, Contact, bool]:
    """The sender's identity on the inbox and their contact, and whether this message is
    the first of a contact the batch created (it queues ``contact.created``)."""
    key = (inbox.id, inbound.sender.source_id)
    if key not in context.identities:
        row = None
        if key not in context.no_identity:
            row = (
                await session.execute(
                    select(ContactInbox, Contact)
                    .join(Contact, Contact.id == ContactInbox.contact_id)
                    .where(ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == key[1])
                )
            ).first()
        if row is not None:
            context.identities[key] = (row[0], row[1])
        else:
            await _create_identities(session, context, {key: inbound}, now)
    contact_inbox, contact = context.identities[key]
    created = contact in context.unannounced
    if created:
        context.unannounced.discard(contact)
    return contact_inbox, contact, created


async def _create_identities(
    session: AsyncSession,
    context: _BatchContext,
    senders: dict[tuple[int, str], InboundMessage],
    now: datetime,
) -> None:
    """Identities for new senders (key: inbox id, sender id; value: their first message).

    A sender whose e-mail address is a contact's of the account joins that contact;
    otherwise a contact is made from the first message. Senders are taken in message
    order, so a later sender with the same address joins the contact an earlier one made.
    """
    given_ids = ids_ahead.orm_batches_only_given_ids(session)
    if given_ids and session.new:
        await session.flush()  # rows the caller added, without ids, first: they take theirs as they are written
    by_email: dict[tuple[int, str], Contact] = {}
    emails: dict[int, set[str]] = defaultdict(set)
    for (inbox_id, _), inbound in senders.items():
        if inbound.sender.email:
            emails[context.inboxes[inbox_id].account_id].add(inbound.sender.email)
    for account_id, wanted in emails.items():
        for chunk in _chunks(wanted):
            rows = await session.scalars(_CONTACTS_BY_EMAIL, {"account": account_id, "keys": chunk})
            for contact in rows:
                by_email[(account_id, contact.email)] = contact
    made = []
    for key, inbound in senders.items():
        inbox = context.inboxes[key[0]]
        sender = inbound.sender
        contact = by_email.get((inbox.account_id, sender.email)) if sender.email else None
        if contact is None:
            sent_at = _sent_at(inbound, now) if inbound.direction == "incoming" else None
            contact = Contact(
                account_id=inbox.account_id,
                name=sender.name or sender.email or sender.phone_number or sender.source_id,
                email=sender.email,
                phone_number=sender.phone_number,
                avatar_url=sender.avatar_url,
                additional_attributes=dict(sender.attributes),
                custom_attributes={},
                last_activity_at=sent_at,
            )
            session.add(contact)
            context.unannounced.add(contact)
            if sender.email:
                by_email[(inbox.account_id, sender.email)] = contact
        contact_inbox = ContactInbox(inbox_id=inbox.id, source_id=key[1])
        if contact.id is None:
            contact_inbox.contact = contact  # inserted first, in the same flush
        else:
            contact_inbox.contact_id = contact.id
        session.add(contact_inbox)
        made.append((key, contact_inbox, contact))
    if given_ids:
        await _give_ids(session, made)
    await session.flush()
    for key, contact_inbox, contact in made:
        context.identities[key] = (contact_inbox, contact)
        context.no_identity.discard(key)
        context.by_contact_inbox[contact_inbox.id] = None  # a new identity has no conversation


async def _give_ids(session: AsyncSession, made: list[tuple[Any, ContactInbox, Contact]]) -> None:
    """Ids taken ahead for the new contacts and identities, so that the flush inserts
    each table's rows in one statement (see :mod:`app.tickets.ids_ahead`)."""
    contacts = list({id(c): c for _, _, c in made if c.id is None}.values())
    for contact, contact_id in zip(contacts, await ids_ahead.take_ids(session, Contact.__table__, len(contacts)),
                                   strict=True):
        contact.id = contact_id
    ids = await ids_ahead.take_ids(session, ContactInbox.__table__, len(made))
    for (_, contact_inbox, contact), contact_inbox_id in zip(made, ids, strict=True):
        contact_inbox.id = contact_inbox_id
        contact_inbox.contact_id = contact.id


def _sent_at(inbound: InboundMessage, now: datetime) -> datetime:
    """When the message was sent, no later than a little after ``now``."""
    return min(inbound.sent_at or now, now + timedelta(minutes=5))


async def _find_conversation(
    session: AsyncSession,
    context: _BatchContext,
    inbox: Inbox,
    inbound: InboundMessage,
    contact_inbox: ContactInbox,
) -> Conversation | None:
    """By thread key, then by the messages this one replies to, else per contact."""
    if inbound.thread_key:
        key = (inbox.id, inbound.thread_key)
        if key not in context.by_thread:
            context.by_thread[key] = await session.scalar(
                select(Conversation)
                .where(Conversation.inbox_id == inbox.id, Conversation.thread_key == inbound.thread_key)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
        found = context.by_thread[key]
        if found is not None:
            return found
    if inbound.in_reply_to:
        found = await _replied_conversation(session, context, inbox.id, inbound.in_reply_to)
        if found is not None:
            return found
    if inbound.thread_key:
        return None
    if contact_inbox.id not in context.by_contact_inbox:
        context.by_contact_inbox[contact_inbox.id] = await session.scalar(
            select(Conversation)
            .where(Conversation.contact_inbox_id == contact_inbox.id)
            .order_by(Conversation.id.desc())
            .limit(1)
        )
    return context.by_contact_inbox[contact_inbox.id]


async def _replied_conversation(
    session: AsyncSession, context: _BatchContext, inbox_id: int, answered: Sequence[str]
) -> Conversation | None:
    """The newest conversation holding one of the messages ``answered`` names: those of
    this batch, not inserted yet, are known in memory; the others are looked up once."""
    unknown = [i for i in answered if (inbox_id, i) not in context.checked]
    if unknown:
        await _load_stored(session, context, inbox_id, unknown)
    owners = []
    for source_id in answered:
        stored = context.stored.get((inbox_id, source_id))
        if isinstance(stored, _PendingMessage):
            owners.append(stored.conversation_id)
        elif stored is not None:
            owners.append(stored[1])
    return await session.get(Conversation, max(owners)) if owners else None


async def _new_conversation(
    session: AsyncSession,
    context: _BatchContext,
    inbox: Inbox,
    contact: Contact,
    contact_inbox: ContactInbox,
    inbound: InboundMessage,
    message_type: str,
    sent_at: datetime,
    *,
    status: str = "open",
) -> Conversation:
    """A new conversation, inserted with the clocks its first message sets."""
    additional: dict[str, Any] = {}
    if inbound.subject:
        additional["mail_subject"] = inbound.subject
    # A plain draft: the ORM's instrumented constructor and attribute events cost as much
    # as the rest of making a conversation, and the row is written with Core anyway.
    draft = SimpleNamespace(**dict.fromkeys(_CONVERSATION_COLUMNS))
    draft.__dict__.update(
        account_id=inbox.account_id,
        display_id=await _next_display_id(session, context, inbox.account_id),
        inbox_id=inbox.id,
        contact_id=contact.id,
        contact_inbox_id=contact_inbox.id,
        status=status,
        thread_key=inbound.thread_key,
        last_activity_at=sent_at,
        additional_attributes=additional,
        custom_attributes={},
        created_at=sent_at,
    )
    _apply_message_to_conversation(draft, message_type, inbound.automatic, sent_at)  # type: ignore[arg-type]
    if message_type == "incoming" and not inbound.automatic:
        # The window the SLA hook would open right after: set now, it is inserted with the
        # row instead of costing an UPDATE of every new conversation (the hook then finds
        # it open and changes nothing).
        update_reply_window(draft, inbox, sent_at)  # type: ignore[arg-type]
    return await _insert_conversation(session, context, draft.__dict__)


_CONVERSATION_COLUMNS = tuple(c.key for c in Conversation.__table__.columns if c.key != "id")
_INSERT_CONVERSATION = insert(Conversation.__table__).returning(Conversation.__table__.c.id)
_NEW_CONVERSATIONS = "postroom_new_conversations"


async def _insert_conversation(session: AsyncSession, context: _BatchContext, draft: dict[str, Any]) -> Conversation:
    """Insert a new conversation row and return it attached to the session.

    Its id is needed at once (messages and clocks point to it), but a session flush would
    also write every other change of the batch so far, and the conversations' updates are
    cheaper written together at the batch's end. So the row is inserted with Core (or,
    with an id taken ahead, left to be written with the batch's other new conversations)
    and the object joins the session as loaded, with every column known."""
    values = {key: draft.get(key) for key in _CONVERSATION_COLUMNS}
    values["uuid"] = values["uuid"] or new_conversation_uuid()
    values["updated_at"] = values["updated_at"] or utcnow()
    conversation_id = await _id_taken_ahead(session, context)
    if conversation_id is None:
        conversation_id = (await session.execute(_INSERT_CONVERSATION, values)).scalar_one()
    else:
        new_conversations.defer(session, {"id": conversation_id, **values})
    conversation = Conversation.__mapper__.class_manager.new_instance()
    conversation.__dict__.update(values, id=conversation_id)
    make_transient_to_detached(conversation)  # as if loaded: every column's value is known
    session.add(conversation)
    # The session holds unchanged objects weakly; the reporting recorder reads the new
    # conversations again at commit, so keep them until then (no query to reload them).
    session.info.setdefault(_NEW_CONVERSATIONS, []).append(conversation)
    return conversation


async def _id_taken_ahead(session: AsyncSession, context: _BatchContext) -> int | None:
    """An id taken ahead for a new conversation, or None to insert it alone now: the
    first of the batch's possible new conversations takes the ids of all of them in one
    query (an id left unused is a harmless gap; for one alone, the single insert is as
    cheap; see ``app.tickets.ids_ahead`` for when ids can be taken)."""
    if not context.conversation_ids:
        possible, context.possible_new_conversations = context.possible_new_conversations, 0
        if possible < 2 or not new_conversations.can_defer(session):
            return None
        context.conversation_ids = await new_conversations.take_ids(session, possible)
    return context.conversation_ids.pop(0)


#: ``app.tickets.numbering.next_display_id``'s statement, built once, as Core.
_NEXT_DISPLAY_ID = (
    update(Account.__table__)
    .where(Account.__table__.c.id == bindparam("account"))
    .values(last_display_id=Account.__table__.c.last_display_id + 1)
    .returning(Account.__table__.c.last_display_id)
)
#: The same, taking ``count`` numbers at once (the last one is returned) …
_TAKE_DISPLAY_IDS = (
    update(Account.__table__)
    .where(Account.__table__.c.id == bindparam("account"))
    .values(last_display_id=Account.__table__.c.last_display_id + bindparam("count"))
    .returning(Account.__table__.c.last_display_id)
)
#: … and giving back the last ``count`` of them, unless the counter moved on since.
_GIVE_BACK_DISPLAY_IDS = (
    update(Account.__table__)
    .where(Account.__table__.c.id == bindparam("account"), Account.__table__.c.last_display_id == bindparam("last"))
    .values(last_display_id=Account.__table__.c.last_display_id - bindparam("count"))
)


async def _next_display_id(session: AsyncSession, context: _BatchContext, account_id: int) -> int:
    """The account's next conversation number (see ``next_display_id``): one the batch
    has taken already, else the next from the counter row.

    The same UPDATE … RETURNING, without the ORM's statement building and identity-map
    synchronisation, which cost about as much as the round trip; when the session holds
    the Account row, the ORM version runs so that the object stays current.
    """
    taken = context.display_ids.get(account_id)
    if taken:
        return taken.pop(0)
    if identity_key(Account, account_id) in session.identity_map:
        from app.tickets.numbering import next_display_id

        return await next_display_id(session, account_id)
    return (await session.execute(_NEXT_DISPLAY_ID, {"account": account_id})).scalar_one()


def _attachment_rows(
    store: FileStore | None,
    account_id: int,
    items: Sequence[InboundAttachment],
    files: list[tuple[str, bytes]],
) -> list[dict[str, Any]]:
    """The attachments' rows, inserted with their message; their files are added to
    ``files``, written before the batch is committed."""
    rows = []
    for item in items:
        path = None
        if item.data is not None:
            if store is None:
                raise ValueError("attachment bytes given but no file store configured")
            path = store.reserve(account_id, item.file_name)
            files.append((path, item.data))
        rows.append({
            "account_id": account_id,
            "message_id": None,
            "file_type": file_type_of(item.content_type),
            "content_type": item.content_type,
            "file_name": item.file_name,
            "file_size": len(item.data) if item.data is not None else None,
            "storage_path": path,
            "external_url": item.external_url,
            "created_at": utcnow(),
        })
    return rows


def _attachments_json(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payload shape of attachment rows that have been inserted."""
    shown = []
    for row in rows:
        transient = Attachment.__mapper__.class_manager.new_instance()
        transient.__dict__.update(row)
        shown.append(presenters.attachment_json(transient))
    return shown


def file_type_of(content_type: str | None) -> str:
    """Chatwoot's coarse file type for a MIME type."""
    major = (content_type or "").split("/", 1)[0]
    return {"image": "image", "audio": "audio", "video": "video"}.get(major, "file")


async def _queue_events(
    session: AsyncSession,
    context: _BatchContext,
    *,
    inbox: Inbox,
    contact: Contact,
    contact_inbox: ContactInbox,
    conversation: Conversation,
    message: _PendingMessage,
    contact_created: bool,
    conversation_created: bool,
    previous_status: str | None,
) -> None:
    """Queue the events of one ingested message, built from the rows at hand."""
    # A transient Message for the presenter, filled without per-attribute events.
    transient = Message.__mapper__.class_manager.new_instance()
    transient.__dict__.update(message.row)
    transient.__dict__["id"] = message.id
    senders = {("contact", contact.id): contact}
    message_body = presenters.message_json(
        transient,
        conversation_display_id=conversation.display_id,
        senders=senders,
    )
    # Its id, and its attachments, are filled in when the batch's messages are inserted.
    message.body = message_body
    if message.id is not None and message.attachments:
        message_body["attachments"] = _attachments_json(message.attachments)
    common = {"account_id": inbox.account_id, "inbox_id": inbox.id}
    if contact_created:
        append_event(
            session, event_type="contact.created", payload=presenters.contact_json(contact), **common
        )
    if conversation_created or previous_status is not None:
        # The whole conversation only for its own event; a message's event carries a part.
        assignee = await session.get(User, conversation.assignee_id) if conversation.assignee_id else None
        team = await session.get(Team, conversation.team_id) if conversation.team_id else None
        labels = context.labels.get(conversation.id)
        if labels is None:
            labels = (await conversation_labels(session, [conversation.id])).get(conversation.id, [])
            context.labels[conversation.id] = labels
        if previous_status is not None:
            await session.flush()  # the status change's payload shows the row as written
        conversation_body = presenters.conversation_json(
            conversation,
            contact=contact,
            inbox=inbox,
            assignee=assignee,
            team=team,
            labels=labels,
            last_message=message_body,
            unread_count=0,
            contact_inbox=contact_inbox,
        )
        if conversation_created:
            append_event(
                session,
                event_type="conversation.created",
                payload=conversation_body,
                conversation_id=conversation.id,
                **common,
            )
        else:
            append_event(
                session,
                event_type="conversation.status_changed",
                payload={**conversation_body, "changed_attributes": {"status": {
                    "previous_value": previous_status, "current_value": conversation.status}}},
                conversation_id=conversation.id,
                **common,
            )
    message_body["conversation"] = presenters.message_conversation_json(conversation)
    hold_conversation(session, conversation)
    append_event(
        session,
        event_type="message.created",
        payload=message_body,
        conversation_id=conversation.id,
        **common,
    )
