"""Webhooks and agent bots: create, change, rotate secrets, read the delivery log, redeliver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.secrets_box import SecretsBox
from app.errors import Invalid, NotFound
from app.events.log import WEBHOOKS_CHANGED, request_wake
from app.models import (
    AgentBot,
    AgentBotInbox,
    Inbox,
    InboxMember,
    User,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from app.models.accounts import BOT_ROLE
from app.webhooks.events import ACCOUNT_EVENTS
from app.webhooks.safety import validate_url
from app.webhooks.signing import new_secret

ROTATION_GRACE = timedelta(hours=24)


def _subscriptions(values: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(values or ACCOUNT_EVENTS))
    unknown = [v for v in chosen if v not in ACCOUNT_EVENTS]
    if unknown:
        raise Invalid(f"unknown events {unknown}; choose from {', '.join(ACCOUNT_EVENTS)}", field="subscriptions")
    return chosen


async def create_webhook(
    session: AsyncSession, box: SecretsBox, account_id: int, *, url: str, subscriptions: list[str] | None,
    name: str | None = None, webhook_type: str = "account", inbox_id: int | None = None, agent_bot_id: int | None = None,
) -> tuple[Webhook, str]:
    """A webhook and its secret (the only time the secret is returned)."""
    secret = new_secret()
    webhook = Webhook(
        account_id=account_id, webhook_type=webhook_type, inbox_id=inbox_id, agent_bot_id=agent_bot_id,
        name=name, url=validate_url(url),
        subscriptions=_subscriptions(subscriptions) if webhook_type == "account" else [],
        secret_encrypted=box.seal({"secret": secret}), created_at=utcnow(),
    )
    session.add(webhook)
    await session.flush()
    request_wake(session, WEBHOOKS_CHANGED)
    return webhook, secret


async def get_webhook(session: AsyncSession, account_id: int, webhook_id: int) -> Webhook:
    """An account webhook; NotFound otherwise."""
    webhook = await session.scalar(select(Webhook).where(
        Webhook.id == webhook_id, Webhook.account_id == account_id, Webhook.webhook_type == "account"))
    if webhook is None:
        raise NotFound("Webhook")
    return webhook


async def list_webhooks(session: AsyncSession, account_id: int) -> list[Webhook]:
    """The account's webhooks."""
    return list(await session.scalars(select(Webhook).where(
        Webhook.account_id == account_id, Webhook.webhook_type == "account").order_by(Webhook.id)))


async def update_webhook(session: AsyncSession, webhook: Webhook, fields: dict[str, Any]) -> Webhook:
    """Change URL, name, subscriptions; ``active: true`` re-enables a disabled webhook."""
    if fields.get("url"):
        webhook.url = validate_url(fields["url"])
    if "name" in fields:
        webhook.name = fields["name"]
    if fields.get("subscriptions") is not None:
        webhook.subscriptions = _subscriptions(fields["subscriptions"])
    if fields.get("active") is True and not webhook.active:
        webhook.active, webhook.disabled_reason, webhook.failing_since = True, None, None
    elif fields.get("active") is False:
        webhook.active = False
    await session.flush()
    request_wake(session, WEBHOOKS_CHANGED)
    return webhook


async def rotate_secret(session: AsyncSession, box: SecretsBox, webhook: Webhook) -> str:
    """A new secret; the old one keeps signing (alongside) for :data:`ROTATION_GRACE`."""
    secret = new_secret()
    webhook.previous_secret_encrypted = webhook.secret_encrypted
    webhook.previous_secret_until = utcnow() + ROTATION_GRACE
    webhook.secret_encrypted = box.seal({"secret": secret})
    await session.flush()
    return secret


async def deliveries(session: AsyncSession, webhook: Webhook, limit: int = 100) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """The newest deliveries with their attempts."""
    rows = list(await session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.webhook_id == webhook.id).order_by(WebhookDelivery.id.desc()).limit(limit)))
    attempts: dict[int, list[WebhookAttempt]] = {}
    if rows:
        for attempt in await session.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_([r.id for r in rows])).order_by(WebhookAttempt.id)):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [(row, attempts.get(row.id, [])) for row in rows]


