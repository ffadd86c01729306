"""Inboxes and their members.

An inbox is created through Chatwoot's ``{name, channel: {type, …}}`` shape. The
channel's secret fields (passwords, tokens, app secrets) are split off and stored
encrypted; everything else is kept as plain settings and shown back through the API.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.secrets_box import SecretsBox
from app.errors import Invalid, NotFound
from app.models import ConnectorState, Inbox, InboxMember, User
from app.tickets.presenters import connection_json
from connectors.registry import push_connector_for, runner_channel_types

#: Channel types the inbox API accepts (Chatwoot's names where Chatwoot has them).
CHANNEL_TYPES = (
    "api", "email", "web_widget", "telegram", "facebook", "instagram", "whatsapp", "line",
    "shopee", "lazada", "tiktok_shop", "amazon", "walmart", "ebay",
)
#: Channel fields that are secrets: stored encrypted, never shown back.
SECRET_FIELDS = frozenset({
    "imap_password", "smtp_password", "bot_token", "page_access_token", "user_access_token",
    "app_secret", "api_key", "line_channel_secret", "line_channel_token", "access_token",
    "refresh_token", "partner_key", "app_key", "client_secret", "hmac_token", "secret",
    "inbound_signing_secret",
    "provider_config",
})
_INBOX_FIELDS = (
    "greeting_enabled", "greeting_message", "enable_auto_assignment",
    "allow_messages_after_resolved", "working_hours_enabled", "timezone", "reopen_window_days",
)


def _split_channel(channel: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = {k: v for k, v in channel.items() if k not in SECRET_FIELDS and k != "type"}
    secrets_ = {k: v for k, v in channel.items() if k in SECRET_FIELDS and v not in (None, "")}
    return settings, secrets_


async def sync_inbox_webhook(session: AsyncSession, box: SecretsBox, inbox: Inbox) -> None:
    """Keep the API inbox's webhook in step with its ``webhook_url``."""
    from app.webhooks.service import sync_inbox_webhook as sync

    await sync(session, box, inbox)


async def create_inbox(
    session: AsyncSession,
    box: SecretsBox,
    account_id: int,
    *,
    name: str,
    channel: dict[str, Any],
    fields: dict[str, Any] | None = None,
) -> Inbox:
    """A new inbox for a channel."""
    channel_type = str(channel.get("type") or "").strip()
    if channel_type not in CHANNEL_TYPES:
        raise Invalid(f"channel type must be one of {', '.join(CHANNEL_TYPES)}", field="channel.type")
    if not name or not name.strip():
        raise Invalid("name can't be blank", field="name")
    settings, secret_values = _split_channel(channel)
    push = push_connector_for(channel_type)
    for setting in push.generated_settings if push else ():
        settings.setdefault(setting, secrets.token_urlsafe(24))  # pasted into the platform's console
    inbox = Inbox(
        account_id=account_id,
        name=name.strip(),
        channel_type=channel_type,
        identifier=secrets.token_urlsafe(18),
        settings=settings,
        credentials_encrypted=box.seal(secret_values) if secret_values else None,
    )
    for key, value in (fields or {}).items():
        if key in _INBOX_FIELDS and value is not None:
            setattr(inbox, key, value)
    session.add(inbox)
    await session.flush()
    await sync_inbox_webhook(session, box, inbox)
    return inbox


async def update_inbox(
    session: AsyncSession, box: SecretsBox, inbox: Inbox, *, fields: dict[str, Any], channel: dict[str, Any] | None
) -> Inbox:
    """Change an inbox's fields and merge channel settings and secrets."""
    if fields.get("name"):
        inbox.name = str(fields["name"]).strip()
    for key in _INBOX_FIELDS:
        if key in fields and fields[key] is not None:
            setattr(inbox, key, fields[key])
    if channel:
        settings, secret_values = _split_channel(channel)
        inbox.settings = {**(inbox.settings or {}), **settings}
        if secret_values:
            inbox.credentials_encrypted = box.seal({**box.open(inbox.credentials_encrypted), **secret_values})
    await session.flush()
    await sync_inbox_webhook(session, box, inbox)
    return inbox


async def get_inbox(session: AsyncSession, account_id: int, inbox_id: int) -> Inbox:
    """An inbox of the account; NotFound otherwise."""
    inbox = await session.scalar(select(Inbox).where(Inbox.id == inbox_id, Inbox.account_id == account_id))
    if inbox is None:
        raise NotFound("Inbox")
    return inbox


async def list_inboxes(session: AsyncSession, account_id: int, only: frozenset[int] | None) -> list[Inbox]:
    """The account's inboxes (``only``: the ones an agent is a member of)."""
    query = select(Inbox).where(Inbox.account_id == account_id).order_by(Inbox.id)
    if only is not None:
        query = query.where(Inbox.id.in_(sorted(only)))
    return list(await session.scalars(query))


async def connections(session: AsyncSession, inboxes: list[Inbox]) -> dict[int, dict[str, Any]]:
    """The connection state of the runner's inboxes among ``inboxes`` (for ``inbox_json``)."""
    pulled = [i.id for i in inboxes if i.channel_type in runner_channel_types()]
    if not pulled:
        return {}
    rows = {s.inbox_id: s for s in await session.scalars(
        select(ConnectorState).where(ConnectorState.inbox_id.in_(pulled)))}
    return {inbox_id: connection_json(rows.get(inbox_id)) for inbox_id in pulled}


async def delete_inbox(session: AsyncSession, inbox: Inbox) -> None:
    """Delete an inbox with its conversations."""
    await session.delete(inbox)
    await session.flush()


async def members(session: AsyncSession, inbox: Inbox) -> list[User]:
    """The agents of an inbox."""
    rows = await session.scalars(
        select(User).join(InboxMember, InboxMember.user_id == User.id)
        .where(InboxMember.inbox_id == inbox.id).order_by(User.id)
    )
    return list(rows)


async def _account_users(session: AsyncSession, account_id: int, user_ids: list[int]) -> list[int]:
    ids = sorted(set(int(u) for u in user_ids))
    found = set(await session.scalars(select(User.id).where(User.account_id == account_id, User.id.in_(ids))))
    missing = [u for u in ids if u not in found]
    if missing:
        raise NotFound("Agent", field="user_ids")
    return ids


async def add_members(session: AsyncSession, inbox: Inbox, user_ids: list[int]) -> None:
    """Add agents to an inbox (already-members are left alone)."""
    ids = await _account_users(session, inbox.account_id, user_ids)
    present = set(await session.scalars(select(InboxMember.user_id).where(InboxMember.inbox_id == inbox.id)))
    for user_id in ids:
        if user_id not in present:
            session.add(InboxMember(inbox_id=inbox.id, user_id=user_id))
    await session.flush()


async def set_members(session: AsyncSession, inbox: Inbox, user_ids: list[int]) -> None:
    """Make exactly these agents the inbox's members."""
    ids = await _account_users(session, inbox.account_id, user_ids)
    await session.execute(delete(InboxMember).where(InboxMember.inbox_id == inbox.id))
    for user_id in ids:
        session.add(InboxMember(inbox_id=inbox.id, user_id=user_id))
    await session.flush()


async def remove_members(session: AsyncSession, inbox: Inbox, user_ids: list[int]) -> None:
    """Remove agents from an inbox."""
    ids = await _account_users(session, inbox.account_id, user_ids)
    await session.execute(
        delete(InboxMember).where(InboxMember.inbox_id == inbox.id, InboxMember.user_id.in_(ids))
    )
