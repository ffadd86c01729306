"""The live-chat widget's public API: visitors, idempotent messages, what a visitor may
see, limits, and the visitor's websocket. (The browser side is tests/browser/.)"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.api.widget import WidgetGuard, WidgetSettings
from app.models import Inbox, Message


async def widget_inbox(tenant) -> tuple[int, str]:
    inbox_id = await tenant.inbox("web_widget", name="Website chat", website_url="https://shop.example")
    async with tenant.runtime.db.read_session() as session:
        identifier = await session.scalar(select(Inbox.identifier).where(Inbox.id == inbox_id))
    return inbox_id, identifier


async def new_visitor(http, website_token: str, **extra) -> dict:
    response = await http.post("/widget/api/visitors", json={"website_token": website_token, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def visitor_headers(visitor: dict, **extra: str) -> dict[str, str]:
    return {"X-Widget-Token": visitor["token"], **extra}


async def test_static_entry_points_are_served(client):
    sdk = await client.get("/widget/sdk.js")
    assert sdk.status_code == 200 and "javascript" in sdk.headers["content-type"]
    assert "data-website-token" in sdk.text
    frame = await client.get("/widget/frame?website_token=x")
    assert frame.status_code == 200 and "frame-ancestors *" in frame.headers["content-security-policy"]
    home = await client.get("/")
    assert home.status_code == 200 and '<script type="module" src="/web/js/main.js">' in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert (await client.get("/web/js/inbox.js")).status_code == 200
    assert (await client.get("/web/widget/frame.js")).status_code == 200


async def test_a_visitor_writes_once_per_key_and_reads_back(client, tenants):
    tenant = await tenants.new()
    inbox_id, website_token = await widget_inbox(tenant)
    config = (await client.get(f"/widget/api/config?website_token={website_token}")).json()
    assert config["name"] == "Website chat" and config["website_token"] == website_token
    visitor = await new_visitor(client, website_token, name="Lan", page_url="https://shop.example/cart", locale="vi-VN")
    assert visitor["contact"]["name"] == "Lan" and visitor["token"] and visitor["source_id"]

    headers = visitor_headers(visitor, **{"Idempotency-Key": "k-1"})
    first = await client.post("/widget/api/messages", headers=headers, json={"content": "Xin chào", "echo_id": "e-1"})
    again = await client.post("/widget/api/messages", headers=headers, json={"content": "Xin chào", "echo_id": "e-1"})
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["id"] == again.json()["id"] and again.json()["duplicate"] is True
    assert first.json()["echo_id"] == "e-1" and first.json()["message_type"] == "incoming"
    async with tenant.runtime.db.read_session() as session:
        stored = await session.scalar(select(func.count()).select_from(Message).where(Message.inbox_id == inbox_id))
    assert stored == 1

    # The agents see it as an open conversation of the widget inbox, with the visitor's page.
    conversations = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
    (conversation,) = conversations
    assert conversation["inbox_id"] == inbox_id and conversation["meta"]["channel"] == "Channel::WebWidget"
    assert conversation["meta"]["sender"]["additional_attributes"]["initiated_at"]["url"] == "https://shop.example/cart"
    number = conversation["id"]
    await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                      json={"content": "internal: check stock", "private": True})
    await client.post(tenant.path(f"/conversations/{number}/messages"), headers=tenant.headers,
                      json={"content": "Chào Lan, shop đây!"})

    listed = (await client.get("/widget/api/messages", headers=visitor_headers(visitor))).json()
    assert [m["content"] for m in listed["messages"]] == ["Xin chào", "Chào Lan, shop đây!"]
    assert listed["messages"][1]["sender"] == {"type": "agent", "name": "Admin"}
    assert listed["conversation"] == {"id": number, "status": "open"}
    after = (await client.get(f"/widget/api/messages?after={listed['messages'][0]['id']}",
                              headers=visitor_headers(visitor))).json()
    assert [m["content"] for m in after["messages"]] == ["Chào Lan, shop đây!"]
    restored = (await client.get("/widget/api/visitor", headers=visitor_headers(visitor))).json()
    assert restored["contact"]["id"] == visitor["contact"]["id"] and restored["conversation"]["id"] == number


async def test_visitors_never_see_each_other(client, tenants):
    tenant = await tenants.new()
    _, website_token = await widget_inbox(tenant)
    alice, bob = await new_visitor(client, website_token), await new_visitor(client, website_token)
    await client.post("/widget/api/messages", headers=visitor_headers(alice, **{"Idempotency-Key": "same"}),
                      json={"content": "alice's secret"})
    # Bob reusing Alice's idempotency key gets his own message, not hers.
    bobs = await client.post("/widget/api/messages", headers=visitor_headers(bob, **{"Idempotency-Key": "same"}),
                             json={"content": "bob here"})
    assert bobs.json()["content"] == "bob here"
    listed = (await client.get("/widget/api/messages", headers=visitor_headers(bob))).json()["messages"]
    assert [m["content"] for m in listed] == ["bob here"]
    for headers in ({}, {"X-Widget-Token": "forged"}):
        assert (await client.get("/widget/api/messages", headers=headers)).status_code == 401
        assert (await client.post("/widget/api/messages", headers=headers, json={"content": "x"})).status_code == 401
    # An API-channel inbox's identifier is not a website token.
    api_inbox = await tenant.inbox("api")
    async with tenant.runtime.db.read_session() as session:
        api_identifier = await session.scalar(select(Inbox.identifier).where(Inbox.id == api_inbox))
    assert (await client.post("/widget/api/visitors", json={"website_token": api_identifier})).status_code == 404


async def test_sizes_and_rates_are_limited(client, app, tenants):
    tenant = await tenants.new()
    _, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token)
    too_long = await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "x" * 5001})
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "content"
    too_big = await client.post("/widget/api/messages", headers=visitor_headers(visitor),
                                content=json.dumps({"content": "y" * 20_000}).encode(),
                                )
    assert too_big.status_code == 413
    broken = await client.post("/widget/api/messages", headers=visitor_headers(visitor), content=b"{nope")
    assert broken.status_code == 422
    blank = await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "   "})
    assert blank.status_code == 422

    saved = getattr(app.state, "widget_guard", None)
    app.state.widget_guard = WidgetGuard(WidgetSettings(visitor_burst=2, visitor_per_minute=1))
    try:
        statuses = [(await client.post("/widget/api/visitors", json={"website_token": website_token})) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert int(statuses[-1].headers["retry-after"]) >= 1 and statuses[-1].json()["message"]
    finally:
        app.state.widget_guard = saved


def ws_url(base: str, token: str) -> str:
    return base.replace("http://", "ws://") + f"/widget/api/stream?token={token}"


async def next_frame(ws, event: str, timeout: float = 10.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] == event:
                return frame


async def test_the_visitor_socket_carries_only_its_own_replies(live_server, tenants):
    tenant = await tenants.new()
    _, website_token = await widget_inbox(tenant)
    async with httpx.AsyncClient(base_url=live_server) as http:
        alice, bob = await new_visitor(http, website_token), await new_visitor(http, website_token)
        for who in (alice, bob):
            await http.post("/widget/api/messages", headers=visitor_headers(who), json={"content": f"hi {who['source_id']}"})
        conversations = (await http.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
        number = {c["contact_inbox"]["source_id"]: c["id"] for c in conversations}
        async with connect(ws_url(live_server, alice["token"]), open_timeout=10) as a, \
                connect(ws_url(live_server, bob["token"]), open_timeout=10) as b:
            await next_frame(a, "ready")
            await next_frame(b, "ready")
            conversation = tenant.path(f"/conversations/{number[alice['source_id']]}")
            await http.post(conversation + "/messages", headers=tenant.headers, json={"content": "note", "private": True})
            await http.post(conversation + "/messages", headers=tenant.headers, json={"content": "for alice"})
            frame = await next_frame(a, "message.created")
            assert frame["data"]["content"] == "for alice" and frame["data"]["sender"]["type"] == "agent"
            await http.post(conversation + "/toggle_status", headers=tenant.headers, json={"status": "resolved"})
            assert (await next_frame(a, "conversation.status"))["data"]["status"] == "resolved"
            with pytest.raises(TimeoutError):  # Bob hears nothing of Alice's conversation
                await next_frame(b, "message.created", timeout=1.5)
        with pytest.raises(ConnectionClosed) as closed:
            async with connect(ws_url(live_server, "forged"), open_timeout=10) as ws:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 4401
