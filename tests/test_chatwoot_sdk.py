"""The official Chatwoot SDK (``chatwoot-sdk``) against a real ``postroom serve`` process.

Every resource and method the SDK covers is driven through the SDK's own client, so
its pydantic types parse Postroom's answers exactly as they would parse Chatwoot's,
and each test checks behaviour (round-trips, filters, counts, visibility), not just
that no exception was raised.

``inboxes.get_agent_bot`` and ``inboxes.set_agent_bot`` are driven with a bot made
through Postroom's agent-bot API (the SDK has no call to create one).

The async client (``AsyncChatwootClient``) is used throughout, as it shares the
session's event loop; one test runs the sync ``ChatwootClient`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from chatwoot import (
    AsyncChatwootClient,
    ChatwootAuthError,
    ChatwootClient,
    ChatwootNotFoundError,
    ChatwootPermissionError,
)
from chatwoot.types import Agent, AgentRole, AvailabilityStatus, ConversationStatus

from app.models import Conversation
from app.runtime import Runtime
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity
from tests.factories import Tenant, TenantFactory

SdkFactory = Callable[[str], AsyncChatwootClient]
INCOMING, OUTGOING, ACTIVITY = 0, 1, 2


@pytest_asyncio.fixture
async def sdk(live_server: str) -> AsyncIterator[SdkFactory]:
    """Makes SDK clients on the live server for a token; closes them after the test."""
    clients: list[AsyncChatwootClient] = []

    def make(token: str) -> AsyncChatwootClient:
        client = AsyncChatwootClient(base_url=live_server, api_token=token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@dataclass
class Desk:
    """A fresh account, one API inbox and an SDK client for its administrator."""

    tenant: Tenant
    inbox_id: int
    admin: AsyncChatwootClient

    @property
    def account_id(self) -> int:
        return self.tenant.account_id


@pytest_asyncio.fixture
async def desk(tenants: TenantFactory, sdk: SdkFactory) -> Desk:
    """A fresh account with one API inbox, driven through the SDK as its administrator."""
    tenant = await tenants.new()
    return Desk(tenant, await tenant.inbox("api", name="Support API"), sdk(tenant.token))


def unique(prefix: str) -> str:
    """A value no other test uses (e-mails are unique across accounts)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def customers_write(
    runtime: Runtime, inbox_id: int, senders: list[str], *, text: str = "Hello, I need help",
    start: datetime | None = None,
) -> list[int]:
    """One message from each sender, ingested as a connector would; their conversations' display ids.

    With ``start`` the messages are one second apart from it, so their order is known.
    """
    batch = [
        InboundMessage(
            inbox_id=inbox_id,
            source_id=unique("msg"),
            sender=SenderIdentity(source_id=sender, name=f"Customer {sender}"),
            text=text,
            sent_at=start + timedelta(seconds=i) if start else None,
        )
        for i, sender in enumerate(senders)
    ]
    results = await ingest_messages(runtime.db, batch)
    async with runtime.db.read_session() as session:
        return [(await session.get(Conversation, r.conversation_id)).display_id for r in results]


async def inbox_member_ids(client: AsyncChatwootClient, account_id: int, inbox_id: int) -> list[int]:
    """An inbox's members, fetched through the SDK's transport and parsed by its ``Agent`` type.

    ``client.inboxes.agents.list`` cannot be the witness: chatwoot-sdk 0.2.0 unwraps
    ``{"payload": [...]}`` in its HTTP layer and then looks for ``payload`` a second time,
    so it returns ``[]`` against Chatwoot and Postroom alike (see the xfail test below).
    """
    rows = await client._http.get(f"/api/v1/accounts/{account_id}/inbox_members/{inbox_id}")
    return [Agent(**row).id for row in rows]


def ids(items: Iterable[Any]) -> set[int]:
    """The ``id`` of each SDK object."""
    return {item.id for item in items}


def recent(unix_seconds: int | None) -> bool:
    """A Unix timestamp within the last ten minutes."""
    return unix_seconds is not None and abs(time.time() - unix_seconds) < 600


# --- profile ---------------------------------------------------------------------------


