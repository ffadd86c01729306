"""Marketplace channels end to end: the connector runner against each platform's loopback
sandbox (``connectors/<marketplace>/sandbox.py``), which checks every request's signature,
expires tokens, pages its lists and answers rate limits the way the platform documents.

The same scenarios run for every marketplace: a full sync of 1,000 conversations across
pages, an incremental sync, a token that expires in the middle of a sync, rate limits,
a signed reply, the order a buyer writes about, and the marketplace's reply rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.models import Attachment, ConnectorCursor, Conversation, Inbox, Message, SlaClock
from app.runner import ConnectorRunner
from tests.connector_runner import eventually as wait_until
from tests.connector_runner import running as run_connectors
from connectors.base.marketplace import json_content, placeholder_text
from connectors.base.marketplace_sandbox import MarketplaceSandbox
from connectors.ebay import sandbox as ebay_sandbox
from connectors.lazada import sandbox as lazada_sandbox
from connectors.shopee import sandbox as shopee_sandbox
from connectors.tiktok_shop import sandbox as tiktok_sandbox

#: Syncs of 1,000 conversations keep a page in hand for a while: a longer lease.
LEASE = {"connector_lease_seconds": 5.0}
#: How long a marketplace scenario may take to settle.
SETTLE_SECONDS = 240.0


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


def running(runtime: Any, *inbox_ids: int) -> AbstractAsyncContextManager[ConnectorRunner]:
    """The shared test runner (``tests/connector_runner.py``) with the longer lease."""
    return run_connectors(runtime, *inbox_ids, **LEASE)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = SETTLE_SECONDS) -> Any:
    """The shared poll-until-true, with the marketplaces' longer default wait."""
    return await wait_until(check, timeout, every=0.1)


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


# -- Shopee push (code 10, webchat_push) ----------------------------------------------------

@pytest.fixture
def shopee() -> Any:
    with shopee_sandbox.ShopeeSandbox() as server:
        yield server


async def _shopee_inbox(client: httpx.AsyncClient, tenant: Any, shopee: Any) -> tuple[int, str]:
    inbox_id = await connect(client, tenant, shopee)
    body = (await client.get(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers)).json()
    return inbox_id, body["webhook_url"]


async def test_shopee_push_with_the_right_signature_is_stored_once(client, tenants, runtime, shopee):
    tenant = await tenants.new()
    inbox_id, url = await _shopee_inbox(client, tenant, shopee)
    assert url.endswith(f"/webhooks/shopee/{url.rsplit('/', 1)[1]}") and url.startswith("http")
    message = shopee.buyer_writes(915_000_001, "ร้านค้า ส่งของวันนี้ได้ไหมคะ", name="ploy.s")
    first = await shopee.deliver_push(client, url, message)
    again = await shopee.deliver_push(client, url, message)  # Shopee redelivers
    assert first.status_code == again.status_code == 200
    assert first.content == b""  # Shopee asks for an empty 2xx body
    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(Message).where(Message.inbox_id == inbox_id)))
        conversation = await session.scalar(select(Conversation).where(Conversation.inbox_id == inbox_id))
    assert [(m.source_id, m.content, m.message_type) for m in rows] == [
        (str(message.id), "ร้านค้า ส่งของวันนี้ได้ไหมคะ", "incoming")]
    assert conversation.thread_key == str(message.conversation_id)
    # A push about another shop of the same partner app, or another push type, stores nothing.
    other = shopee.chat_push(shopee.buyer_writes(915_000_002, "other shop"))
    other["shop_id"] = 999
    raw, headers = shopee.signed_push(url, other)
    assert (await client.post(url, content=raw, headers=headers)).status_code == 200
    raw, headers = shopee.signed_push(url, {"code": 3, "shop_id": shopee.shop_id, "data": {"ordersn": "X1"}})
    assert (await client.post(url, content=raw, headers=headers)).status_code == 200
    assert await count_messages(runtime, inbox_id) == 1


