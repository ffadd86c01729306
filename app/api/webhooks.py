"""Account webhooks and agent bots."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from app.api.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep
from app.api.schemas import Body
from app.models import AgentBot, Webhook, WebhookAttempt, WebhookDelivery
from app.tickets import inboxes as inbox_service
from app.webhooks import service

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["webhooks", "agent bots"])


class WebhookBody(Body):
    url: str | None = Field(default=None, examples=["https://example.com/postroom-events"])
    subscriptions: list[str] | None = Field(default=None, examples=[["message_created", "conversation_status_changed"]])
    name: str | None = None
    active: bool | None = None


class AgentBotBody(Body):
    name: str | None = Field(default=None, examples=["Order status bot"])
    description: str | None = None
    outgoing_url: str | None = Field(default=None, examples=["https://bot.example.com/postroom"])


class SetAgentBot(Body):
    agent_bot: int | None = Field(default=None, description="The bot's id; null disconnects.")


def webhook_json(webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    body = {
        "id": webhook.id, "account_id": webhook.account_id, "name": webhook.name, "url": webhook.url,
        "subscriptions": webhook.subscriptions, "active": webhook.active,
        "disabled_reason": webhook.disabled_reason, "webhook_type": "account_type",
    }
    if secret is not None:
        body["secret"] = secret
    return body


def delivery_json(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {
        "id": delivery.id, "event": delivery.event, "event_seq": delivery.event_seq, "status": delivery.status,
        "attempts": delivery.attempts, "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.status == "pending" else None,
        "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "attempt_log": [
            {"at": a.created_at.isoformat(), "status_code": a.status_code, "error": a.error,
             "latency_ms": a.latency_ms, "response": a.response_excerpt}
            for a in attempts
        ],
    }


def bot_json(bot: AgentBot, *, access_token: str | None = None, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": bot.id, "account_id": bot.account_id, "name": bot.name, "description": bot.description,
        "outgoing_url": bot.outgoing_url, "bot_type": "webhook", "user_id": bot.user_id,
    }
    if access_token is not None:
        body["access_token"] = access_token
    if secret is not None:
        body["secret"] = secret
    return body


@router.get("/webhooks", summary="List webhooks")
async def list_webhooks(account_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    return {"payload": {"webhooks": [webhook_json(w) for w in await service.list_webhooks(session, account_id)]}}


@router.post("/webhooks", summary="Create a webhook; its signing secret is shown only here")
async def create_webhook(account_id: int, body: WebhookBody, principal: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    from app.errors import Invalid

    if not body.url:
        raise Invalid("url can't be blank", field="url")
    webhook, secret = await service.create_webhook(
        session, runtime.box, account_id, url=body.url, subscriptions=body.subscriptions, name=body.name)
    return {"payload": {"webhook": webhook_json(webhook, secret)}}


@router.patch("/webhooks/{webhook_id}", summary="Change a webhook (`active: true` re-enables it)")
async def update_webhook(account_id: int, webhook_id: int, body: WebhookBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    webhook = await service.get_webhook(session, account_id, webhook_id)
    await service.update_webhook(session, webhook, body.model_dump(exclude_unset=True))
    return {"payload": {"webhook": webhook_json(webhook)}}


@router.delete("/webhooks/{webhook_id}", summary="Delete a webhook")
async def delete_webhook(account_id: int, webhook_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await session.delete(await service.get_webhook(session, account_id, webhook_id))
    return {}


@router.post("/webhooks/{webhook_id}/rotate_secret", summary="New signing secret; the old one stays valid for 24 h")
async def rotate_secret(account_id: int, webhook_id: int, principal: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    webhook = await service.get_webhook(session, account_id, webhook_id)
    return {"secret": await service.rotate_secret(session, runtime.box, webhook),
            "previous_valid_until": webhook.previous_secret_until.isoformat() if webhook.previous_secret_until else None}


@router.get("/webhooks/{webhook_id}/deliveries", summary="The delivery log: attempts, status codes, latency")
async def list_deliveries(account_id: int, webhook_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    webhook = await service.get_webhook(session, account_id, webhook_id)
    return {"payload": [delivery_json(d, a) for d, a in await service.deliveries(session, webhook)]}


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", summary="Send a delivery again")
async def redeliver(account_id: int, webhook_id: int, delivery_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    webhook = await service.get_webhook(session, account_id, webhook_id)
    return delivery_json(await service.redeliver(session, webhook, delivery_id), [])


@router.get("/agent_bots", summary="List agent bots")
async def list_bots(account_id: int, principal: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    return [bot_json(b) for b in await service.list_bots(session, account_id)]


@router.post("/agent_bots", summary="Create an agent bot; its access token and signing secret are shown only here")
async def create_bot(account_id: int, body: AgentBotBody, principal: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    from app.errors import Invalid

    if not body.outgoing_url:
        raise Invalid("outgoing_url can't be blank", field="outgoing_url")
    bot, token, secret = await service.create_bot(
        session, runtime.box, account_id, name=body.name or "", outgoing_url=body.outgoing_url, description=body.description)
    return bot_json(bot, access_token=token, secret=secret)


@router.get("/agent_bots/{agent_bot_id}", summary="Get an agent bot")
async def get_bot(account_id: int, agent_bot_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    return bot_json(await service.get_bot(session, account_id, agent_bot_id))


@router.patch("/agent_bots/{agent_bot_id}", summary="Change an agent bot")
async def update_bot(account_id: int, agent_bot_id: int, body: AgentBotBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    bot = await service.get_bot(session, account_id, agent_bot_id)
    return bot_json(await service.update_bot(session, bot, body.model_dump(exclude_unset=True)))


@router.delete("/agent_bots/{agent_bot_id}", summary="Delete an agent bot")
async def delete_bot(account_id: int, agent_bot_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await service.delete_bot(session, await service.get_bot(session, account_id, agent_bot_id))
    return {}


@router.get("/inboxes/{inbox_id}/agent_bot", summary="The inbox's agent bot (an empty object when none)")
async def inbox_bot(account_id: int, inbox_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    from app.errors import NotFound

    inbox = await inbox_service.get_inbox(session, account_id, inbox_id)
    if not principal.can_see_inbox(inbox.id):
        raise NotFound("Inbox")
    bot = await service.bot_of_inbox(session, inbox)
    return bot_json(bot) if bot else {}


@router.post("/inboxes/{inbox_id}/set_agent_bot", summary="Connect an agent bot to the inbox (null disconnects)")
async def set_inbox_bot(account_id: int, inbox_id: int, body: SetAgentBot, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, account_id, inbox_id)
    bot = await service.get_bot(session, account_id, body.agent_bot) if body.agent_bot is not None else None
    await service.set_inbox_bot(session, inbox, bot)
    return {}