async def test_profile_get_describes_the_token_owner(desk: Desk, sdk: SdkFactory) -> None:
    agent_id, agent_token = await desk.tenant.agent()

    me = await desk.admin.profile.get()
    assert (me.id, me.email, me.account_id) == (desk.tenant.admin_id, desk.tenant.admin_email, desk.account_id)
    assert me.role is AgentRole.ADMINISTRATOR
    assert [(a.id, a.role) for a in me.accounts] == [(desk.account_id, AgentRole.ADMINISTRATOR)]

    agent = await sdk(agent_token).profile.get()
    assert agent.id == agent_id and agent.role is AgentRole.AGENT

    with pytest.raises(ChatwootAuthError):
        await sdk("not-a-token").profile.get()


# --- agents ----------------------------------------------------------------------------


async def test_agents_add_get_update_list_remove(desk: Desk, sdk: SdkFactory) -> None:
    aid = desk.account_id
    email = unique("Somchai") + "@Example.com"
    added = await desk.admin.agents.add(aid, name="สมชาย ใจดี", email=email, role="agent")
    assert (added.name, added.email, added.account_id) == ("สมชาย ใจดี", email.lower(), aid)
    assert added.role is AgentRole.AGENT
    assert await desk.admin.agents.get(aid, added.id) == added

    updated = await desk.admin.agents.update(
        aid, added.id, name="Somchai J.", role="administrator", availability="busy")
    assert (updated.name, updated.role, updated.availability_status) == (
        "Somchai J.", AgentRole.ADMINISTRATOR, AvailabilityStatus.BUSY)
    assert await desk.admin.agents.get(aid, added.id) == updated

    listed = await desk.admin.agents.list(aid)
    assert ids(listed) == {desk.tenant.admin_id, added.id}

    await desk.admin.agents.remove(aid, added.id)
    with pytest.raises(ChatwootNotFoundError):
        await desk.admin.agents.get(aid, added.id)
    assert ids(await desk.admin.agents.list(aid)) == {desk.tenant.admin_id}


async def test_a_removed_agents_token_stops_working(desk: Desk, sdk: SdkFactory) -> None:
    agent_id, agent_token = await desk.tenant.agent()
    agent = sdk(agent_token)
    assert (await agent.profile.get()).id == agent_id
    await desk.admin.agents.remove(desk.account_id, agent_id)
    with pytest.raises(ChatwootAuthError):
        await agent.profile.get()


async def test_only_administrators_manage_agents(desk: Desk, sdk: SdkFactory) -> None:
    _, agent_token = await desk.tenant.agent()
    agent = sdk(agent_token)
    assert ids(await agent.agents.list(desk.account_id))  # agents may look
    with pytest.raises(ChatwootPermissionError):
        await agent.agents.add(
            desk.account_id, name="Intruder", email=unique("x") + "@example.com", role="administrator")
    with pytest.raises(ChatwootPermissionError):
        await agent.agents.update(desk.account_id, desk.tenant.admin_id, role="agent")
    assert (await desk.admin.agents.get(desk.account_id, desk.tenant.admin_id)).role is AgentRole.ADMINISTRATOR


# --- inboxes and inbox members ---------------------------------------------------------


async def test_inboxes_create_get_update_list(desk: Desk) -> None:
    aid = desk.account_id
    hook = "https://crm.example/hook"
    api = await desk.admin.inboxes.create(aid, name="Zalo bridge", channel_type="api", webhook_url=hook)
    assert (api.name, api.channel_type, api.webhook_url) == ("Zalo bridge", "Channel::Api", hook)
    widget = await desk.admin.inboxes.create(
        aid, name="Shop chat", channel_type="web_widget", website_url="https://shop.example")
    assert widget.channel_type == "Channel::WebWidget" and widget.website_url == "https://shop.example"
    assert widget.web_widget_script and "data-website-token" in widget.web_widget_script

    fetched = await desk.admin.inboxes.get(aid, api.id)
    assert (fetched.id, fetched.name, fetched.webhook_url) == (api.id, api.name, api.webhook_url)

    updated = await desk.admin.inboxes.update(
        aid, api.id, name="Zalo OA", enable_auto_assignment=False, greeting_enabled=True, greeting_message="Xin chào!"
    )
    assert (updated.name, updated.enable_auto_assignment, updated.greeting_enabled, updated.greeting_message) == (
        "Zalo OA", False, True, "Xin chào!")
    again = await desk.admin.inboxes.get(aid, api.id)
    assert (again.name, again.enable_auto_assignment, again.greeting_message) == ("Zalo OA", False, "Xin chào!")
    assert again.webhook_url == hook  # untouched by the update

    listed = await desk.admin.inboxes.list(aid)
    assert [i.id for i in listed] == [desk.inbox_id, api.id, widget.id]
    assert {i.id: i.name for i in listed}[api.id] == "Zalo OA"


