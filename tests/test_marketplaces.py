"""Marketplace channels end to end: the connector runner against each platform's loopback
sandbox (``connectors/<marketplace>/sandbox.py``), which checks every request's signature,
expires tokens, pages its lists and answers rate limits the way the platform documents.

The same scenarios run for every marketplace: a full sync of 1,000 conversations across
pages, an incremental sync, a token that expires in the middle of a sync, rate limits,
a signed reply, the order a buyer writes about, and the marketplace's reply rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.models import ConnectorCursor, Conversation, Inbox, Message, SlaClock
from app.runner import ConnectorRunner
from connectors.base.marketplace_sandbox import MarketplaceSandbox
from connectors.ebay import sandbox as ebay_sandbox
from connectors.lazada import sandbox as lazada_sandbox
from connectors.shopee import sandbox as shopee_sandbox
from connectors.tiktok_shop import sandbox as tiktok_sandbox

FAST = {"connector_scan_seconds": 0.2, "connector_lease_seconds": 5.0, "connector_backoff": "0.2,0.4,0.8"}


@dataclass(frozen=True)
class Platform:
    """One marketplace under test: its sandbox and the paths its scenarios touch."""

    channel_type: str
    make: Callable[..., MarketplaceSandbox]
    list_path: str
    messages_path: str
    send_path: str
    refresh_path: str
    #: Channel fields spoiled to make the platform refuse the shop's credentials.
    spoil: tuple[str, ...]
    #: The platform names the order a buyer writes about (eBay's messages name only listings).
    names_orders: bool = True
    #: The marketplace's reply rule runs on buyer messages (eBay's only on return and
    #: item-not-received requests).
    rule_on_messages: bool = True


def _platforms() -> list[Any]:
    platforms = [Platform("shopee", shopee_sandbox.ShopeeSandbox, shopee_sandbox.LIST_PATH,
                          shopee_sandbox.MESSAGES_PATH, shopee_sandbox.SEND_PATH, shopee_sandbox.REFRESH_PATH,
                          ("partner_key",)),
                 Platform("lazada", lazada_sandbox.LazadaSandbox, lazada_sandbox.LIST_PATH,
                          lazada_sandbox.MESSAGES_PATH, lazada_sandbox.SEND_PATH, lazada_sandbox.REFRESH_PATH,
                          ("app_secret",)),
                 Platform("tiktok_shop", tiktok_sandbox.TikTokShopSandbox, tiktok_sandbox.LIST_PATH,
                          tiktok_sandbox.MESSAGES_PATH, "send", tiktok_sandbox.REFRESH_PATH, ("app_secret",)),
                 Platform("ebay", ebay_sandbox.EbaySandbox, ebay_sandbox.LIST_PATH, ebay_sandbox.MESSAGES_PATH,
                          ebay_sandbox.SEND_PATH, ebay_sandbox.TOKEN_PATH, ("access_token", "client_secret"),
                          names_orders=False, rule_on_messages=False)]
    return [pytest.param(p, id=p.channel_type) for p in platforms]


@pytest.fixture(params=_platforms())
def platform(request: pytest.FixtureRequest) -> Platform:
    return request.param


@pytest.fixture
def sandbox(platform: Platform) -> Any:
    with platform.make() as server:
        yield server


@asynccontextmanager
async def running(runtime: Any, *inbox_ids: int) -> AsyncIterator[ConnectorRunner]:
    settings = runtime.settings.model_copy(update=FAST)
    runner = ConnectorRunner(runtime.db, runtime.store, runtime.box, settings, only=inbox_ids)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s (last: {value!r})")
        await asyncio.sleep(0.1)


async def connect(client: httpx.AsyncClient, tenant: Any, sandbox: Any, **extra: Any) -> int:
    """A marketplace inbox made through the API, as a seller connects a shop."""
    channel = {**sandbox.channel(), "poll_interval": 0.3, **extra}
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers,
                                 json={"name": f"{channel['type']} shop", "channel": channel})
    assert response.status_code == 200, response.text
    body = response.json()
    for secret in ("access_token", "refresh_token", "partner_key", "app_secret", "client_secret"):
        assert secret not in body and secret not in str(body.get("channel") or "")
    return body["id"]


async def count_messages(runtime: Any, inbox_id: int) -> int:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id))


def has_messages(runtime: Any, inbox_id: int, n: int) -> Callable[[], Awaitable[int | None]]:
    async def check() -> int | None:
        found = await count_messages(runtime, inbox_id)
        return found if found >= n else None
    return check


async def source_ids(runtime: Any, inbox_id: int) -> list[str]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(Message.source_id).where(Message.inbox_id == inbox_id)))


async def pass_finished(runtime: Any, inbox_id: int) -> bool:
    async with runtime.db.read_session() as session:
        cursor = await session.get(ConnectorCursor, (inbox_id, "default"))
    return cursor is not None and "page" not in cursor.value and cursor.value.get("watermark") is not None


async def test_full_sync_of_1000_conversations_across_pages(client, tenants, runtime, sandbox, platform):
    sandbox.fill(1000, 1)
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 1000), timeout=600)
        await eventually(lambda: pass_finished(runtime, inbox_id))
    async with runtime.db.read_session() as session:
        conversations = list(await session.scalars(select(Conversation).where(Conversation.inbox_id == inbox_id)))
    assert await count_messages(runtime, inbox_id) == 1000
    ids = await source_ids(runtime, inbox_id)
    assert len(set(ids)) == 1000
    assert len(conversations) == 1000
    # Conversation ids are above 2**53: kept exact, as text.
    expected = {str(c.id) for c in sandbox.newest_first(limit=1000)}
    assert {c.thread_key for c in conversations} == expected
    assert all(int(key) > 2**53 for key in expected)
    pages = [c for c in sandbox.calls_to(platform.list_path) if c.status == 200]
    assert len(pages) >= 1000 // 100
    assert all(call.signed for call in sandbox.calls)


async def test_incremental_sync_reads_only_what_changed(client, tenants, runtime, sandbox, platform):
    sandbox.fill(100, 3)
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 300))
        await eventually(lambda: pass_finished(runtime, inbox_id))
        calls_before = len(sandbox.calls_to(platform.messages_path))
        old_buyer = sandbox.newest_first(limit=100)[-1].buyer_id  # the quietest conversation
        sandbox.buyer_writes(old_buyer, "Tôi muốn đổi size được không?")
        sandbox.seller_writes(old_buyer, "Dạ được ạ, bạn cần size nào?")
        sandbox.buyer_writes(old_buyer, "ขอเปลี่ยนไซซ์ได้ไหมคะ", kind="order", order_id="2411300TH8XQ")
        sandbox.buyer_writes(777_000_001, "آیا این کالا موجود است؟", name="مریم")
        sandbox.buyer_writes(777_000_002, "这个有现货吗？", name="李娜", kind="item", product_id="84120399")
        await eventually(has_messages(runtime, inbox_id, 305))
        await asyncio.sleep(1.0)  # a few more quiet passes
    assert await count_messages(runtime, inbox_id) == 305
    # Only the changed conversations' messages were read again, not the whole shop's.
    assert len(sandbox.calls_to(platform.messages_path)) - calls_before < 40
    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(Conversation).where(Conversation.inbox_id == inbox_id)))
    by_thread = {c.thread_key: c for c in rows}
    old = by_thread[str(sandbox.conversation_of(old_buyer).id)]
    if platform.names_orders:
        assert old.custom_attributes["order_id"] == "2411300TH8XQ"
        assert old.custom_attributes["marketplace"] == platform.channel_type
    new = by_thread[str(sandbox.conversation_of(777_000_002).id)]
    assert new.custom_attributes["product_id"] == "84120399"
    async with runtime.db.read_session() as session:
        rows = list(await session.execute(select(Message.content, Message.message_type).where(
            Message.conversation_id.in_([old.id, by_thread[str(sandbox.conversation_of(777_000_001).id)].id]))))
    texts = dict(rows)
    assert texts["Tôi muốn đổi size được không?"] == "incoming"
    assert texts["آیا این کالا موجود است؟"] == "incoming"
    # What the seller typed in the marketplace's own seller centre arrives as an outgoing echo.
    assert texts["Dạ được ạ, bạn cần size nào?"] == "outgoing"
    # Of the shop's history, two of every three messages are the buyer's, the rest the seller's.
    async with runtime.db.read_session() as session:
        kinds = dict(list(await session.execute(select(Message.message_type, func.count()).where(
            Message.inbox_id == inbox_id).group_by(Message.message_type))))
    assert kinds == {"incoming": 204, "outgoing": 101}


async def test_token_expiring_mid_sync_is_refreshed_and_stored_encrypted(client, tenants, runtime, sandbox, platform):
    sandbox.fill(150, 2)
    tenant = await tenants.new()
    first_refresh = sandbox.refresh_token
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(lambda: _listed(sandbox, platform, 2))
        sandbox.expire_access_tokens()
        await eventually(has_messages(runtime, inbox_id, 300))
        await eventually(lambda: pass_finished(runtime, inbox_id))
        sandbox.expire_access_tokens()
        sandbox.buyer_writes(888_000_001, "still there?")
        await eventually(has_messages(runtime, inbox_id, 301))
    assert await count_messages(runtime, inbox_id) == 301
    assert sandbox.refreshes >= 2
    async with runtime.db.read_session() as session:
        inbox = await session.get(Inbox, inbox_id)
    stored = runtime.box.open(inbox.credentials_encrypted)
    assert stored["access_token"] != sandbox.access_token  # a refreshed one
    assert sandbox.token_valid(stored["access_token"]) is None
    if sandbox.rotate_refresh_tokens:
        assert stored["refresh_token"] != first_refresh
    assert stored["access_token"] not in str(inbox.settings)
    assert stored["refresh_token"] not in str(inbox.settings)


def _listed(sandbox: Any, platform: Platform, pages: int) -> Any:
    async def check() -> bool:
        return len([c for c in sandbox.calls_to(platform.list_path) if c.status == 200]) >= pages
    return check()


async def test_rate_limits_are_honoured_and_nothing_is_lost(client, tenants, runtime, sandbox, platform):
    sandbox.fill(100, 2)
    sandbox.fail_next(platform.list_path, "rate", times=1, retry_after=1)
    sandbox.fail_next(platform.messages_path, "rate", times=1, retry_after=1)
    sandbox.fail_next(platform.messages_path, "server", times=2)
    # In the middle of a page: what the page gave so far is kept, the rest waits.
    sandbox.fail_next(platform.messages_path, "rate", times=1, retry_after=1, after=8)
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 200))
        await eventually(lambda: pass_finished(runtime, inbox_id))
        body = (await client.get(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers)).json()
    assert await count_messages(runtime, inbox_id) == 200
    assert len(set(await source_ids(runtime, inbox_id))) == 200
    limited = [c for c in sandbox.calls if c.status == 429]
    assert len(limited) == 3
    for call in limited:  # the next call came no sooner than Retry-After said
        following = [c for c in sandbox.calls if c.at > call.at]
        assert following and following[0].at - call.at >= 0.9
    # The inbox shows the last problem it met, and that it is connected again.
    assert body["connection"]["state"] == "connected"
    assert (body["connection"]["last_error"] or "").startswith("message list: ")


async def test_reply_reaches_the_platform_signed_and_is_stored_once(client, tenants, runtime, sandbox, platform):
    buyer = 912_000_001
    sandbox.buyer_writes(buyer, "Shop ơi, đơn của mình giao chưa?", name="thanh.tran")
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 1))
        async with runtime.db.read_session() as session:
            conversation = await session.scalar(select(Conversation).where(Conversation.inbox_id == inbox_id))
        response = await client.post(
            tenant.path(f"/conversations/{conversation.display_id}/messages"), headers=tenant.headers,
            json={"content": "Dạ, đơn đã giao cho đơn vị vận chuyển hôm nay ạ.", "message_type": "outgoing"})
        assert response.status_code == 200, response.text
        reply_id = response.json()["id"]

        async def sent() -> Message | None:
            async with runtime.db.read_session() as session:
                row = await session.get(Message, reply_id)
            return row if row is not None and row.status == "sent" else None

        row = await eventually(sent)
        await asyncio.sleep(1.5)  # passes that list the reply again
    assert [m.text for m in sandbox.sent] == ["Dạ, đơn đã giao cho đơn vị vận chuyển hôm nay ạ."]
    sends = [c for c in sandbox.calls_to(platform.send_path) if c.status == 200]
    assert len(sends) == 1 and sends[0].signed
    assert row.source_id == str(sandbox.sent[0].id)
    assert await count_messages(runtime, inbox_id) == 2  # the listed reply is not stored again


async def test_reply_rule_is_on_by_default(client, tenants, runtime, sandbox, platform):
    sandbox.buyer_writes(913_000_001, "Is this still available?")
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 1))
    async with runtime.db.read_session() as session:
        clocks = list(await session.scalars(select(SlaClock).where(SlaClock.inbox_id == inbox_id)))
    active = [c.kind for c in clocks if c.status == "active"]
    assert active == ([platform.channel_type] if platform.rule_on_messages else [])


async def test_bad_partner_credentials_mark_the_inbox_auth_failed(client, tenants, runtime, sandbox, platform):
    sandbox.buyer_writes(914_000_001, "hello")
    tenant = await tenants.new()
    channel = sandbox.channel()
    wrong = {k: "wrong-" + channel[k] for k in platform.spoil}
    inbox_id = await connect(client, tenant, sandbox, **wrong)

    async def state() -> str | None:
        body = (await client.get(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers)).json()
        return body["connection"]["state"] if body["connection"]["state"] == "auth_failed" else None

    async with running(runtime, inbox_id):
        await eventually(state)
    body = (await client.get(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers)).json()
    assert not any(v[6:] in (body["connection"]["last_error"] or "") for v in wrong.values())
    assert await count_messages(runtime, inbox_id) == 0
