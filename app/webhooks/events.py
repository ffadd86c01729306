"""From log events to webhook payloads: Chatwoot's event names and shapes."""

from __future__ import annotations

from typing import Any

#: Events an account webhook can subscribe to (Chatwoot's names, plus SLA events).
ACCOUNT_EVENTS = (
    "conversation_created", "conversation_updated", "conversation_status_changed",
    "message_created", "message_updated", "contact_created", "contact_updated",
    "webwidget_triggered", "conversation_typing_on", "conversation_typing_off",
    "sla_warning", "sla_breached", "volume_spike",
)
#: Events an agent bot receives for the conversations of its inboxes.
BOT_EVENTS = ("message_created", "message_updated", "conversation_opened", "conversation_resolved", "webwidget_triggered")

_NAMES = {
    "conversation.created": ["conversation_created"],
    "conversation.updated": ["conversation_updated"],
    "assignee.changed": ["conversation_updated"],
    "team.changed": ["conversation_updated"],
    "message.created": ["message_created"],
    "message.updated": ["message_updated"],
    "contact.created": ["contact_created"],
    "contact.updated": ["contact_updated"],
    "contact.merged": ["contact_updated"],
    "webwidget.triggered": ["webwidget_triggered"],
    "sla.warning": ["sla_warning"],
    "sla.breached": ["sla_breached"],
    "volume.spike": ["volume_spike"],
}
_MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}


def webhook_names(event_type: str, payload: dict[str, Any]) -> list[str]:
    """The webhook event names a log event becomes."""
    if event_type == "conversation.status_changed":
        names = ["conversation_status_changed"]
        status = payload.get("status")
        if status == "open":
            names.append("conversation_opened")
        elif status == "resolved":
            names.append("conversation_resolved")
        return names
    return list(_NAMES.get(event_type, ()))


def webhook_payload(name: str, data: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    """Chatwoot's webhook body: the object, ``event``, ``account``, and on updates
    ``changed_attributes`` as a list of ``{attribute: {previous_value, current_value}}``."""
    body = {**data, "event": name, "account": account}
    if isinstance(body.get("message_type"), int):
        body["message_type"] = _MESSAGE_TYPES.get(body["message_type"], body["message_type"])
    changed = body.get("changed_attributes")
    if isinstance(changed, dict):
        body["changed_attributes"] = [{key: value} for key, value in changed.items()]
    if "inbox_id" in body and "inbox" not in body:
        body["inbox"] = {"id": body["inbox_id"]}
    return body


def is_bot_relevant(name: str, data: dict[str, Any], bot_user_id: int) -> bool:
    """A bot hears its inboxes' conversations, never its own messages or private notes."""
    if name not in BOT_EVENTS:
        return False
    if name.startswith("message_"):
        if data.get("private") or data.get("message_type") in (2, "activity"):
            return False
        if data.get("sender_type") == "agent_bot" and data.get("sender_id") == bot_user_id:
            return False
    return True