async def test_inbox_agent_bot_get_and_set(desk: Desk, live_server: str) -> None:
    aid = desk.account_id
    import httpx

    async with httpx.AsyncClient(base_url=live_server, headers={"api_access_token": desk.tenant.token}) as http:
        bot = (await http.post(f"/api/v1/accounts/{aid}/agent_bots",
                               json={"name": "Helper", "outgoing_url": "https://bot.example/hook"})).json()
    assert not await desk.admin.inboxes.get_agent_bot(aid, desk.inbox_id)
    await desk.admin.inboxes.set_agent_bot(aid, desk.inbox_id, bot["id"])
    found = await desk.admin.inboxes.get_agent_bot(aid, desk.inbox_id)
    assert (found["id"], found["name"]) == (bot["id"], "Helper")
    await desk.admin.inboxes.set_agent_bot(aid, desk.inbox_id, None)
    assert not await desk.admin.inboxes.get_agent_bot(aid, desk.inbox_id)


async def test_inbox_members_decide_which_inboxes_an_agent_sees(desk: Desk, sdk: SdkFactory) -> None:
    aid, inbox_a = desk.account_id, desk.inbox_id
    inbox_b = await desk.tenant.inbox("api", name="Other inbox")
    ann_id, ann_token = await desk.tenant.agent()
    bob_id, bob_token = await desk.tenant.agent()
    ann, bob = sdk(ann_token), sdk(bob_token)
    assert await ann.inboxes.list(aid) == []

    await desk.admin.inboxes.agents.add(aid, inbox_a, [ann_id])
    assert await inbox_member_ids(desk.admin, aid, inbox_a) == [ann_id]
    assert [i.id for i in await ann.inboxes.list(aid)] == [inbox_a]
    assert (await ann.inboxes.get(aid, inbox_a)).id == inbox_a
    with pytest.raises(ChatwootNotFoundError):
        await ann.inboxes.get(aid, inbox_b)

    await desk.admin.inboxes.agents.update(aid, inbox_a, [bob_id])  # replaces the whole set
    assert await inbox_member_ids(desk.admin, aid, inbox_a) == [bob_id]
    assert await ann.inboxes.list(aid) == []
    assert [i.id for i in await bob.inboxes.list(aid)] == [inbox_a]

    await desk.admin.inboxes.agents.add(aid, inbox_a, [ann_id])  # adds, keeps bob
    assert await inbox_member_ids(desk.admin, aid, inbox_a) == sorted([ann_id, bob_id])

    await desk.admin.inboxes.agents.remove(aid, inbox_a, [bob_id])
    assert await inbox_member_ids(desk.admin, aid, inbox_a) == [ann_id]
    assert await bob.inboxes.list(aid) == []
    with pytest.raises(ChatwootNotFoundError):
        await bob.inboxes.get(aid, inbox_a)


@pytest.mark.xfail(strict=True, reason="chatwoot-sdk 0.2.0 bug: InboxMembersResource.list/add/update look for "
                   "'payload' after _unwrap_response already removed it, so they return [] against Chatwoot too")
async def test_sdk_inbox_members_methods_return_the_members(desk: Desk) -> None:
    agent_id, _ = await desk.tenant.agent()
    members = desk.admin.inboxes.agents
    added = await members.add(desk.account_id, desk.inbox_id, [agent_id])
    replaced = await members.update(desk.account_id, desk.inbox_id, [agent_id])
    listed = await members.list(desk.account_id, desk.inbox_id)
    assert await inbox_member_ids(desk.admin, desk.account_id, desk.inbox_id) == [agent_id]  # the server is right
    assert [[a.id for a in result] for result in (added, replaced, listed)] == [[agent_id]] * 3


async def test_agents_see_only_conversations_of_their_inboxes(desk: Desk, sdk: SdkFactory, runtime: Runtime) -> None:
    aid = desk.account_id
    other_inbox = await desk.tenant.inbox("api", name="VIP line")
    _, agent_token = await desk.tenant.agent(inbox_ids=[desk.inbox_id])
    agent = sdk(agent_token)
    (mine,) = await customers_write(runtime, desk.inbox_id, [unique("c")])
    (theirs,) = await customers_write(runtime, other_inbox, [unique("c")])

    assert ids(await agent.conversations.list(aid)) == {mine}
    assert ids(await desk.admin.conversations.list(aid)) == {mine, theirs}
    assert (await agent.conversations.get(aid, mine)).id == mine
    for call in (agent.conversations.get, agent.messages.list):
        with pytest.raises(ChatwootNotFoundError):
            await call(aid, theirs)
    with pytest.raises(ChatwootNotFoundError):
        await agent.messages.create(aid, theirs, content="sneaking in")
    assert (await agent.conversations.get_counts(aid))["meta"]["all_count"] == 1


