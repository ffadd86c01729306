"""The one ingest path: identities, threading, clocks, exactly-once storage, events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import Contact, ContactInbox, Conversation, Event, Message, utcnow
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity


def inbound(inbox_id: int, source_id: str, *, sender: str = "cust-1", **kw) -> InboundMessage:
    return InboundMessage(
        inbox_id=inbox_id,
        source_id=source_id,
        sender=SenderIdentity(source_id=sender, name=kw.pop("name", "Customer"), email=kw.pop("email", None)),
        text=kw.pop("text", f"text of {source_id}"),
        **kw,
    )


async def count(runtime, model, *where) -> int:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_first_message_creates_contact_identity_conversation_and_events(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    sent = utcnow() - timedelta(minutes=3)
    (result,) = await ingest_messages(runtime.db, [inbound(inbox_id, "m-1", name="Somchai", sent_at=sent)])
    assert result.status == "created" and result.conversation_created

    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, result.conversation_id)
        contact = await session.get(Contact, conversation.contact_id)
        identity = await session.scalar(select(ContactInbox).where(ContactInbox.inbox_id == inbox_id))
        events = list(await session.scalars(
            select(Event.event_type).where(Event.account_id == tenant.account_id).order_by(Event.seq)))
    assert contact.name == "Somchai" and identity.source_id == "cust-1"
    assert conversation.status == "open" and conversation.display_id >= 1
    assert conversation.waiting_since == sent and conversation.last_activity_at == sent
    assert conversation.first_reply_created_at is None
    assert events == ["contact.created", "conversation.created", "message.created"]


async def test_redelivery_is_a_noop_that_answers_duplicate(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    first = await ingest_messages(runtime.db, [inbound(inbox_id, "dup-1")])
    events_before = await count(runtime, Event, Event.account_id == tenant.account_id)
    again = await ingest_messages(runtime.db, [inbound(inbox_id, "dup-1", text="changed text")])
    assert again[0].status == "duplicate"
    assert again[0].message_id == first[0].message_id
    assert await count(runtime, Message, Message.inbox_id == inbox_id) == 1
    assert await count(runtime, Event, Event.account_id == tenant.account_id) == events_before


async def test_replaying_1000_messages_twice_stores_1000(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    batch = [inbound(inbox_id, f"r-{i}", sender=f"c-{i % 37}") for i in range(1000)]
    for start in range(0, 1000, 100):
        await ingest_messages(runtime.db, batch[start:start + 100])
    replay = []
    for start in range(0, 1000, 100):
        replay += await ingest_messages(runtime.db, batch[start:start + 100])
    assert {r.status for r in replay} == {"duplicate"}
    assert await count(runtime, Message, Message.inbox_id == inbox_id) == 1000
    assert await count(runtime, Conversation, Conversation.inbox_id == inbox_id) == 37


async def test_same_source_id_twice_in_one_batch_is_stored_once(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    results = await ingest_messages(runtime.db, [inbound(inbox_id, "x"), inbound(inbox_id, "x")])
    assert [r.status for r in results] == ["created", "duplicate"]


async def test_source_ids_are_scoped_to_their_inbox(tenants, runtime):
    tenant = await tenants.new()
    a, b = await tenant.inbox("api"), await tenant.inbox("api")
    results = await ingest_messages(runtime.db, [inbound(a, "same"), inbound(b, "same")])
    assert [r.status for r in results] == ["created", "created"]


async def test_thread_key_groups_and_in_reply_to_finds_the_conversation(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("email")
    r1, r2, r3, r4 = await ingest_messages(runtime.db, [
        inbound(inbox_id, "<a@x>", thread_key="<a@x>", sender="ann@x.test", email="ann@x.test"),
        inbound(inbox_id, "<b@x>", thread_key="<a@x>", sender="bob@x.test", email="bob@x.test"),
        inbound(inbox_id, "<c@x>", thread_key="<c@x>", sender="ann@x.test", email="ann@x.test"),
        inbound(inbox_id, "<d@x>", thread_key="<new@x>", in_reply_to=["<c@x>"], sender="ann@x.test"),
    ])
    assert r1.conversation_id == r2.conversation_id  # CC'd participant stays in the thread
    assert r3.conversation_id != r1.conversation_id
    assert r4.conversation_id == r3.conversation_id


async def test_without_thread_key_one_conversation_per_contact(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("telegram")
    results = await ingest_messages(runtime.db, [
        inbound(inbox_id, "1", sender="u1"), inbound(inbox_id, "2", sender="u1"), inbound(inbox_id, "3", sender="u2"),
    ])
    assert results[0].conversation_id == results[1].conversation_id != results[2].conversation_id


async def test_email_matches_an_existing_contact_across_inboxes(tenants, runtime):
    tenant = await tenants.new()
    a, b = await tenant.inbox("email"), await tenant.inbox("api")
    r1, r2 = await ingest_messages(runtime.db, [
        inbound(a, "e1", sender="Ann@X.test", email="Ann@X.test"),
        inbound(b, "e2", sender="crm-7", email="ann@x.test"),
    ])
    async with runtime.db.read_session() as session:
        c1 = await session.get(Conversation, r1.conversation_id)
        c2 = await session.get(Conversation, r2.conversation_id)
    assert c1.contact_id == c2.contact_id


async def _set_status(runtime, conversation_id: int, status: str, **fields) -> None:
    async with runtime.db.write_session() as session:
        conversation = await session.get(Conversation, conversation_id)
        conversation.status = status
        for key, value in fields.items():
            setattr(conversation, key, value)


async def test_new_message_reopens_a_resolved_conversation(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    (first,) = await ingest_messages(runtime.db, [inbound(inbox_id, "o-1")])
    await _set_status(runtime, first.conversation_id, "resolved", waiting_since=None)
    (second,) = await ingest_messages(runtime.db, [inbound(inbox_id, "o-2")])
    assert second.conversation_id == first.conversation_id and not second.conversation_created
    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        kinds = list(await session.scalars(select(Event.event_type).where(
            Event.conversation_id == first.conversation_id).order_by(Event.seq)))
    assert conversation.status == "open" and conversation.waiting_since is not None
    assert "conversation.status_changed" in kinds


async def test_snoozed_conversation_wakes_up_on_a_customer_message(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    (first,) = await ingest_messages(runtime.db, [inbound(inbox_id, "s-1")])
    await _set_status(runtime, first.conversation_id, "snoozed", snoozed_until=utcnow() + timedelta(days=1))
    await ingest_messages(runtime.db, [inbound(inbox_id, "s-2")])
    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, first.conversation_id)
    assert conversation.status == "open" and conversation.snoozed_until is None


async def test_a_message_after_the_reopen_window_starts_a_new_conversation(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    old = utcnow() - timedelta(days=60)
    (first,) = await ingest_messages(runtime.db, [inbound(inbox_id, "w-1", sent_at=old)])
    await _set_status(runtime, first.conversation_id, "resolved")
    (second,) = await ingest_messages(runtime.db, [inbound(inbox_id, "w-2")])
    assert second.conversation_created and second.conversation_id != first.conversation_id


async def test_automatic_mail_neither_reopens_nor_starts_the_waiting_clock(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("email")
    (first,) = await ingest_messages(runtime.db, [inbound(inbox_id, "<q@x>", thread_key="t")])
    await _set_status(runtime, first.conversation_id, "resolved", waiting_since=None)
    await ingest_messages(runtime.db, [inbound(inbox_id, "<auto@x>", thread_key="t", automatic=True)])
    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        message = await session.scalar(select(Message).where(Message.source_id == "<auto@x>"))
    assert conversation.status == "resolved" and conversation.waiting_since is None
    assert message.automatic and message.conversation_id == first.conversation_id


async def test_echo_of_a_reply_sent_on_the_platform_fulfils_the_clocks(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("facebook")
    t0 = utcnow() - timedelta(minutes=10)
    await ingest_messages(runtime.db, [inbound(inbox_id, "mid.1", sent_at=t0)])
    (echo,) = await ingest_messages(runtime.db, [
        inbound(inbox_id, "mid.2", direction="outgoing", sent_at=t0 + timedelta(minutes=4))])
    async with runtime.db.read_session() as session:
        conversation = await session.get(Conversation, echo.conversation_id)
        message = await session.get(Message, echo.message_id)
    assert message.message_type == "outgoing" and message.sender_type is None
    assert conversation.first_reply_created_at == t0 + timedelta(minutes=4)
    assert conversation.waiting_since is None


async def test_display_ids_are_sequential_per_account(tenants, runtime):
    one, two = await tenants.new(), await tenants.new()
    inbox_one, inbox_two = await one.inbox("api"), await two.inbox("api")
    results = await ingest_messages(runtime.db, [inbound(inbox_one, f"d{i}", sender=f"s{i}") for i in range(3)])
    (other,) = await ingest_messages(runtime.db, [inbound(inbox_two, "d0", sender="s0")])
    async with runtime.db.read_session() as session:
        ids = [(await session.get(Conversation, r.conversation_id)).display_id for r in results]
        other_id = (await session.get(Conversation, other.conversation_id)).display_id
    assert ids == [1, 2, 3] and other_id == 1


async def test_a_failing_batch_stores_nothing(tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")

    async def explode(session):
        raise RuntimeError("crash after the batch, before the commit")

    with pytest.raises(RuntimeError):
        await ingest_messages(runtime.db, [inbound(inbox_id, f"f{i}") for i in range(50)], also=explode)
    assert await count(runtime, Message, Message.inbox_id == inbox_id) == 0
    assert await count(runtime, Event, Event.account_id == tenant.account_id) == 0


async def test_attachments_are_stored_under_the_data_dir(tenants, runtime):
    from connectors.base import InboundAttachment

    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    (result,) = await ingest_messages(
        runtime.db,
        [inbound(inbox_id, "att-1", attachments=[InboundAttachment(file_name="ใบเสร็จ.pdf", content_type="application/pdf", data=b"%PDF-1.4 demo")])],
        store=runtime.store,
    )
    from app.models import Attachment

    async with runtime.db.read_session() as session:
        attachment = await session.scalar(select(Attachment).where(Attachment.message_id == result.message_id))
    assert attachment.file_size == 13 and attachment.file_name == "ใบเสร็จ.pdf"
    assert runtime.store.path(attachment.storage_path).read_bytes() == b"%PDF-1.4 demo"


async def test_a_batch_of_new_conversations_with_breaching_clocks_stores_each_once(tenants, runtime):
    """Ten senders write, a day ago; two hours later each writes again or the seller
    answers on the platform, all in one batch, under a one-hour first-response policy:
    the clocks breach while the batch is stored (a flush in its middle). Each
    conversation is written once with its final state, before the rows that point to it.
    The batch's new conversations share one or two statements (their ids taken ahead)
    instead of one each, and so do its new contacts and their identities."""
    from sqlalchemy import event

    from app.models import SlaClock
    from app.sla import service as sla_service

    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    async with runtime.db.write_session() as session:
        await sla_service.save_policy(session, tenant.account_id, None, {
            "name": "One hour", "first_response_time_threshold": 3600, "rules": {"channel_types": ["api"]}})
    start = utcnow() - timedelta(days=1)
    first = [inbound(inbox_id, f"nc{n}-q", sender=f"buyer-{n}", sent_at=start + timedelta(minutes=n))
             for n in range(10)]
    second = []
    for n in range(10):
        later = start + timedelta(hours=2, minutes=n)
        if n % 2:  # the seller answered on the platform: an echo
            second.append(inbound(inbox_id, f"nc{n}-a", sender=f"buyer-{n}", direction="outgoing", sent_at=later))
        else:
            second.append(inbound(inbox_id, f"nc{n}-q2", sender=f"buyer-{n}", sent_at=later))

    inserts: dict[str, int] = {}

    def note(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        if words[0].upper() == "INSERT":
            inserts[words[2]] = inserts.get(words[2], 0) + 1

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", note)
    try:
        results = await ingest_messages(runtime.db, first + second)
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", note)

    assert [r.status for r in results] == ["created"] * 20
    conversation_ids = {r.conversation_id for r in results}
    assert len(conversation_ids) == 10
    assert inserts["conversations"] <= 2  # the first policy lookup writes the first conversation
    assert inserts["contacts"] == 1 and inserts["contact_inboxes"] == 1
    async with runtime.db.read_session() as session:
        conversations = {c.created_at: c for c in await session.scalars(
            select(Conversation).where(Conversation.inbox_id == inbox_id))}
        assert {c.id for c in conversations.values()} == conversation_ids
        for n in range(10):
            conversation = conversations[start + timedelta(minutes=n)]
            later = start + timedelta(hours=2, minutes=n)
            assert conversation.last_activity_at == later
            assert conversation.first_reply_created_at == (later if n % 2 else None)
            assert conversation.waiting_since == (None if n % 2 else start + timedelta(minutes=n))
        assert sorted(c.display_id for c in conversations.values()) == list(range(1, 11))
        clocks = {c.conversation_id: c for c in await session.scalars(select(SlaClock).where(
            SlaClock.conversation_id.in_(conversation_ids), SlaClock.kind == "first_response"))}
        assert set(clocks) == conversation_ids
        answered = {conversations[start + timedelta(minutes=n)].id for n in range(1, 10, 2)}
        # Answered late: breached with its time; still waiting: the scheduler breaches it.
        assert {i for i, c in clocks.items() if c.status == "breached"} == answered
        assert {i for i, c in clocks.items() if c.status == "active"} == conversation_ids - answered
        created = await session.scalars(select(Event.conversation_id).where(
            Event.account_id == tenant.account_id, Event.event_type == "conversation.created"))
        assert sorted(created) == sorted(conversation_ids)
        breached = await session.scalars(select(Event.conversation_id).where(
            Event.account_id == tenant.account_id, Event.event_type == "sla.breached"))
        assert sorted(breached) == sorted(answered)
    assert await count(runtime, Message, Message.inbox_id == inbox_id) == 20


async def test_a_contact_added_by_the_caller_in_the_same_unit_of_work_keeps_its_own_id(tenants, runtime):
    """Ids for a batch's new contacts are taken ahead; a contact the caller added to the
    same unit of work just before (not written yet) still gets an id of its own."""
    from app.tickets.ingest import ingest_batch

    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    async with runtime.db.write_session() as session:
        own = Contact(account_id=tenant.account_id, name="Added by hand", email="hand@example.com",
                      additional_attributes={}, custom_attributes={})
        session.add(own)
        results = await ingest_batch(session, [inbound(inbox_id, f"own-{n}", sender=f"buyer-{n}") for n in range(3)])
    async with runtime.db.read_session() as session:
        names = {c.id: c.name for c in await session.scalars(
            select(Contact).where(Contact.account_id == tenant.account_id))}
        senders = {(await session.get(Conversation, r.conversation_id)).contact_id for r in results}
    assert len(names) == 4 and names[own.id] == "Added by hand"
    assert len(senders) == 3 and own.id not in senders


async def test_new_messenger_conversations_are_inserted_with_their_reply_window(tenants, runtime):
    """First messages of new Messenger senders open the 24-hour reply window. Each new
    conversation is written once, window included: no UPDATE follows its INSERT."""
    from sqlalchemy import event

    tenant = await tenants.new()
    inbox_id = await tenant.inbox("facebook", page_id="pw-1", app_secret="s")
    sent = utcnow() - timedelta(minutes=5)
    batch = [inbound(inbox_id, f"rw-{n}", sender=f"psid-{n}", sent_at=sent + timedelta(seconds=n)) for n in range(5)]
    updates: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if statement.split()[:2] == ["UPDATE", "conversations"]:
            updates.append(statement)

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", note)
    try:
        results = await ingest_messages(runtime.db, batch)
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", note)

    assert [r.status for r in results] == ["created"] * 5
    assert updates == []
    async with runtime.db.read_session() as session:
        windows = [c.reply_window_closes_at for c in await session.scalars(
            select(Conversation).where(Conversation.inbox_id == inbox_id).order_by(Conversation.created_at))]
    assert windows == [sent + timedelta(seconds=n, hours=24) for n in range(5)]


async def test_a_batch_of_new_mail_threads_is_numbered_together_and_without_gaps(tenants, runtime):
    """New threads in one batch share one numbering statement and their inserts, those
    that answer an earlier mail included (the mails answered are looked up together); a
    number such a mail leaves unused (it found its conversation) is given back, so the
    next conversation takes the next number."""
    from sqlalchemy import event

    tenant = await tenants.new()
    inbox_id = await tenant.inbox("email")
    (root,) = await ingest_messages(runtime.db, [inbound(inbox_id, "<root@x>", thread_key="<root@x>", sender="a@x.test")])
    batch = [
        inbound(inbox_id, "<n1@x>", thread_key="<n1@x>", sender="b@x.test"),
        inbound(inbox_id, "<n2@x>", thread_key="<n2@x>", sender="c@x.test"),
        # answers the first mail under a thread key of its own: joins its conversation
        inbound(inbox_id, "<n3@x>", thread_key="<other@x>", in_reply_to=["<root@x>"], sender="a@x.test"),
        # answers a mail never seen here: a new conversation
        inbound(inbox_id, "<n4@x>", thread_key="<lost@x>", in_reply_to=["<lost@x>"], sender="d@x.test"),
        inbound(inbox_id, "<n5@x>", thread_key="<n5@x>", sender="e@x.test"),
    ]
    statements: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()[:3]))

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", note)
    try:
        results = await ingest_messages(runtime.db, batch)
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", note)
    assert results[2].conversation_id == root.conversation_id
    assert len({r.conversation_id for r in results}) == 5
    # the first new conversation is written by the SLA policy lookup, the others together
    assert statements.count("INSERT INTO conversations") <= 2
    assert statements.count("UPDATE accounts SET") <= 2  # numbers taken, the unused one given back
    assert statements.count("SELECT inboxes.id, inboxes.account_id,") <= 2  # the batch's mails, the ones answered

    await ingest_messages(runtime.db, [inbound(inbox_id, "<n6@x>", thread_key="<n6@x>", sender="f@x.test")])
    async with runtime.db.read_session() as session:
        numbers = list(await session.scalars(select(Conversation.display_id).where(
            Conversation.account_id == tenant.account_id).order_by(Conversation.display_id)))
    assert numbers == list(range(1, 7))
