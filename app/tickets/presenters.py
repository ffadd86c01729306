"""JSON shapes of the ticket model, as Chatwoot's Application API returns them.

The REST API, the realtime stream and webhooks all use these, so that an object looks
the same wherever a client meets it. Timestamps are Unix seconds, as in Chatwoot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.models import (
    Attachment,
    CannedResponse,
    ConnectorState,
    Contact,
    ContactInbox,
    Conversation,
    Inbox,
    Label,
    Message,
    Team,
    User,
)
from connectors.registry import push_channel_types

MESSAGE_TYPE_CODES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}

#: Chatwoot's channel class names for the short channel types Postroom stores.
CHANNEL_CLASS = {
    "api": "Channel::Api",
    "email": "Channel::Email",
    "web_widget": "Channel::WebWidget",
    "facebook": "Channel::FacebookPage",
    "instagram": "Channel::Instagram",
    "whatsapp": "Channel::Whatsapp",
    "telegram": "Channel::Telegram",
    "line": "Channel::Line",
    "sms": "Channel::Sms",
}


def channel_class(channel_type: str) -> str:
    """Chatwoot's ``Channel::X`` name; marketplaces get ``Channel::<Name>`` likewise."""
    return CHANNEL_CLASS.get(channel_type, "Channel::" + channel_type.title().replace("_", ""))


def unix(value: datetime | None) -> int | None:
    """Unix seconds, or None."""
    return int(value.timestamp()) if value is not None else None


def agent_json(user: User) -> dict[str, Any]:
    """An agent or administrator."""
    return {
        "id": user.id,
        "account_id": user.account_id,
        "availability_status": user.availability,
        "auto_offline": True,
        "confirmed": user.confirmed,
        "email": user.email,
        "available_name": user.display_name or user.name,
        "display_name": user.display_name,
        "name": user.name,
        "role": user.role,
        "thumbnail": "",
        "avatar_url": "",
        "type": "user",
        "custom_attributes": user.custom_attributes or {},
    }


def team_json(team: Team, *, is_member: bool = False) -> dict[str, Any]:
    """A team."""
    return {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "allow_auto_assign": team.allow_auto_assign,
        "account_id": team.account_id,
        "is_member": is_member,
        "created_at": team.created_at.isoformat(),
        "updated_at": team.updated_at.isoformat(),
    }


def label_json(label: Label) -> dict[str, Any]:
    """A label definition."""
    return {
        "id": label.id,
        "title": label.title,
        "description": label.description,
        "color": label.color,
        "show_on_sidebar": label.show_on_sidebar,
    }