async def test_shopee_push_with_a_wrong_or_missing_signature_is_refused(client, tenants, runtime, shopee):
    tenant = await tenants.new()
    inbox_id, url = await _shopee_inbox(client, tenant, shopee)
    body = shopee.chat_push(shopee.buyer_writes(916_000_001, "Còn hàng không shop?"))
    raw, headers = shopee.signed_push(url, body)
    missing = await client.post(url, content=raw, headers={"content-type": "application/json"})
    assert missing.status_code == 401
    wrong_key = shopee.signed_push(url, body, key="not-the-partner-key")[1]
    assert (await client.post(url, content=raw, headers=wrong_key)).status_code == 403
    other_url = shopee.signed_push(url + "x", body)[1]  # signed for another callback URL
    assert (await client.post(url, content=raw, headers=other_url)).status_code == 403
    tampered = raw.replace("Còn hàng".encode(), "Hết hàng".encode())
    assert (await client.post(url, content=tampered, headers=headers)).status_code == 403
    assert await count_messages(runtime, inbox_id) == 0
    # Shopee's console checks the URL with an empty body when it is saved.
    assert (await client.post(url, content=b"")).status_code == 200
    assert await count_messages(runtime, inbox_id) == 0


async def test_shopee_push_then_poll_stores_one_message(client, tenants, runtime, shopee):
    tenant = await tenants.new()
    inbox_id, url = await _shopee_inbox(client, tenant, shopee)
    pushed = shopee.buyer_writes(917_000_001, "请问今天能发货吗？", name="李娜")
    assert (await shopee.deliver_push(client, url, pushed)).status_code == 200
    assert await count_messages(runtime, inbox_id) == 1
    later = shopee.buyer_writes(917_000_001, "آیا ارسال رایگان است؟")
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 2))
        await eventually(lambda: pass_finished(runtime, inbox_id))
    assert sorted(await source_ids(runtime, inbox_id)) == sorted([str(pushed.id), str(later.id)])
    async with runtime.db.read_session() as session:
        conversations = list(await session.scalars(select(Conversation).where(Conversation.inbox_id == inbox_id)))
    assert len(conversations) == 1


# -- eBay return and item-not-received requests (Post-Order API) -----------------------------

@pytest.fixture
def ebay() -> Any:
    with ebay_sandbox.EbaySandbox() as server:
        yield server


async def test_ebay_open_requests_become_conversations_under_the_3_day_rule(client, tenants, runtime, ebay):
    ebay.request_page_limit = 2  # several pages from a small shop
    ebay.buyer_writes(918_000_001, "Is it authentic?", name="kim_buyer")
    returns = [ebay.open_return(f"returner{i}", order_id=f"12-0470{i}-3456{i}", item_id=f"11000{i}",
                                comment="Màu sai, không giống hình" if i == 0 else "") for i in range(5)]
    inquiries = [ebay.open_inquiry(f"waiting{i}", item_id=f"2200{i}", transaction_id=f"99{i}") for i in range(3)]
    settled = ebay.open_return("settled_buyer", order_id="12-00001-00001", item_id="1")
    ebay.close_request(settled.id)
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, ebay)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 9))
        await eventually(lambda: pass_finished(runtime, inbox_id))
        late = ebay.open_inquiry("late_buyer", item_id="33001", transaction_id="77")
        await eventually(has_messages(runtime, inbox_id, 10))
        await asyncio.sleep(1.0)  # later passes list the same requests again
        assert await count_messages(runtime, inbox_id) == 10
        async with runtime.db.read_session() as session:
            rows = list(await session.scalars(select(Conversation).where(Conversation.inbox_id == inbox_id)))
        by_thread = {c.thread_key: c for c in rows}
        first = by_thread[f"return:{returns[0].id}"]
        response = await client.post(
            tenant.path(f"/conversations/{first.display_id}/messages"), headers=tenant.headers,
            json={"content": "Xin lỗi bạn, shop đồng ý hoàn tiền.", "message_type": "outgoing"})
        assert response.status_code == 200, response.text
        reply_id = response.json()["id"]

        async def sent() -> Message | None:
            async with runtime.db.read_session() as session:
                row = await session.get(Message, reply_id)
            return row if row is not None and row.status == "sent" else None

        await eventually(sent)
    assert f"return:{settled.id}" not in by_thread
    for r in returns:
        attributes = by_thread[f"return:{r.id}"].custom_attributes
        assert attributes["ebay_request"] == "return" and attributes["ebay_request_id"] == r.id
        assert attributes["order_id"] == r.order_id and attributes["product_id"] == r.item_id
    for r in [*inquiries, late]:
        attributes = by_thread[f"inquiry:{r.id}"].custom_attributes
        assert attributes["ebay_request"] == "item_not_received"
        assert attributes["ebay_order_line_item"] == f"{r.item_id}-{r.transaction_id}"
    async with runtime.db.read_session() as session:
        opening = await session.scalar(select(Message).where(Message.source_id == f"ebay-return-{returns[0].id}"))
        clocks = list(await session.scalars(select(SlaClock).where(SlaClock.inbox_id == inbox_id)))
    assert "Màu sai, không giống hình" in opening.content and returns[0].order_id in opening.content
    # The 3-business-day rule runs on every request, and not on the plain chat.
    ebay_clocks = {c.conversation_id: c for c in clocks if c.kind == "ebay"}
    request_ids = {c.id for key, c in by_thread.items() if key.startswith(("return:", "inquiry:"))}
    assert set(ebay_clocks) == request_ids
    assert ebay_clocks[first.id].status != "active"  # the reply answered it
    assert sum(1 for c in ebay_clocks.values() if c.status == "active") == 8
    # The reply went to the return's Post-Order send_message.
    assert ebay.request_messages == [(returns[0].id, "Xin lỗi bạn, shop đồng ý hoàn tiền.")]
    searches = [c for c in ebay.calls_to(ebay_sandbox.RETURN_SEARCH_PATH) if c.status == 200]
    assert {c.params["offset"] for c in searches} >= {"1", "2", "3"}  # 5 open returns, 2 a page
    assert "creation_date_range_from" not in searches[0].params
    assert "creation_date_range_from" in searches[-1].params  # later reads ask only for recent ones
    assert all(c.signed for c in ebay.calls)


