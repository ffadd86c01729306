"""REST API behaviour beyond the SDK: auth, roles, errors, paging, clocks, secrets, events."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from app.logs import JsonFormatter
from app.models import AccessToken, Event, Inbox, User
from app.tickets.ingest import ingest_messages
from connectors.base import InboundMessage, SenderIdentity


async def seed(runtime, inbox_id: int, n: int, prefix: str = "m") -> list:
    return await ingest_messages(runtime.db, [
        InboundMessage(inbox_id=inbox_id, source_id=f"{prefix}-{i}",
                       sender=SenderIdentity(source_id=f"{prefix}-sender-{i}", name=f"Customer {i}"),
                       text=f"message {i}")
        for i in range(n)
    ])


async def test_missing_or_wrong_token_is_401_json(client, tenants):
    tenant = await tenants.new()
    for headers in ({}, {"api_access_token": "nope"}, {"authorization": "Bearer nope"}):
        response = await client.get(tenant.path("/conversations"), headers=headers)
        assert response.status_code == 401 and response.json()["message"]


async def test_validation_errors_name_the_fields(client, tenants):
    tenant = await tenants.new()
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers, json={"channel": {"type": "api"}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "name"
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers,
                                 json={"name": "x", "channel": {"type": "carrier-pigeon"}})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "channel.type"
    broken = await client.post(tenant.path("/labels"), headers={**tenant.headers, "content-type": "application/json"},
                               content=b"{not json")
    assert broken.status_code == 422 and broken.json()["message"]


async def test_agents_see_only_their_inboxes(client, tenants, runtime):
    tenant = await tenants.new()
    mine, other = await tenant.inbox("api", name="mine"), await tenant.inbox("api", name="other")
    _, token = await tenant.agent(inbox_ids=[mine])
    (in_mine,) = await seed(runtime, mine, 1, "mine")
    (in_other,) = await seed(runtime, other, 1, "other")
    headers = {"api_access_token": token}
    listed = (await client.get(tenant.path("/conversations"), headers=headers)).json()["data"]
    assert [c["inbox_id"] for c in listed["payload"]] == [mine]
    assert listed["meta"]["all_count"] == 1
    admin_list = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]
    assert admin_list["meta"]["all_count"] == 2
    other_display = next(c["id"] for c in admin_list["payload"] if c["inbox_id"] == other)
    assert (await client.get(tenant.path(f"/conversations/{other_display}"), headers=headers)).status_code == 404
    inboxes = (await client.get(tenant.path("/inboxes"), headers=headers)).json()["payload"]
    assert [i["id"] for i in inboxes] == [mine]
    forbidden = await client.post(tenant.path("/inboxes"), headers=headers, json={"name": "x", "channel": {"type": "api"}})
    assert forbidden.status_code == 403


async def test_keyset_cursor_walks_every_conversation_once_in_order(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed(runtime, inbox_id, 60, "walk")
    by_page = []
    for page in (1, 2, 3):
        response = await client.get(tenant.path(f"/conversations?page={page}"), headers=tenant.headers)
        by_page += [c["id"] for c in response.json()["data"]["payload"]]
    by_cursor, cursor = [], ""
    while cursor is not None:
        query = f"/conversations?after={cursor}" if cursor else "/conversations"
        data = (await client.get(tenant.path(query), headers=tenant.headers)).json()["data"]
        by_cursor += [c["id"] for c in data["payload"]]
        cursor = data["meta"]["next_cursor"]
    assert len(by_cursor) == 60 and len(set(by_cursor)) == 60
    assert by_cursor == by_page
    bad = await client.get(tenant.path("/conversations?after=garbage"), headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "after"


async def test_filters_and_counts(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed(runtime, inbox_id, 3, "f")
    listed = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"]
    first, second = listed[0]["id"], listed[1]["id"]
    await client.post(tenant.path(f"/conversations/{first}/labels"), headers=tenant.headers, json={"labels": ["vip", "billing"]})
    await client.post(tenant.path(f"/conversations/{second}/assignments"), headers=tenant.headers,
                      json={"assignee_id": (await client.get("/api/v1/profile", headers=tenant.headers)).json()["id"]})
    await client.post(tenant.path(f"/conversations/{first}/toggle_status"), headers=tenant.headers, json={"status": "resolved"})

    def ids(response):
        return [c["id"] for c in response.json()["data"]["payload"]]

    assert ids(await client.get(tenant.path("/conversations?status=resolved"), headers=tenant.headers)) == [first]
    assert ids(await client.get(tenant.path("/conversations?status=all&labels[]=vip"), headers=tenant.headers)) == [first]
    assert ids(await client.get(tenant.path("/conversations?assignee_type=me"), headers=tenant.headers)) == [second]
    meta = (await client.get(tenant.path("/conversations/meta"), headers=tenant.headers)).json()["meta"]
    assert meta == {"mine_count": 1, "unassigned_count": 1, "assigned_count": 1, "all_count": 2}


async def test_reply_clears_waiting_and_sets_first_reply_but_a_note_does_not(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed(runtime, inbox_id, 1, "clock")
    conv = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"][0]
    assert conv["waiting_since"] is not None and conv["first_reply_created_at"] is None
    note = await client.post(tenant.path(f"/conversations/{conv['id']}/messages"), headers=tenant.headers,
                             json={"content": "internal: check stock", "private": True})
    assert note.status_code == 200 and note.json()["private"] is True
    after_note = (await client.get(tenant.path(f"/conversations/{conv['id']}"), headers=tenant.headers)).json()
    assert after_note["waiting_since"] == conv["waiting_since"] and after_note["first_reply_created_at"] is None
    reply = await client.post(tenant.path(f"/conversations/{conv['id']}/messages"), headers=tenant.headers,
                              json={"content": "ขอบคุณครับ"})
    assert reply.json()["message_type"] == 1 and reply.json()["content"] == "ขอบคุณครับ"
    after_reply = (await client.get(tenant.path(f"/conversations/{conv['id']}"), headers=tenant.headers)).json()
    assert after_reply["waiting_since"] is None and after_reply["first_reply_created_at"] is not None


async def test_message_source_id_makes_retries_safe(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed(runtime, inbox_id, 1, "idem")
    conv = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"][0]
    url = tenant.path(f"/conversations/{conv['id']}/messages")
    one = await client.post(url, headers=tenant.headers, json={"content": "once", "source_id": "bot-42"})
    two = await client.post(url, headers=tenant.headers, json={"content": "once", "source_id": "bot-42"})
    assert one.json()["id"] == two.json()["id"]
    messages = (await client.get(url, headers=tenant.headers)).json()["payload"]
    assert [m["content"] for m in messages].count("once") == 1


async def test_rest_changes_append_events_with_the_rest_shape(client, tenants, runtime):
    tenant = await tenants.new()
    inbox_id = await tenant.inbox("api")
    await seed(runtime, inbox_id, 1, "ev")
    conv = (await client.get(tenant.path("/conversations"), headers=tenant.headers)).json()["data"]["payload"][0]
    await client.post(tenant.path(f"/conversations/{conv['id']}/toggle_status"), headers=tenant.headers, json={"status": "resolved"})
    shown = (await client.get(tenant.path(f"/conversations/{conv['id']}"), headers=tenant.headers)).json()
    async with runtime.db.read_session() as session:
        event = await session.scalar(select(Event).where(
            Event.account_id == tenant.account_id, Event.event_type == "conversation.status_changed"))
    payload = dict(event.payload)
    assert payload.pop("changed_attributes") == {"status": {"previous_value": "open", "current_value": "resolved"}}
    assert payload["status"] == "resolved" and payload["id"] == shown["id"]
    assert set(payload) == set(shown)


async def test_tokens_and_passwords_and_credentials_are_never_stored_in_clear(client, tenants, runtime):
    tenant = await tenants.new()
    response = await client.post(tenant.path("/inboxes"), headers=tenant.headers, json={
        "name": "Mail", "channel": {"type": "email", "email": "help@example.com", "imap_login": "help",
                                    "imap_password": "imap-secret-123", "smtp_password": "smtp-secret-456"}})
    assert response.status_code == 200
    body = response.text
    assert "imap-secret-123" not in body and "smtp-secret-456" not in body
    assert response.json()["imap_login"] == "help"
    async with runtime.db.read_session() as session:
        inbox = await session.get(Inbox, response.json()["id"])
        tokens = list(await session.scalars(select(AccessToken.token_digest).where(AccessToken.user_id == tenant.admin_id)))
        user = await session.get(User, tenant.admin_id)
    assert "imap-secret-123" not in json.dumps(inbox.settings) + (inbox.credentials_encrypted or "")
    assert runtime.box.open(inbox.credentials_encrypted) == {"imap_password": "imap-secret-123", "smtp_password": "smtp-secret-456"}
    assert tenant.token not in tokens and len(tokens[0]) == 64
    assert user.password_hash.startswith("$argon2id$")


async def test_sign_in_with_password_gives_a_working_token(client, tenants):
    tenant = await tenants.new()
    bad = await client.post("/auth/sign_in", json={"email": tenant.admin_email, "password": "wrong"})
    assert bad.status_code == 401
    good = await client.post("/auth/sign_in", json={"email": tenant.admin_email, "password": "admin-password"})
    token = good.json()["data"]["access_token"]
    profile = await client.get("/api/v1/profile", headers={"api_access_token": token})
    assert profile.json()["email"] == tenant.admin_email
    assert profile.json()["accounts"][0]["id"] == tenant.account_id
    await client.delete("/auth/sign_out", headers={"api_access_token": token})
    assert (await client.get("/api/v1/profile", headers={"api_access_token": token})).status_code == 401


async def test_request_log_is_json_with_context_and_no_secrets(client, tenants, caplog):
    tenant = await tenants.new()
    with caplog.at_level(logging.INFO, logger="postroom.request"):
        await client.get(tenant.path("/conversations?status=open"), headers=tenant.headers)
    records = [r for r in caplog.records if r.name == "postroom.request"]
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["account_id"] == tenant.account_id and line["status"] == 200
    assert line["route"] == "/api/v1/accounts/{account_id}/conversations"
    assert line["request_id"] and line["duration_ms"] >= 0
    assert tenant.token not in json.dumps(line)


async def test_health_readiness_and_openapi(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    spec = (await client.get("/openapi.json")).json()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert len(operations) >= 45
    assert all(op.get("summary") for op in operations)
    body_schemas = spec["components"]["schemas"]
    assert "examples" in json.dumps(body_schemas["MessageCreate"])