def canned_response_json(item: CannedResponse) -> dict[str, Any]:
    """A canned response."""
    return {
        "id": item.id,
        "account_id": item.account_id,
        "short_code": item.short_code,
        "content": item.content,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def connection_json(state: ConnectorState | None) -> dict[str, Any]:
    """How a pulled inbox's connection is doing (the runner's state row)."""
    if state is None:
        return {"state": "starting", "last_error": None, "last_error_at": None,
                "last_fetch_at": None, "next_attempt_at": None}
    return {
        "state": state.state,
        "last_error": state.last_error,
        "last_error_at": _iso(state.last_error_at),
        "last_fetch_at": _iso(state.last_fetch_at),
        "next_attempt_at": _iso(state.next_attempt_at) if state.state in ("backing_off", "auth_failed") else None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def inbox_json(
    inbox: Inbox, *, public_base_url: str = "", connection: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An inbox, with its channel's non-secret settings (never its credentials).

    ``connection`` (pulled channels: see :func:`connection_json`) adds the runner's view
    of the channel, and Chatwoot's ``reauthorization_required`` when its credentials
    were refused.
    """
    settings = dict(inbox.settings or {})
    body: dict[str, Any] = {
        "id": inbox.id,
        "account_id": inbox.account_id,
        "channel_id": inbox.id,
        "name": inbox.name,
        "channel_type": channel_class(inbox.channel_type),
        "channel": inbox.channel_type,
        "avatar_url": "",
        "greeting_enabled": inbox.greeting_enabled,
        "greeting_message": inbox.greeting_message,
        "working_hours_enabled": inbox.working_hours_enabled,
        "timezone": inbox.timezone,
        "enable_email_collect": True,
        "csat_survey_enabled": bool(settings.get("csat_survey_enabled", False)),
        "enable_auto_assignment": inbox.enable_auto_assignment,
        "allow_messages_after_resolved": inbox.allow_messages_after_resolved,
        "lock_to_single_conversation": False,
        "reopen_window_days": inbox.reopen_window_days,
        "inbox_identifier": inbox.identifier,
        "webhook_url": settings.get("webhook_url"),
        "website_url": settings.get("website_url"),
        "widget_color": settings.get("widget_color"),
        "welcome_title": settings.get("welcome_title"),
        "welcome_tagline": settings.get("welcome_tagline"),
        "phone_number": settings.get("phone_number"),
        "forward_to_email": settings.get("forward_to_email"),
        "created_at": inbox.created_at.isoformat(),
        "updated_at": inbox.updated_at.isoformat(),
    }
    if inbox.channel_type == "web_widget":
        body["website_token"] = inbox.identifier
        body["web_widget_script"] = (
            f'<script src="{public_base_url}/widget/sdk.js" '
            f'data-website-token="{inbox.identifier}" async></script>'
        )
    if inbox.channel_type in push_channel_types():
        # What the administrator pastes into the platform's console (with verify_token).
        body["webhook_url"] = f"{public_base_url}/webhooks/{inbox.channel_type}/{inbox.identifier}"
    if connection is not None:
        body["connection"] = connection
        body["reauthorization_required"] = connection["state"] == "auth_failed"
    for key, value in settings.items():
        body.setdefault(key, value)
    return body


def contact_inbox_json(ci: ContactInbox, inbox: Inbox | None) -> dict[str, Any]:
    """A contact's identity on one inbox."""
    body: dict[str, Any] = {
        "source_id": ci.source_id,
        "inbox_id": ci.inbox_id,
        "hmac_verified": ci.hmac_verified,
    }
    if inbox is not None:
        body["inbox"] = {
            "id": inbox.id,
            "name": inbox.name,
            "channel_type": channel_class(inbox.channel_type),
        }
    return body


def contact_json(
    contact: Contact,
    *,
    contact_inboxes: list[tuple[ContactInbox, Inbox | None]] | None = None,
) -> dict[str, Any]:
    """A contact; with its channel identities when they were loaded."""
    body: dict[str, Any] = {
        "id": contact.id,
        "name": contact.name,
        "email": contact.email,
        "phone_number": contact.phone_number,
        "identifier": contact.identifier,
        "thumbnail": contact.avatar_url or "",
        "avatar_url": contact.avatar_url or "",
        "blocked": contact.blocked,
        "availability_status": "offline",
        "type": "contact",
        "additional_attributes": contact.additional_attributes or {},
        "custom_attributes": contact.custom_attributes or {},
        "last_activity_at": unix(contact.last_activity_at),
        "created_at": unix(contact.created_at),
    }
    if contact_inboxes is not None:
        body["contact_inboxes"] = [contact_inbox_json(ci, ib) for ci, ib in contact_inboxes]
    return body


def sender_json(message: Message, senders: dict[tuple[str, int], Any]) -> dict[str, Any] | None:
    """The author of a message (contact, agent or bot), in Chatwoot's ``sender`` shape."""
    if message.sender_type is None or message.sender_id is None:
        return None
    obj = senders.get((message.sender_type, message.sender_id))
    if obj is None:
        return {"id": message.sender_id, "type": message.sender_type}
    if isinstance(obj, Contact):
        return contact_json(obj)
    if isinstance(obj, User):
        return agent_json(obj)
    return {"id": message.sender_id, "type": message.sender_type, "name": getattr(obj, "name", None)}


def attachment_json(attachment: Attachment, *, base_url: str = "") -> dict[str, Any]:
    """An attachment, with the URL agents download it from."""
    extension = None
    if attachment.file_name and "." in attachment.file_name:
        extension = attachment.file_name.rsplit(".", 1)[1].lower()
    url = attachment.external_url or (
        f"{base_url}/api/v1/accounts/{attachment.account_id}/attachments/{attachment.id}"
    )
    return {
        "id": attachment.id,
        "message_id": attachment.message_id,
        "account_id": attachment.account_id,
        "file_type": attachment.file_type,
        "content_type": attachment.content_type,
        "file_name": attachment.file_name,
        "extension": extension,
        "data_url": url,
        "thumb_url": url if attachment.file_type == "image" else "",
        "file_size": attachment.file_size,
    }


def message_json(
    message: Message,
    *,
    conversation_display_id: int,
    senders: dict[tuple[str, int], Any] | None = None,
    attachments: list[Attachment] | None = None,
) -> dict[str, Any]:
    """A message, in Chatwoot's REST shape (``message_type`` as its integer code)."""
    sender = sender_json(message, senders or {})
    return {
        "id": message.id,
        "content": message.content,
        "content_type": message.content_type,
        "content_attributes": message.content_attributes or {},
        "additional_attributes": message.additional_attributes or {},
        "html_content": message.html_content,
        "message_type": MESSAGE_TYPE_CODES[message.message_type],
        "created_at": unix(message.created_at),
        "updated_at": unix(message.updated_at),
        "private": message.private,
        "status": message.status,
        "external_error": message.external_error,
        "source_id": message.source_id,
        "automatic": message.automatic,
        "conversation_id": conversation_display_id,
        "inbox_id": message.inbox_id,
        "account_id": message.account_id,
        "sender_type": message.sender_type,
        "sender_id": message.sender_id,
        "sender": sender,
        "attachments": [attachment_json(a) for a in (attachments or [])],
        "external_source_ids": {},
    }


def message_conversation_json(conversation: Conversation) -> dict[str, Any]:
    """The part of a conversation a message's event carries (``message.created``'s
    ``conversation``): the same values as :func:`conversation_json` gives for these keys."""
    return {
        "id": conversation.display_id,
        "inbox_id": conversation.inbox_id,
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "contact_id": conversation.contact_id,
        "waiting_since": unix(conversation.waiting_since),
        "first_reply_created_at": unix(conversation.first_reply_created_at),
        "last_activity_at": unix(conversation.last_activity_at),
    }


def conversation_json(
    conversation: Conversation,
    *,
    contact: Contact,
    inbox: Inbox,
    assignee: User | None,
    team: Team | None,
    labels: list[str],
    last_message: dict[str, Any] | None,
    unread_count: int,
    contact_inbox: ContactInbox | None = None,
    sla: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A conversation, in Chatwoot's shape (``id`` is the per-account display id)."""
    sender = contact_json(contact)
    return {
        "id": conversation.display_id,
        "display_id": conversation.display_id,
        "uuid": conversation.uuid,
        "account_id": conversation.account_id,
        "inbox_id": conversation.inbox_id,
        "contact_id": conversation.contact_id,
        "status": conversation.status,
        "priority": conversation.priority,
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "labels": labels,
        "additional_attributes": conversation.additional_attributes or {},
        "custom_attributes": conversation.custom_attributes or {},
        "can_reply": (sla or {}).get("can_reply", True),
        "reply_window_closes_at": unix(conversation.reply_window_closes_at),
        "sla_policy_id": conversation.sla_policy_id,
        "sla": {"next_due_at": unix(conversation.next_due_at), "clocks": (sla or {}).get("clocks", [])},
        "muted": False,
        "unread_count": unread_count,
        "snoozed_until": unix(conversation.snoozed_until),
        "waiting_since": unix(conversation.waiting_since),
        "first_reply_created_at": unix(conversation.first_reply_created_at),
        "agent_last_seen_at": unix(conversation.agent_last_seen_at),
        "contact_last_seen_at": unix(conversation.contact_last_seen_at),
        "last_activity_at": unix(conversation.last_activity_at),
        "timestamp": unix(conversation.last_activity_at),
        "created_at": unix(conversation.created_at),
        "updated_at": unix(conversation.updated_at),
        "thread_key": conversation.thread_key,
        "contact_inbox": (
            {"source_id": contact_inbox.source_id, "pubsub_token": None}
            if contact_inbox is not None
            else None
        ),
        "messages": [last_message] if last_message else [],
        "last_non_activity_message": last_message,
        "meta": {
            "sender": sender,
            "channel": channel_class(inbox.channel_type),
            "assignee": agent_json(assignee) if assignee else None,
            "team": team_json(team) if team else None,
            "hmac_verified": contact_inbox.hmac_verified if contact_inbox else False,
        },
        "contact": sender,
        "inbox": {
            "id": inbox.id,
            "name": inbox.name,
            "channel_id": inbox.id,
            "channel_type": channel_class(inbox.channel_type),
        },
    }
