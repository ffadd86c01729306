"""Search across messages and contacts in Thai, Chinese, Vietnamese and Persian (#9)."""

from __future__ import annotations

import unicodedata
import uuid

from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity

#: (customer name, message) in scripts without word spaces, with combining marks, right to left.
CUSTOMERS = [
    ("สมชาย ใจดี", "สินค้ายังไม่ได้รับเลยค่ะ ช่วยตรวจสอบเลขพัสดุให้หน่อย"),
    ("王小明", "我想申请退款，订单号是 SG-2231"),
    ("Nguyễn Thị Hương", "Tôi muốn đổi kích cỡ áo, đơn hàng giao chậm quá"),
    ("مریم احمدی", "سفارش من هنوز نرسیده است، لطفا پیگیری کنید"),
    ("Jane Smith", "Where is my parcel? Order 4471"),
]


async def _seed(runtime, inbox_id: int, rows=CUSTOMERS, *, nfd: bool = False) -> None:
    tag = uuid.uuid4().hex[:8]
    messages = []
    for i, (name, text) in enumerate(rows):
        if nfd:
            text = unicodedata.normalize("NFD", text)
        messages.append(InboundMessage(
            inbox_id=inbox_id, source_id=f"{tag}-{i}",
            sender=SenderIdentity(source_id=f"{tag}-s{i}", name=name, email=f"c{i}-{tag}@example.com"),
            text=text,
        ))
    await ingest_messages(runtime.db, messages)


