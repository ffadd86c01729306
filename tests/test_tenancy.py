"""Tenancy: an id from another account answers 404 on every route, whoever asks.

The walker below visits every account-scoped route of the app. A route missing from
``BODIES``/``NO_BODY`` fails the test, so a new route cannot skip the check.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from app.models import Attachment, Conversation, QuarantinedMessage, WebhookDelivery
from app.tickets import catalog, teams
from app.sla import service as sla_service
from app.webhooks import service as webhook_service
from app.tickets.ingest import ingest_messages
from connectors.base import InboundAttachment, InboundMessage, SenderIdentity

PREFIX = "/api/v1/accounts/{account_id}"


def body_for(method: str, path: str, ids: dict[str, int]) -> dict[str, Any] | None:
    """A valid request body that names the other account's objects wherever it names ids."""
    table: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/agents"): {"name": "X", "email": "x-tenancy@example.com", "role": "agent"},
        ("PATCH", "/agents/{agent_id}"): {"name": "X"},
        ("POST", "/inboxes"): {"name": "X", "channel": {"type": "api"}},
        ("PATCH", "/inboxes/{inbox_id}"): {"name": "X"},
        ("POST", "/inbox_members"): {"inbox_id": ids["inbox_id"], "user_ids": [ids["agent_id"]]},
        ("PATCH", "/inbox_members"): {"inbox_id": ids["inbox_id"], "user_ids": [ids["agent_id"]]},
        ("DELETE", "/inbox_members"): {"inbox_id": ids["inbox_id"], "user_ids": [ids["agent_id"]]},
        ("POST", "/contacts"): {"name": "X", "inbox_id": ids["inbox_id"]},
        ("PATCH", "/contacts/{contact_id}"): {"name": "X"},
        ("PUT", "/contacts/{contact_id}"): {"name": "X"},
        ("POST", "/contacts/{contact_id}/labels"): {"labels": ["x"]},
        ("POST", "/actions/contact_merge"): {"base_contact_id": ids["contact_id"], "mergee_contact_id": ids["other_contact_id"]},
        ("POST", "/conversations"): {"inbox_id": ids["inbox_id"], "contact_id": ids["contact_id"]},
        ("PATCH", "/conversations/{conversation_id}"): {"status": "resolved"},
        ("POST", "/conversations/{conversation_id}/toggle_status"): {"status": "resolved"},
        ("POST", "/conversations/{conversation_id}/toggle_priority"): {"priority": "high"},
        ("POST", "/conversations/{conversation_id}/custom_attributes"): {"custom_attributes": {"a": 1}},
        ("POST", "/conversations/{conversation_id}/assignments"): {"assignee_id": ids["agent_id"]},
        ("POST", "/conversations/{conversation_id}/labels"): {"labels": ["x"]},
        ("POST", "/conversations/{conversation_id}/update_last_seen"): {},
        ("POST", "/conversations/{conversation_id}/messages"): {"content": "hi"},
        ("PATCH", "/conversations/{conversation_id}/messages/{message_id}"): {"content": "x"},
        ("PATCH", "/messages/{message_id}"): {"content": "x"},
        ("POST", "/teams"): {"name": "Tenancy team"},
        ("PATCH", "/teams/{team_id}"): {"name": "X"},
        ("POST", "/teams/{team_id}/team_members"): {"user_ids": [ids["agent_id"]]},
        ("PATCH", "/teams/{team_id}/team_members"): {"user_ids": [ids["agent_id"]]},
        ("DELETE", "/teams/{team_id}/team_members"): {"user_ids": [ids["agent_id"]]},
        ("POST", "/labels"): {"title": "tenancy"},
        ("PATCH", "/labels/{label_id}"): {"title": "x"},
        ("POST", "/canned_responses"): {"short_code": "tenancy", "content": "x"},
        ("PATCH", "/canned_responses/{canned_response_id}"): {"content": "x"},
        ("POST", "/stream/tickets"): {},
        ("POST", "/webhooks"): {"url": "https://example.com/hook"},
        ("PATCH", "/webhooks/{webhook_id}"): {"name": "x"},
        ("POST", "/webhooks/{webhook_id}/rotate_secret"): {},
        ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): {},
        ("POST", "/agent_bots"): {"name": "x", "outgoing_url": "https://example.com/bot"},
        ("PATCH", "/agent_bots/{agent_bot_id}"): {"name": "x"},
        ("POST", "/inboxes/{inbox_id}/set_agent_bot"): {"agent_bot": ids["agent_bot_id"]},
        ("POST", "/sla_policies"): {"name": "x", "first_response_time_threshold": 60},
        ("PATCH", "/sla_policies/{sla_policy_id}"): {"name": "x"},
        ("POST", "/business_calendars"): {"name": "x"},
        ("PATCH", "/business_calendars/{calendar_id}"): {"name": "x"},
        ("POST", "/conversations/{conversation_id}/no_reply_needed"): {},
    }
    key = (method, path[len(PREFIX):])
    if key in table:
        return table[key]
    if method in ("GET", "DELETE"):
        return None
    raise AssertionError(f"no tenancy body for {method} {path}: add one to tests/test_tenancy.py")


#: Routes that take no foreign object, only the account: checked with a foreign account id.
ACCOUNT_ONLY = re.compile(r"^/api/v1/accounts/\{account_id\}(/[a-z_]+)?$")


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute, looking inside included routers (all ours carry their full prefix)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