async def redeliver(session: AsyncSession, webhook: Webhook, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again: a pending one now, a finished one as a fresh copy."""
    delivery = await session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id))
    if delivery is None:
        raise NotFound("Delivery")
    if delivery.status == "pending":
        delivery.next_attempt_at = utcnow()
        return delivery
    copy = WebhookDelivery(
        webhook_id=webhook.id, account_id=webhook.account_id, event_seq=None, event=delivery.event,
        ordering_key=delivery.ordering_key, conversation_id=delivery.conversation_id, payload=delivery.payload,
        status="pending", attempts=0, next_attempt_at=utcnow(), created_at=utcnow(),
    )
    session.add(copy)
    await session.flush()
    return copy


# -- agent bots ------------------------------------------------------------------------
async def create_bot(
    session: AsyncSession, box: SecretsBox, account_id: int, *, name: str, outgoing_url: str, description: str | None
) -> tuple[AgentBot, str, str]:
    """A bot with its API identity and webhook; returns (bot, access token, signing secret)."""
    if not name or not name.strip():
        raise Invalid("name can't be blank", field="name")
    validate_url(outgoing_url)
    identity = await auth_service.create_user(
        session, account_id, email=f"bot-{utcnow().timestamp():.6f}-{account_id}@bots.postroom.invalid",
        name=name.strip(), role=BOT_ROLE,
    )
    bot = AgentBot(account_id=account_id, user_id=identity.user.id, name=name.strip(),
                   description=description, outgoing_url=outgoing_url)
    session.add(bot)
    await session.flush()
    _, secret = await create_webhook(session, box, account_id, url=outgoing_url, subscriptions=None,
                                     webhook_type="agent_bot", agent_bot_id=bot.id, name=name)
    return bot, identity.access_token, secret


async def get_bot(session: AsyncSession, account_id: int, bot_id: int) -> AgentBot:
    """A bot of the account; NotFound otherwise."""
    bot = await session.scalar(select(AgentBot).where(AgentBot.id == bot_id, AgentBot.account_id == account_id))
    if bot is None:
        raise NotFound("Agent bot")
    return bot


async def list_bots(session: AsyncSession, account_id: int) -> list[AgentBot]:
    """The account's bots."""
    return list(await session.scalars(select(AgentBot).where(AgentBot.account_id == account_id).order_by(AgentBot.id)))


async def update_bot(session: AsyncSession, bot: AgentBot, fields: dict[str, Any]) -> AgentBot:
    """Change a bot's name, description or URL (its webhook follows the URL)."""
    if fields.get("name"):
        bot.name = fields["name"]
    if "description" in fields:
        bot.description = fields["description"]
    if fields.get("outgoing_url"):
        bot.outgoing_url = validate_url(fields["outgoing_url"])
        webhook = await session.scalar(select(Webhook).where(Webhook.agent_bot_id == bot.id))
        if webhook is not None:
            webhook.url = bot.outgoing_url
            webhook.active, webhook.failing_since = True, None
            request_wake(session, WEBHOOKS_CHANGED)
    await session.flush()
    return bot


async def delete_bot(session: AsyncSession, bot: AgentBot) -> None:
    """Delete a bot with its identity."""
    user = await session.get(User, bot.user_id)
    await session.delete(bot)
    if user is not None:
        await session.delete(user)
    await session.flush()


async def bot_of_inbox(session: AsyncSession, inbox: Inbox) -> AgentBot | None:
    """The inbox's active bot."""
    return await session.scalar(select(AgentBot).join(AgentBotInbox, AgentBotInbox.agent_bot_id == AgentBot.id)
                                .where(AgentBotInbox.inbox_id == inbox.id))


async def set_inbox_bot(session: AsyncSession, inbox: Inbox, bot: AgentBot | None) -> None:
    """Connect a bot to an inbox (None disconnects); the bot may then act on its conversations."""
    previous = await bot_of_inbox(session, inbox)
    await session.execute(delete(AgentBotInbox).where(AgentBotInbox.inbox_id == inbox.id))
    if previous is not None:
        await session.execute(delete(InboxMember).where(
            InboxMember.inbox_id == inbox.id, InboxMember.user_id == previous.user_id))
    if bot is not None:
        session.add(AgentBotInbox(inbox_id=inbox.id, agent_bot_id=bot.id))
        session.add(InboxMember(inbox_id=inbox.id, user_id=bot.user_id))
    await session.flush()


async def sync_inbox_webhook(session: AsyncSession, box: SecretsBox, inbox: Inbox) -> None:
    """An API inbox's ``webhook_url`` is a webhook receiving that inbox's events."""
    if inbox.channel_type != "api":
        return
    url = (inbox.settings or {}).get("webhook_url")
    existing = await session.scalar(select(Webhook).where(Webhook.inbox_id == inbox.id, Webhook.webhook_type == "api_inbox"))
    if not url:
        if existing is not None:
            await session.delete(existing)
        return
    if existing is None:
        await create_webhook(session, box, inbox.account_id, url=url, subscriptions=None,
                             webhook_type="api_inbox", inbox_id=inbox.id, name=inbox.name)
    elif existing.url != url:
        existing.url = validate_url(url)
        existing.active, existing.failing_since = True, None
        request_wake(session, WEBHOOKS_CHANGED)