# -- images ------------------------------------------------------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


async def attachments_of(runtime: Any, inbox_id: int) -> dict[str, list[Attachment]]:
    """Each stored message's attachments, by the message's source id."""
    async with runtime.db.read_session() as session:
        rows = list(await session.execute(select(Message.source_id, Attachment).join(
            Attachment, Attachment.message_id == Message.id).where(Message.inbox_id == inbox_id)))
    found: dict[str, list[Attachment]] = {}
    for source_id, attachment in rows:
        found.setdefault(source_id, []).append(attachment)
    return found


async def reply_with_image(client: httpx.AsyncClient, tenant: Any, runtime: Any, inbox_id: int,
                           text: str | None) -> int:
    async with runtime.db.read_session() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.inbox_id == inbox_id))
    data = {"message_type": "outgoing", **({"content": text} if text else {})}
    response = await client.post(tenant.path(f"/conversations/{conversation.display_id}/messages"),
                                 headers=tenant.headers, data=data,
                                 files=[("attachments[]", ("ảnh-size.png", PNG, "image/png"))])
    assert response.status_code == 200, response.text
    return response.json()["id"]


def settled(runtime: Any, message_id: int) -> Callable[[], Awaitable[Message | None]]:
    async def check() -> Message | None:
        async with runtime.db.read_session() as session:
            row = await session.get(Message, message_id)
        return row if row is not None and row.status in ("sent", "failed") else None
    return check