# --- contacts --------------------------------------------------------------------------


async def test_contacts_create_get_update_delete(desk: Desk) -> None:
    aid = desk.account_id
    email = unique("An.Nguyen") + "@Example.VN"
    created = await desk.admin.contacts.create(
        aid, desk.inbox_id, name="Nguyễn Văn An", email=email, phone_number="+84901234567",
        identifier=unique("crm"), custom_attributes={"plan": "gold"},
    )
    contact = created.contact
    assert (contact.name, contact.email, contact.phone_number) == ("Nguyễn Văn An", email.lower(), "+84901234567")
    assert contact.custom_attributes == {"plan": "gold"}
    assert created.contact_inbox.inbox_id == desk.inbox_id and created.contact_inbox.source_id

    fetched = await desk.admin.contacts.get(aid, contact.id)
    assert (fetched.id, fetched.name, fetched.identifier) == (contact.id, contact.name, contact.identifier)
    assert [(ci.inbox_id, ci.source_id) for ci in fetched.contact_inboxes] == [
        (desk.inbox_id, created.contact_inbox.source_id)]
    assert fetched.created_at is not None and abs(fetched.created_at - datetime.now(UTC)) < timedelta(minutes=10)

    updated = await desk.admin.contacts.update(aid, contact.id, name="An Nguyễn", custom_attributes={"tier": 2})
    assert updated.name == "An Nguyễn"
    assert updated.custom_attributes == {"plan": "gold", "tier": 2}  # merged, as Chatwoot does
    assert (await desk.admin.contacts.get(aid, contact.id)).name == "An Nguyễn"

    await desk.admin.contacts.delete(aid, contact.id)
    with pytest.raises(ChatwootNotFoundError):
        await desk.admin.contacts.get(aid, contact.id)
    assert await desk.admin.contacts.search(aid, "An Nguyễn") == []
    assert contact.id not in ids(await desk.admin.contacts.list(aid))


async def test_contacts_list_pages_by_15_and_search_filters(desk: Desk) -> None:
    aid = desk.account_id
    # Each has an identifier: Chatwoot lists only contacts with an e-mail, phone or identifier.
    made = [(await desk.admin.contacts.create(aid, desk.inbox_id, name=f"Customer {i:02d}", identifier=unique("crm")))
            .contact.id for i in range(17)]
    somchai = (await desk.admin.contacts.create(
        aid, desk.inbox_id, name="สมชาย ใจดี", email=unique("somchai") + "@example.co.th")).contact

    first, second = await desk.admin.contacts.list(aid, page=1), await desk.admin.contacts.list(aid, page=2)
    assert (len(first), len(second)) == (15, 3)
    assert ids(first).isdisjoint(ids(second)) and ids(first) | ids(second) == {*made, somchai.id}
    assert await desk.admin.contacts.list(aid, page=3) == []

    assert ids(await desk.admin.contacts.search(aid, "ใจดี")) == {somchai.id}
    assert ids(await desk.admin.contacts.search(aid, somchai.email.split("@")[0].upper())) == {somchai.id}
    assert ids(await desk.admin.contacts.search(aid, "Customer 1")) == set(made[10:17])
    assert await desk.admin.contacts.search(aid, "nobody by this name") == []


async def test_contact_conversations_are_theirs_and_respect_inbox_membership(desk: Desk, sdk: SdkFactory) -> None:
    aid = desk.account_id
    other_inbox = await desk.tenant.inbox("api", name="Second line")
    created = await desk.admin.contacts.create(aid, desk.inbox_id, name="Ana")
    stranger = await desk.admin.contacts.create(aid, desk.inbox_id, name="Someone else")
    here = await desk.admin.conversations.create(
        aid, source_id=created.contact_inbox.source_id, inbox_id=desk.inbox_id)
    there = await desk.admin.conversations.create(aid, source_id=unique("src"), inbox_id=other_inbox,
                                                  contact_id=created.contact.id)
    await desk.admin.conversations.create(aid, source_id=stranger.contact_inbox.source_id, inbox_id=desk.inbox_id)

    theirs = await desk.admin.contacts.conversations(aid, created.contact.id)
    assert ids(theirs) == {here.id, there.id}
    assert {c.contact_id for c in theirs} == {created.contact.id}
    assert {c.inbox_id for c in theirs} == {desk.inbox_id, other_inbox}

    _, agent_token = await desk.tenant.agent(inbox_ids=[other_inbox])
    assert ids(await sdk(agent_token).contacts.conversations(aid, created.contact.id)) == {there.id}