def account_routes(app) -> list[tuple[str, str]]:
    routes = []
    for route in api_routes(app.routes):
        if route.path.startswith(PREFIX):
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                routes.append((method, route.path))
    assert len(routes) >= 40, routes
    return routes


@pytest.fixture
async def two_accounts(tenants, runtime):
    """Account A (the caller, with nothing of its own) and account B with one of everything."""
    a, b = await tenants.new("Tenant A"), await tenants.new("Tenant B")
    inbox_id = await b.inbox("api")
    agent_id, _ = await b.agent(inbox_ids=[inbox_id])
    results = await ingest_messages(
        runtime.db,
        [
            InboundMessage(inbox_id=inbox_id, source_id="t-1", sender=SenderIdentity(source_id="s1", name="B1"),
                           text="b's secret",
                           attachments=[InboundAttachment(file_name="b.txt", content_type="text/plain", data=b"b")]),
            InboundMessage(inbox_id=inbox_id, source_id="t-2", sender=SenderIdentity(source_id="s2", name="B2"), text="x"),
        ],
        store=runtime.store,
    )
    async with runtime.db.write_session() as session:
        conversation = await session.get(Conversation, results[0].conversation_id)
        other = await session.get(Conversation, results[1].conversation_id)
        attachment = await session.scalar(select(Attachment).where(Attachment.message_id == results[0].message_id))
        team = await teams.save_team(session, b.account_id, None, name="B team")
        label = await catalog.save_label(session, b.account_id, None, {"title": "b-label"})
        canned = await catalog.save_canned(session, b.account_id, None, {"short_code": "b", "content": "b"})
        sla_policy = await sla_service.save_policy(session, b.account_id, None, {"name": "B policy"})
        calendar = await sla_service.save_calendar(session, b.account_id, None, {"name": "B hours"})
        webhook, _ = await webhook_service.create_webhook(session, runtime.box, b.account_id,
                                                          url="https://example.com/b", subscriptions=None)
        bot, _, _ = await webhook_service.create_bot(session, runtime.box, b.account_id, name="B bot",
                                                     outgoing_url="https://example.com/b-bot", description=None)
        delivery = WebhookDelivery(webhook_id=webhook.id, account_id=b.account_id, event="message_created",
                                   ordering_key="x", payload={}, status="failed", attempts=1)
        session.add(delivery)
        quarantined = QuarantinedMessage(account_id=b.account_id, inbox_id=inbox_id, source_ref="imap:1:1",
                                         error="unreadable", raw_path=None, raw_size=0)
        session.add(quarantined)
        await session.flush()
    ids = {
        "inbox_id": inbox_id,
        "agent_id": agent_id,
        "contact_id": conversation.contact_id,
        "other_contact_id": other.contact_id,
        "conversation_id": conversation.display_id + 10,  # display ids are per account: pick one A lacks
        "message_id": results[0].message_id,
        "team_id": team.id,
        "label_id": label.id,
        "canned_response_id": canned.id,
        "attachment_id": attachment.id,
        "webhook_id": webhook.id,
        "delivery_id": delivery.id,
        "agent_bot_id": bot.id,
        "sla_policy_id": sla_policy.id,
        "calendar_id": calendar.id,
        "quarantined_id": quarantined.id,
    }
    # Make B's display id unique to B: A has no conversations at all.
    async with runtime.db.write_session() as session:
        conv = await session.get(Conversation, conversation.id)
        conv.display_id = ids["conversation_id"]
    return a, b, ids


async def test_every_route_hides_another_accounts_objects(client, app, two_accounts):
    a, b, ids = two_accounts
    checked = 0
    for method, path in account_routes(app):
        names = re.findall(r"\{(\w+)\}", path)
        body = body_for(method, path, ids)
        foreign_body_ids = body is not None and any(
            v in ids.values() for v in _flatten(body) if isinstance(v, int)
        )
        if names == ["account_id"] and not foreign_body_ids:
            continue  # nothing foreign to name but the account: see the next test
        url = path.replace("{account_id}", str(a.account_id))
        for name in names[1:]:
            url = url.replace("{" + name + "}", str(ids[name]))
        response = await client.request(method, url, headers=a.headers, json=body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert "message" in response.json()
        checked += 1
    assert checked >= 30


async def test_every_route_refuses_another_accounts_path(client, app, two_accounts):
    a, b, ids = two_accounts
    for method, path in account_routes(app):
        url = path.replace("{account_id}", str(b.account_id))
        for name in re.findall(r"\{(\w+)\}", path)[1:]:
            url = url.replace("{" + name + "}", str(ids[name]))
        response = await client.request(method, url, headers=a.headers, json=body_for(method, path, ids))
        assert response.status_code == 404, (method, path, response.status_code, response.text)


async def test_b_still_has_everything_after_the_walk(client, two_accounts):
    a, b, ids = two_accounts
    response = await client.get(b.path(f"/conversations/{ids['conversation_id']}/messages"), headers=b.headers)
    assert response.status_code == 200
    assert [m["content"] for m in response.json()["payload"]] == ["b's secret"]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


def test_account_only_pattern_matches_collection_routes():
    assert ACCOUNT_ONLY.match("/api/v1/accounts/{account_id}/labels")