async def _conversations(client, tenant, q: str, headers=None) -> list[dict]:
    response = await client.get(tenant.path("/conversations/search"), params={"q": q},
                                headers=headers or tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert body["meta"]["all_count"] == len(body["payload"]) or len(body["payload"]) == 25
    return body["payload"]


def _names(payload: list[dict]) -> set[str]:
    return {row["meta"]["sender"]["name"] for row in payload}


async def test_conversation_search_finds_substrings_in_every_script(client, tenants, runtime):
    tenant = await tenants.new()
    await _seed(runtime, await tenant.inbox("api"))
    cases = {
        "เลขพัสดุ": "สมชาย ใจดี",        # Thai, mid-sentence, no spaces around it
        "申请退款": "王小明",              # Chinese, inside a run of characters
        "退款": "王小明",                  # two characters: below the trigram size, still found
        "đổi kích cỡ": "Nguyễn Thị Hương",
        "ĐỔI KÍCH": "Nguyễn Thị Hương",   # case folded, diacritics kept
        "پیگیری": "مریم احمدی",           # Persian
        "PARCEL": "Jane Smith",
    }
    for q, name in cases.items():
        assert _names(await _conversations(client, tenant, q)) == {name}, q
    assert await _conversations(client, tenant, "ไม่มีคำนี้") == []
    # Diacritics matter in Vietnamese: "doi" is not "đổi".
    assert await _conversations(client, tenant, "doi kich") == []


async def test_search_by_contact_name_email_and_number(client, tenants, runtime):
    tenant = await tenants.new()
    await _seed(runtime, await tenant.inbox("api"))
    assert _names(await _conversations(client, tenant, "ใจดี")) == {"สมชาย ใจดี"}
    assert _names(await _conversations(client, tenant, "احمدی")) == {"مریم احمدی"}
    everyone = await _conversations(client, tenant, "example.com")
    assert len(everyone) == len(CUSTOMERS)
    number = everyone[0]["id"]
    assert [row["id"] for row in await _conversations(client, tenant, f"#{number}")] == [number]


async def test_vietnamese_decomposed_diacritics_match_either_way(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await _seed(runtime, inbox_id, [("Trần Văn Bình", "Giao hàng nhanh giúp tôi nhé")])
    await _seed(runtime, inbox_id, [("Lê Thu", "Cảm ơn shop rất nhiều")], nfd=True)
    # Typed decomposed (as some keyboards send it), stored composed …
    decomposed = unicodedata.normalize("NFD", "giúp tôi")
    assert decomposed != "giúp tôi"
    assert _names(await _conversations(client, tenant, decomposed)) == {"Trần Văn Bình"}
    # … and typed composed, stored decomposed.
    assert _names(await _conversations(client, tenant, "Cảm ơn")) == {"Lê Thu"}


async def test_search_index_follows_edits_and_deletes(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await _seed(runtime, inbox_id, [("Somsak", "ขอบคุณมากครับ")])
    (row,) = await _conversations(client, tenant, "ขอบคุณ")
    contact_id = row["meta"]["sender"]["id"]
    renamed = await client.patch(tenant.path(f"/contacts/{contact_id}"), headers=tenant.headers,
                                 json={"name": "陈大文"})
    assert renamed.status_code == 200
    found = await client.get(tenant.path("/contacts/search"), params={"q": "陈大文"}, headers=tenant.headers)
    assert [c["id"] for c in found.json()["payload"]] == [contact_id]
    gone = await client.get(tenant.path("/contacts/search"), params={"q": "Somsak"}, headers=tenant.headers)
    assert gone.json()["payload"] == []
    # An agent's reply is searchable at once; once deleted, it is not.
    reply = await client.post(tenant.path(f"/conversations/{row['id']}/messages"), headers=tenant.headers,
                              json={"content": "ส่งของให้แล้วพรุ่งนี้ถึงครับ"})
    assert reply.status_code == 200
    assert [r["id"] for r in await _conversations(client, tenant, "พรุ่งนี้ถึง")] == [row["id"]]
    deleted = await client.delete(tenant.path(f"/conversations/{row['id']}/messages/{reply.json()['id']}"),
                                  headers=tenant.headers)
    assert deleted.status_code == 200
    after = await _conversations(client, tenant, "พรุ่งนี้ถึง")
    # Chatwoot keeps a deleted message as "This message was deleted": the old text is gone.
    assert after == []


async def test_contact_search_shape_and_scripts(client, tenants, runtime):
    tenant = await tenants.new()
    await _seed(runtime, await tenant.inbox("api"))
    for q, name in (("สมชาย", "สมชาย ใจดี"), ("小明", "王小明"), ("Hương", "Nguyễn Thị Hương"), ("مریم", "مریم احمدی")):
        response = await client.get(tenant.path("/contacts/search"), params={"q": q}, headers=tenant.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["meta"]["count"] == 1 and [c["name"] for c in body["payload"]] == [name], q
    empty = await client.get(tenant.path("/contacts/search"), params={"q": "  "}, headers=tenant.headers)
    assert empty.json() == {"meta": {"count": 0, "current_page": 1}, "payload": []}


async def test_search_is_scoped_to_account_and_agent_inboxes(client, tenants, runtime):
    tenant, other = await tenants.new(), await tenants.new()
    mine, theirs = await tenant.inbox("api", name="Thai shop"), await tenant.inbox("api", name="China shop")
    await _seed(runtime, mine, [CUSTOMERS[0]])
    await _seed(runtime, theirs, [CUSTOMERS[1]])
    await _seed(runtime, await other.inbox("api"), [("สมชาย อื่น", "เลขพัสดุ ของอีกร้าน")])
    assert _names(await _conversations(client, tenant, "เลขพัสดุ")) == {"สมชาย ใจดี"}
    _, agent_token = await tenant.agent(inbox_ids=[mine])
    agent = {"api_access_token": agent_token}
    assert await _conversations(client, tenant, "退款", headers=agent) == []
    assert _names(await _conversations(client, tenant, "เลขพัสดุ", headers=agent)) == {"สมชาย ใจดี"}
    response = await client.get(tenant.path("/contacts/search"), params={"q": "王小明"}, headers=agent)
    assert response.json()["payload"] == []
    response = await client.get(tenant.path("/contacts/search"), params={"q": "สมชาย"}, headers=agent)
    assert [c["name"] for c in response.json()["payload"]] == ["สมชาย ใจดี"]
    # Another account's token cannot search this account at all.
    response = await client.get(tenant.path("/conversations/search"), params={"q": "สมชาย"}, headers=other.headers)
    assert response.status_code == 404


async def test_short_empty_long_and_special_queries(client, tenants, runtime):
    tenant = await tenants.new()
    await _seed(runtime, await tenant.inbox("api"), [("A", "100% sure_thing"), ("B", "1000 sure things")])
    assert await _conversations(client, tenant, "") == []
    assert _names(await _conversations(client, tenant, "%")) == {"A"}          # LIKE wildcards are literal
    assert _names(await _conversations(client, tenant, "e_t")) == {"A"}
    assert _names(await _conversations(client, tenant, '"sure')) == set()      # FTS syntax is literal too
    assert _names(await _conversations(client, tenant, "sure")) == {"A", "B"}
    too_long = await client.get(tenant.path("/conversations/search"), params={"q": "x" * 201}, headers=tenant.headers)
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "q"