async def test_contact_labels_replace_and_persist(desk: Desk) -> None:
    aid = desk.account_id
    contact = (await desk.admin.contacts.create(aid, desk.inbox_id, name="Labelled")).contact
    assert await desk.admin.contacts.labels.list(aid, contact.id) == []
    assert sorted(await desk.admin.contacts.labels.add(aid, contact.id, ["vip", "billing"])) == ["billing", "vip"]
    assert sorted(await desk.admin.contacts.labels.list(aid, contact.id)) == ["billing", "vip"]
    assert await desk.admin.contacts.labels.add(aid, contact.id, ["vip"]) == ["vip"]  # overwrites
    assert await desk.admin.contacts.labels.list(aid, contact.id) == ["vip"]


async def test_contact_merge_keeps_the_base_and_moves_everything_to_it(desk: Desk) -> None:
    aid = desk.account_id
    other_inbox = await desk.tenant.inbox("api", name="Web form")
    email = unique("merge") + "@example.com"
    base = await desk.admin.contacts.create(aid, desk.inbox_id, name="Kim", custom_attributes={"plan": "pro"})
    mergee = await desk.admin.contacts.create(aid, other_inbox, name="Kim L.", email=email,
                                              custom_attributes={"plan": "free", "city": "Hà Nội"})
    first = await desk.admin.conversations.create(aid, source_id=base.contact_inbox.source_id, inbox_id=desk.inbox_id)
    second = await desk.admin.conversations.create(
        aid, source_id=mergee.contact_inbox.source_id, inbox_id=other_inbox)
    await desk.admin.contacts.labels.add(aid, mergee.contact.id, ["returning"])

    merged = await desk.admin.contacts.merge(
        aid, base_contact_id=base.contact.id, mergee_contact_id=mergee.contact.id)
    assert (merged.id, merged.name, merged.email) == (base.contact.id, "Kim", email)  # base wins, blanks filled
    assert merged.custom_attributes == {"plan": "pro", "city": "Hà Nội"}
    with pytest.raises(ChatwootNotFoundError):
        await desk.admin.contacts.get(aid, mergee.contact.id)

    assert ids(await desk.admin.contacts.conversations(aid, base.contact.id)) == {first.id, second.id}
    assert (await desk.admin.conversations.get(aid, second.id)).contact_id == base.contact.id
    assert {ci.inbox_id for ci in (await desk.admin.contacts.get(aid, base.contact.id)).contact_inboxes} == {
        desk.inbox_id, other_inbox}
    assert await desk.admin.contacts.labels.list(aid, base.contact.id) == ["returning"]


async def test_contactable_inboxes_offer_the_inboxes_a_conversation_can_start_on(desk: Desk, sdk: SdkFactory) -> None:
    aid = desk.account_id
    second_api = await desk.tenant.inbox("api", name="Second API")
    mail = await desk.tenant.inbox("email", name="Mail")
    telegram = await desk.tenant.inbox("telegram", name="Telegram bot")
    email = unique("reach") + "@example.com"
    created = await desk.admin.contacts.create(aid, desk.inbox_id, name="Reachable", email=email)

    offered = {row["inbox"]["id"]: row["source_id"] for row in
               await desk.admin.contacts.contactable_inboxes(aid, created.contact.id)}
    assert telegram not in offered  # no identity on Telegram: a conversation cannot start there
    assert set(offered) == {desk.inbox_id, second_api, mail}
    assert offered[desk.inbox_id] == created.contact_inbox.source_id
    assert offered[mail] == email and offered[second_api]

    started = await desk.admin.conversations.create(aid, source_id=offered[second_api], inbox_id=second_api,
                                                    contact_id=created.contact.id)
    assert (started.inbox_id, started.contact_id) == (second_api, created.contact.id)
    again = {row["inbox"]["id"]: row["source_id"] for row in
             await desk.admin.contacts.contactable_inboxes(aid, created.contact.id)}
    assert again[second_api] == offered[second_api]  # the identity now exists and is reused

    _, agent_token = await desk.tenant.agent(inbox_ids=[mail])
    mine = await sdk(agent_token).contacts.contactable_inboxes(aid, created.contact.id)
    assert [row["inbox"]["id"] for row in mine] == [mail]