async def test_shopee_images_arrive_as_files_and_replies_go_out_as_images(client, tenants, runtime, shopee):
    photo = shopee.buyer_sends_image(919_000_001, PNG, name="somchai")
    gone = shopee.buyer_sends_image(919_000_001, b"\x89PNG-gone")
    shopee.images.pop(gone.text.rsplit("/", 1)[1])  # Shopee no longer serves it
    tenant = await tenants.new()
    inbox_id, url = await _shopee_inbox(client, tenant, shopee)
    pushed = shopee.buyer_sends_image(919_000_002, PNG, name="lan.nguyen")
    assert (await shopee.deliver_push(client, url, pushed)).status_code == 200
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 3))
        reply_id = await reply_with_image(client, tenant, runtime, inbox_id, "Mẫu này còn size M ạ")
        row = await eventually(settled(runtime, reply_id))
        await asyncio.sleep(1.5)  # passes that list the image and the text again
    files = await attachments_of(runtime, inbox_id)
    (stored,) = files[str(photo.id)]
    assert stored.storage_path and stored.file_size == len(PNG) and stored.content_type == "image/png"
    assert runtime.store.path(stored.storage_path).read_bytes() == PNG
    assert stored.external_url == photo.text  # the platform URL is kept too
    (kept,) = files[str(gone.id)]
    assert kept.storage_path is None and kept.external_url == gone.text  # not downloadable: the URL only
    (by_push,) = files[str(pushed.id)]
    assert runtime.store.path(by_push.storage_path).read_bytes() == PNG
    # The reply: the image uploaded then sent as an image message, then the text.
    assert row.status == "sent", row.external_error
    assert [m.kind for m in shopee.sent] == ["image", "text"]
    hosted = shopee.sent[0].text.rsplit("/", 1)[1]
    assert shopee.images[hosted][0] == PNG
    assert row.source_id == str(shopee.sent[1].id)
    assert len([c for c in shopee.calls_to(shopee_sandbox.UPLOAD_IMAGE_PATH) if c.status == 200]) == 1
    assert await count_messages(runtime, inbox_id) == 4  # the image sent first is not stored again


@pytest.mark.parametrize("make", [lazada_sandbox.LazadaSandbox, tiktok_sandbox.TikTokShopSandbox,
                                  ebay_sandbox.EbaySandbox], ids=["lazada", "tiktok_shop", "ebay"])
async def test_image_replies_are_refused_where_the_platform_cannot_take_them(client, tenants, runtime, make):
    with make() as sandbox:
        sandbox.buyer_writes(920_000_001, "Gửi ảnh giúp mình nhé")
        tenant = await tenants.new()
        inbox_id = await connect(client, tenant, sandbox)
        async with running(runtime, inbox_id):
            await eventually(has_messages(runtime, inbox_id, 1))
            reply_id = await reply_with_image(client, tenant, runtime, inbox_id, "ảnh đây")
            row = await eventually(settled(runtime, reply_id))
        assert row.status == "failed"
        assert "image" in (row.external_error or "")
        assert sandbox.sent == []  # not even the text went out alone


async def test_buyers_images_are_stored_as_files_on_every_marketplace(client, tenants, runtime, sandbox, platform):
    photo = sandbox.buyer_sends_image(921_000_001, PNG, name="hana")
    tenant = await tenants.new()
    inbox_id = await connect(client, tenant, sandbox)
    async with running(runtime, inbox_id):
        await eventually(has_messages(runtime, inbox_id, 1))
    (stored,) = (await attachments_of(runtime, inbox_id))[str(photo.id)]
    assert stored.file_type == "image" and stored.external_url == photo.text
    assert runtime.store.path(stored.storage_path).read_bytes() == PNG


@pytest.mark.parametrize(("content", "expected"), [
    ('{"txt": "hello", "orderId": 42}', {"txt": "hello", "orderId": 42}),
    (None, {}),
    ("", {}),
    ("not json", {"txt": "not json"}),
    ("[1, 2]", {"txt": "[1, 2]"}),
    ('"a string"', {"txt": "a string"}),
    ("null", {}),  # no content: the message gets its placeholder, not the text "None"
])
def test_json_content_reads_a_content_string_as_an_object(content, expected):
    assert json_content(content, "txt") == expected


@pytest.mark.parametrize(("fields", "expected"), [
    ({"order_id": "O1", "product_id": 7, "url": "https://x/y"}, "[Shopee order O1]"),
    ({"order_id": 0, "product_id": 7, "url": "https://x/y"}, "[Shopee product 7]"),
    ({"product_id": "", "url": "https://x/y"}, "[Shopee sticker: https://x/y]"),
    ({}, "[Shopee sticker message: not shown in Postroom]"),
    ({"url": None, "fallback": "[Shopee: other]"}, "[Shopee: other]"),
])
def test_placeholder_text_names_what_a_message_without_text_carries(fields, expected):
    assert placeholder_text("Shopee", "sticker", **fields) == expected
