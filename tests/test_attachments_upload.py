"""Agents' replies with files: multipart ``attachments[]`` on the messages endpoint (#9)."""

from __future__ import annotations

import uuid

from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


async def _conversation(runtime, tenant) -> int:
    inbox_id = await tenant.inbox("api")
    tag = uuid.uuid4().hex[:8]
    await ingest_messages(runtime.db, [InboundMessage(
        inbox_id=inbox_id, source_id=f"{tag}-1", sender=SenderIdentity(source_id=f"{tag}-s", name="Mai"),
        text="ảnh hóa đơn?")])
    return 1


async def test_reply_with_files_stores_them_and_serves_them(client, tenants, runtime):
    tenant = await tenants.new()
    conversation = await _conversation(runtime, tenant)
    response = await client.post(
        tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
        data={"content": "Hóa đơn của bạn đây", "private": "false", "echo_id": "e-1"},
        files=[("attachments[]", ("hoá-đơn.png", PNG, "image/png")),
               ("attachments[]", ("note.txt", "ใบเสร็จ".encode(), "text/plain"))],
    )
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["content"] == "Hóa đơn của bạn đây"
    assert message["content_attributes"]["echo_id"] == "e-1"
    image, text = message["attachments"]
    assert (image["file_type"], image["file_name"], image["file_size"]) == ("image", "hoá-đơn.png", len(PNG))
    assert image["thumb_url"] == image["data_url"] and text["file_type"] == "file"
    download = await client.get(image["data_url"].replace("http://test", ""), headers=tenant.headers)
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-type"] == "image/png"
    listed = await client.get(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers)
    assert [a["file_name"] for a in listed.json()["payload"][-1]["attachments"]] == ["hoá-đơn.png", "note.txt"]
    # Another account cannot download it.
    other = await tenants.new()
    stolen = await client.get(image["data_url"].replace("http://test", ""), headers=other.headers)
    assert stolen.status_code == 404


async def test_file_alone_is_a_message_and_a_note_can_carry_one(client, tenants, runtime):
    tenant = await tenants.new()
    conversation = await _conversation(runtime, tenant)
    response = await client.post(
        tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
        data={"private": "true"}, files=[("attachments[]", ("label.png", PNG, "image/png"))],
    )
    assert response.status_code == 200, response.text
    assert response.json()["private"] is True and response.json()["content"] is None
    empty = await client.post(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
                              data={"content": ""}, files=[])
    assert empty.status_code == 422


async def test_too_large_upload_is_413_and_stores_nothing(client, tenants, runtime):
    tenant = await tenants.new()
    conversation = await _conversation(runtime, tenant)
    limit = runtime.settings.max_upload_bytes
    before = await client.get(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers)
    response = await client.post(
        tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
        data={"content": "big"}, files=[("attachments[]", ("big.bin", b"\0" * (limit + 1), "application/octet-stream"))],
    )
    assert response.status_code == 413
    assert str(limit) in response.json()["message"]
    after = await client.get(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers)
    assert len(after.json()["payload"]) == len(before.json()["payload"])


async def test_json_replies_still_validate(client, tenants, runtime):
    tenant = await tenants.new()
    conversation = await _conversation(runtime, tenant)
    ok = await client.post(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
                           json={"content": "ok", "private": True})
    assert ok.status_code == 200 and ok.json()["private"] is True and ok.json()["attachments"] == []
    bad = await client.post(tenant.path(f"/conversations/{conversation}/messages"), headers=tenant.headers,
                            json={"content": 5})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "content"
    broken = await client.post(tenant.path(f"/conversations/{conversation}/messages"),
                               headers={**tenant.headers, "content-type": "application/json"}, content=b"{")
    assert broken.status_code == 422