# --- conversations ---------------------------------------------------------------------


async def test_conversation_create_get_update_assign(desk: Desk) -> None:
    aid = desk.account_id
    agent_id, _ = await desk.tenant.agent(inbox_ids=[desk.inbox_id])
    team = await desk.admin.teams.create(aid, name=unique("Returns"))
    created = await desk.admin.contacts.create(aid, desk.inbox_id, name="Linh")

    conversation = await desk.admin.conversations.create(
        aid, source_id=created.contact_inbox.source_id, inbox_id=desk.inbox_id,
        custom_attributes={"order_id": "A-1001"}, message={"content": "We received your return request"},
    )
    assert conversation.status is ConversationStatus.OPEN and conversation.display_id == conversation.id
    assert (conversation.inbox_id, conversation.contact_id, conversation.account_id) == (
        desk.inbox_id, created.contact.id, aid)
    assert conversation.custom_attributes == {"order_id": "A-1001"}
    assert conversation.meta.sender.id == created.contact.id and recent(conversation.created_at)
    messages = await desk.admin.messages.list(aid, conversation.id)
    assert [(m.content, m.message_type) for m in messages] == [("We received your return request", OUTGOING)]

    fetched = await desk.admin.conversations.get(aid, conversation.id)
    assert (fetched.id, fetched.contact_id, fetched.inbox.id) == (conversation.id, created.contact.id, desk.inbox_id)

    updated = await desk.admin.conversations.update(aid, conversation.id, status="pending", team_id=team.id,
                                                    priority="high")
    assert (updated.status, updated.priority.value, updated.meta.team.id) == (
        ConversationStatus.PENDING, "high", team.id)

    assigned = await desk.admin.conversations.assign(aid, conversation.id, assignee_id=agent_id)
    assert assigned.assignee_id == agent_id and assigned.meta.assignee.id == agent_id

    persisted = await desk.admin.conversations.get(aid, conversation.id)
    assert (persisted.status, persisted.assignee_id, persisted.meta.team.id, persisted.priority.value) == (
        ConversationStatus.PENDING, agent_id, team.id, "high")


async def test_conversation_list_filters_and_counts(desk: Desk, sdk: SdkFactory, runtime: Runtime) -> None:
    aid, inbox_a = desk.account_id, desk.inbox_id
    inbox_b = await desk.tenant.inbox("api", name="Inbox B")
    agent_id, agent_token = await desk.tenant.agent(inbox_ids=[inbox_a, inbox_b])
    team = await desk.admin.teams.create(aid, name=unique("Escalations"))
    c1, c2, c5 = await customers_write(runtime, inbox_a, [unique("c1"), unique("c2"), unique("c5")])
    c3, c4 = await customers_write(runtime, inbox_b, [unique("c3"), unique("c4")], text="Hàng bị lỗi, cần đổi trả")
    admin = desk.admin
    await admin.conversations.labels.add(aid, c1, ["billing"])
    await admin.conversations.labels.add(aid, c2, ["billing", "vip"])
    await admin.conversations.labels.add(aid, c4, ["vip"])
    await admin.conversations.update(aid, c2, assignee_id=desk.tenant.admin_id, team_id=team.id)
    await admin.conversations.assign(aid, c3, assignee_id=agent_id)
    await admin.conversations.toggle_status(aid, c4, "resolved")
    await admin.conversations.toggle_status(aid, c5, "pending")

    async def listed(client: AsyncChatwootClient = admin, **filters: Any) -> set[int]:
        return ids(await client.conversations.list(aid, **filters))

    assert await listed() == {c1, c2, c3}  # status defaults to open
    assert await listed(status="resolved") == {c4}
    assert await listed(status="pending") == {c5}
    assert await listed(assignee_type="me") == {c2}
    assert await listed(assignee_type="unassigned") == {c1}
    assert await listed(assignee_type="all") == {c1, c2, c3}
    assert await listed(sdk(agent_token), assignee_type="me") == {c3}
    assert await listed(inbox_id=inbox_b) == {c3}
    assert await listed(inbox_id=inbox_b, status="resolved") == {c4}
    assert await listed(team_id=team.id) == {c2}
    assert await listed(labels=["billing"]) == {c1, c2}
    assert await listed(labels=["vip"]) == {c2}
    assert await listed(labels=["vip"], status="resolved") == {c4}
    assert await listed(q="đổi trả") == {c3, c4}  # a search ignores the status, as in Chatwoot

    assert (await admin.conversations.get_counts(aid))["meta"] == {
        "mine_count": 1, "unassigned_count": 1, "assigned_count": 2, "all_count": 3}
    assert (await admin.conversations.get_counts(aid, status="open", inbox_id=inbox_a))["meta"] == {
        "mine_count": 1, "unassigned_count": 1, "assigned_count": 1, "all_count": 2}
    assert (await admin.conversations.get_counts(aid, status="resolved"))["meta"]["all_count"] == 1
    assert (await admin.conversations.get_counts(aid, team_id=team.id))["meta"]["all_count"] == 1
    assert (await admin.conversations.get_counts(aid, labels=["vip"]))["meta"]["all_count"] == 1
    assert (await admin.conversations.get_counts(aid, status="resolved", labels=["vip"]))["meta"]["all_count"] == 1
    assert (await sdk(agent_token).conversations.get_counts(aid))["meta"]["mine_count"] == 1


