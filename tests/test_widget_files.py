"""Files in the live-chat widget: a visitor's uploads, agents' files shown to the visitor,
and no visitor ever fetching a file that is not theirs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.api.widget import WidgetGuard, WidgetSettings
from app.models import Attachment, Message
from tests.test_attachments_upload import PNG
from tests.test_widget import new_visitor, visitor_headers, widget_inbox


@pytest.fixture(autouse=True)
def fresh_limits(app):
    """Its own rate limits for each test: the in-process app's buckets are shared by all
    tests, which all come from one client address."""
    saved = getattr(app.state, "widget_guard", None)
    app.state.widget_guard = WidgetGuard()
    yield
    app.state.widget_guard = saved


async def _attachment_count(runtime, inbox_id: int) -> int:
    async with runtime.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(Attachment)
                                    .join(Message, Message.id == Attachment.message_id)
                                    .where(Message.inbox_id == inbox_id))


async def test_a_visitor_sends_files_once_per_key_and_agents_get_them(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token)
    headers = visitor_headers(visitor, **{"Idempotency-Key": "upload-1"})
    files = [("attachments[]", ("ใบเสร็จ.png", PNG, "image/png")),
             ("attachments[]", ("page.html", b"<script>alert(1)</script>", "text/html"))]
    first = await client.post("/widget/api/messages", headers=headers, data={"content": "รูปใบเสร็จค่ะ", "echo_id": "e-9"},
                              files=files)
    again = await client.post("/widget/api/messages", headers=headers, data={"content": "รูปใบเสร็จค่ะ", "echo_id": "e-9"},
                              files=files)
    assert first.status_code == again.status_code == 200, first.text
    assert again.json()["duplicate"] is True and again.json()["id"] == first.json()["id"]
    image, page = first.json()["attachments"]
    assert (image["file_type"], image["file_name"], image["file_size"]) == ("image", "ใบเสร็จ.png", len(PNG))
    # A type the browser would run is kept as plain bytes.
    assert page["content_type"] == "application/octet-stream"
    assert await _attachment_count(runtime, inbox_id) == 2

    fetched = await client.get(image["url"], headers=visitor_headers(visitor))
    assert fetched.status_code == 200 and fetched.content == PNG
    assert fetched.headers["content-type"] == "image/png" and fetched.headers["x-content-type-options"] == "nosniff"
    html = await client.get(page["url"], headers=visitor_headers(visitor))
    assert html.headers["content-type"] == "application/octet-stream" and "attachment" in html.headers["content-disposition"]

    # The agents see the files on the visitor's message, and download them with their token.
    (conversation,) = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
    messages = (await client.get(tenant.path(f"/conversations/{conversation['id']}/messages"),
                                 headers=tenant.headers)).json()["payload"]
    assert [a["file_name"] for a in messages[-1]["attachments"]] == ["ใบเสร็จ.png", "page.html"]
    own = await client.get(messages[-1]["attachments"][0]["data_url"], headers=tenant.headers)
    assert own.content == PNG

    # Files alone are a message; nothing at all is not.
    alone = await client.post("/widget/api/messages", headers=visitor_headers(visitor),
                              files=[("attachments[]", ("a.txt", "tệp".encode(), "text/plain"))])
    assert alone.status_code == 200 and alone.json()["content"] is None
    empty = await client.post("/widget/api/messages", headers=visitor_headers(visitor), data={"content": " "},
                              files=[])
    assert empty.status_code == 422


async def test_a_visitor_sees_agents_files_but_never_another_visitors(client, tenants, runtime):
    tenant = await tenants.new()
    _, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token)
    stranger = await new_visitor(client, website_token)
    mine = (await client.post("/widget/api/messages", headers=visitor_headers(visitor), data={"content": "hi"},
                              files=[("attachments[]", ("mine.png", PNG, "image/png"))])).json()
    await client.post("/widget/api/messages", headers=visitor_headers(stranger), json={"content": "hello"})
    listed = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
    number = next(c["id"] for c in listed if c["meta"]["sender"]["id"] == visitor["contact"]["id"])
    path = tenant.path(f"/conversations/{number}/messages")
    reply = (await client.post(path, headers=tenant.headers, data={"content": "Đây là hướng dẫn"},
                               files=[("attachments[]", ("guide.pdf", b"%PDF-1.4 guide", "application/pdf")),
                                      ("attachments[]", ("map.png", PNG, "image/png"))])).json()
    note = (await client.post(path, headers=tenant.headers, data={"content": "internal", "private": "true"},
                              files=[("attachments[]", ("secret.txt", b"internal only", "text/plain"))])).json()

    shown = (await client.get("/widget/api/messages", headers=visitor_headers(visitor))).json()["messages"]
    assert [m["content"] for m in shown] == ["hi", "Đây là hướng dẫn"]  # never the note
    guide, picture = shown[-1]["attachments"]
    assert (guide["file_name"], guide["file_type"], picture["file_type"]) == ("guide.pdf", "file", "image")
    assert (await client.get(guide["url"], headers=visitor_headers(visitor))).content == b"%PDF-1.4 guide"

    secret_id = note["attachments"][0]["id"]
    assert (await client.get(f"/widget/api/attachments/{secret_id}", headers=visitor_headers(visitor))).status_code == 404
    # Another visitor of the same inbox, of another account, or nobody: nothing.
    for attachment in (mine["attachments"][0], guide):
        assert (await client.get(attachment["url"], headers=visitor_headers(stranger))).status_code == 404
        assert (await client.get(attachment["url"])).status_code == 401
    other_tenant = await tenants.new()
    _, other_token = await widget_inbox(other_tenant)
    outsider = await new_visitor(client, other_token)
    assert (await client.get(guide["url"], headers=visitor_headers(outsider))).status_code == 404
    assert reply["attachments"][0]["id"] == guide["id"]


async def test_visitor_uploads_are_size_and_rate_limited(client, app, tenants, runtime):
    tenant = await tenants.new()
    inbox_id, website_token = await widget_inbox(tenant)
    visitor = await new_visitor(client, website_token)
    limit = runtime.settings.max_upload_bytes
    too_big = await client.post("/widget/api/messages", headers=visitor_headers(visitor), data={"content": "big"},
                                files=[("attachments[]", ("big.bin", b"\0" * (limit + 1), "application/octet-stream"))])
    assert too_big.status_code == 413 and str(limit) in too_big.json()["message"]
    assert await _attachment_count(runtime, inbox_id) == 0

    saved = getattr(app.state, "widget_guard", None)
    app.state.widget_guard = WidgetGuard(WidgetSettings(upload_burst=2, upload_per_minute=1))
    try:
        statuses = [(await client.post("/widget/api/messages", headers=visitor_headers(visitor),
                                       files=[("attachments[]", (f"{i}.png", PNG, "image/png"))])).status_code
                    for i in range(3)]
        assert statuses == [200, 200, 429]
        # Text messages have their own bucket and still go through.
        text = await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "ok"})
        assert text.status_code == 200
    finally:
        app.state.widget_guard = saved