async def test_conversation_list_pages_by_25_newest_first(desk: Desk, runtime: Runtime) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    made = await customers_write(runtime, desk.inbox_id, [unique(f"p{i}") for i in range(27)], start=start)
    newest_first = list(reversed(made))

    first = await desk.admin.conversations.list(desk.account_id, page=1)
    second = await desk.admin.conversations.list(desk.account_id, page=2)
    assert [c.id for c in first] == newest_first[:25]
    assert [c.id for c in second] == newest_first[25:]
    assert await desk.admin.conversations.list(desk.account_id, page=3) == []
    assert (await desk.admin.conversations.get_counts(desk.account_id))["meta"]["all_count"] == 27


async def test_toggle_status_changes_the_status(desk: Desk, runtime: Runtime) -> None:
    aid = desk.account_id
    (display_id,) = await customers_write(runtime, desk.inbox_id, [unique("t")])

    for status in ("resolved", "pending", "snoozed", "open"):
        result = await desk.admin.conversations.toggle_status(aid, display_id, status)
        assert result.success and result.current_status is ConversationStatus(status)
        assert (await desk.admin.conversations.get(aid, display_id)).status is ConversationStatus(status)
        assert display_id in ids(await desk.admin.conversations.list(aid, status=status))

    activity = [m.content for m in await desk.admin.messages.list(aid, display_id) if m.message_type == ACTIVITY]
    assert activity == [
        "Conversation was marked resolved by Admin",
        "Conversation was marked pending by Admin",
        "Conversation was snoozed by Admin",
        "Conversation was reopened by Admin",
    ]


async def test_conversation_labels_replace_persist_and_filter(desk: Desk, runtime: Runtime) -> None:
    aid = desk.account_id
    (display_id,) = await customers_write(runtime, desk.inbox_id, [unique("l")])
    assert await desk.admin.conversations.labels.list(aid, display_id) == []
    assert sorted(await desk.admin.conversations.labels.add(aid, display_id, ["urgent", "billing"])) == [
        "billing", "urgent"]
    assert sorted((await desk.admin.conversations.get(aid, display_id)).labels) == ["billing", "urgent"]
    assert await desk.admin.conversations.labels.add(aid, display_id, ["urgent"]) == ["urgent"]  # overwrites
    assert await desk.admin.conversations.labels.list(aid, display_id) == ["urgent"]
    assert display_id in ids(await desk.admin.conversations.list(aid, labels=["urgent"]))
    assert display_id not in ids(await desk.admin.conversations.list(aid, labels=["billing"]))


# --- messages --------------------------------------------------------------------------


async def test_messages_reply_private_note_edit_delete(desk: Desk, runtime: Runtime) -> None:
    aid = desk.account_id
    (display_id,) = await customers_write(runtime, desk.inbox_id, [unique("m")], text="Where is my order?")
    (incoming,) = await desk.admin.messages.list(aid, display_id)
    assert (incoming.content, incoming.message_type, incoming.private) == ("Where is my order?", INCOMING, False)
    assert incoming.conversation_id == display_id and incoming.sender.type == "contact"
    assert recent(incoming.created_at)
    waiting = await desk.admin.conversations.get(aid, display_id)
    assert waiting.waiting_since is not None and waiting.first_reply_created_at is None

    note = await desk.admin.messages.create(
        aid, display_id, content="VIP customer, check the warehouse", private=True)
    assert note.private and note.message_type == OUTGOING and note.sender.id == desk.tenant.admin_id
    still_waiting = await desk.admin.conversations.get(aid, display_id)
    assert still_waiting.waiting_since == waiting.waiting_since  # a note is not an answer
    assert still_waiting.first_reply_created_at is None

    reply = await desk.admin.messages.create(aid, display_id, content="Đơn hàng của bạn đang được giao 🚚")
    assert not reply.private and reply.content == "Đơn hàng của bạn đang được giao 🚚"
    answered = await desk.admin.conversations.get(aid, display_id)
    assert answered.waiting_since is None and recent(answered.first_reply_created_at)

    listed = await desk.admin.messages.list(aid, display_id)
    assert [(m.id, m.private) for m in listed] == [(incoming.id, False), (note.id, True), (reply.id, False)]

    edited = await desk.admin.messages.update(aid, reply.id, content="Đơn hàng sẽ đến vào ngày mai")
    assert (edited.id, edited.content) == (reply.id, "Đơn hàng sẽ đến vào ngày mai")
    await desk.admin.messages.delete(aid, note.id)
    after = {m.id: m for m in await desk.admin.messages.list(aid, display_id)}
    assert after[reply.id].content == "Đơn hàng sẽ đến vào ngày mai"
    assert after[note.id].content == "This message was deleted" and after[note.id].content_attributes["deleted"]
    assert after[incoming.id].content == "Where is my order?"


# --- teams -----------------------------------------------------------------------------


async def test_teams_create_get_update_list_delete(desk: Desk) -> None:
    aid = desk.account_id
    team = await desk.admin.teams.create(
        aid, name="Billing", description="Invoices and refunds", allow_auto_assign=False)
    assert (team.name, team.description, team.allow_auto_assign, team.account_id) == (
        "Billing", "Invoices and refunds", False, aid)
    assert await desk.admin.teams.get(aid, team.id) == team

    updated = await desk.admin.teams.update(aid, team.id, name="Billing & refunds", description="Money matters")
    assert (updated.name, updated.description, updated.allow_auto_assign) == (
        "Billing & refunds", "Money matters", False)
    assert (await desk.admin.teams.get(aid, team.id)).name == "Billing & refunds"

    other = await desk.admin.teams.create(aid, name="Logistics")
    assert [t.id for t in await desk.admin.teams.list(aid)] == [team.id, other.id]

    await desk.admin.teams.delete(aid, team.id)
    with pytest.raises(ChatwootNotFoundError):
        await desk.admin.teams.get(aid, team.id)
    assert [t.id for t in await desk.admin.teams.list(aid)] == [other.id]


async def test_team_agents_add_list_remove(desk: Desk, sdk: SdkFactory) -> None:
    aid = desk.account_id
    team = await desk.admin.teams.create(aid, name="Night shift")
    ann_id, ann_token = await desk.tenant.agent()
    bob_id, _ = await desk.tenant.agent()
    assert await desk.admin.teams.agents.list(aid, team.id) == []

    await desk.admin.teams.agents.add(aid, team.id, [ann_id, bob_id])
    assert [a.id for a in await desk.admin.teams.agents.list(aid, team.id)] == sorted([ann_id, bob_id])
    assert (await sdk(ann_token).teams.get(aid, team.id)).is_member
    assert not (await desk.admin.teams.get(aid, team.id)).is_member

    await desk.admin.teams.agents.remove(aid, team.id, [ann_id])
    assert [a.id for a in await desk.admin.teams.agents.list(aid, team.id)] == [bob_id]
    assert not (await sdk(ann_token).teams.get(aid, team.id)).is_member


# --- the sync client -------------------------------------------------------------------


async def test_the_sync_client_works_too(desk: Desk, live_server: str) -> None:
    def run() -> tuple[int, list[int], int]:
        with ChatwootClient(base_url=live_server, api_token=desk.tenant.token) as client:
            me = client.profile.get()
            team = client.teams.create(desk.account_id, name="Sync team")
            return me.id, [t.id for t in client.teams.list(desk.account_id)], team.id

    me_id, team_ids, team_id = await asyncio.to_thread(run)
    assert me_id == desk.tenant.admin_id and team_ids == [team_id]
