"""The live-chat visitor's view of the event stream.

A visitor's websocket registers a :class:`VisitorSubscriber` with the process's hub, so
it is fed by the same log follower (and the same broker wake-ups) as the agents'
streams. The hub offers it every frame of its web-widget inbox; the subscriber keeps
only what belongs to that visitor and re-shapes it:

* ``message.created`` / ``message.updated`` of the visitor's own conversations, never
  private notes or activity lines, cut down to :func:`visitor_message`;
* ``conversation.status`` (``{"id", "status"}``) when one of them changes;
* ``typing`` (``{"on": bool}``) when an agent types a reply (not a private note).

The visitor's conversations are the ones on its contact identity (``contact_inbox``);
a conversation created while the socket is open is recognised by its
``contact_inbox.source_id`` in the ``conversation.created`` frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.realtime.hub import Subscriber

#: Message types a visitor sees (Chatwoot's integer codes): incoming, outgoing, template.
VISITOR_MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 3: "template"}
_CONVERSATION_EVENTS = frozenset({
    "conversation.created", "conversation.updated", "conversation.status_changed",
    "assignee.changed", "team.changed",
})


def visitor_message(message: dict[str, Any]) -> dict[str, Any] | None:
    """What a visitor may know of a message in the REST shape; None for private notes
    and activity lines."""
    kind = VISITOR_MESSAGE_TYPES.get(message.get("message_type"))  # type: ignore[arg-type]
    if kind is None or message.get("private"):
        return None
    sender = message.get("sender") or {}
    if kind == "incoming":
        sender_json = {"type": "contact", "name": None}
    else:
        role = "bot" if message.get("sender_type") == "agent_bot" else "agent"
        sender_json = {"type": role, "name": sender.get("available_name") or sender.get("name")}
    attributes = message.get("content_attributes") or {}
    metadata = (message.get("additional_attributes") or {}).get("metadata") or {}
    return {
        "id": message["id"],
        "conversation_id": message.get("conversation_id"),
        "content": message.get("content"),
        "message_type": kind,
        "created_at": message.get("created_at"),
        "status": message.get("status"),
        "deleted": bool(attributes.get("deleted")),
        "echo_id": attributes.get("echo_id") or metadata.get("echo_id"),
        "sender": sender_json,
        # A satisfaction survey (app/reports/csat.py): the widget links to its public page.
        "survey": ({"url": f"/survey/responses/{attributes['survey_uuid']}",
                    "answered": bool(attributes.get("submitted_values"))}
                   if message.get("content_type") == "input_csat" and attributes.get("survey_uuid") else None),
        "attachments": [
            {"id": a["id"], "file_type": a.get("file_type"), "file_name": a.get("file_name"),
             "content_type": a.get("content_type"), "file_size": a.get("file_size"),
             "url": attachment_path(a["id"])}
            for a in message.get("attachments") or ()
        ],
    }


def attachment_path(attachment_id: int) -> str:
    """Where a visitor fetches a file of their conversation (with their token)."""
    return f"/widget/api/attachments/{attachment_id}"


def visitor_frame(event: str, data: dict[str, Any]) -> str:
    """A visitor frame: ``{"event": …, "data": …}`` (visitors resume over REST, not by seq)."""
    return json.dumps({"event": event, "data": data}, ensure_ascii=False, separators=(",", ":"))


@dataclass(eq=False)
class VisitorSubscriber(Subscriber):
    """One visitor's socket: one inbox, one contact identity, its conversations only."""

    source_id: str = ""
    #: Display ids of the visitor's conversations.
    conversation_ids: set[int] = field(default_factory=set)

    def may_see(self, account_id: int, inbox_id: int | None) -> bool:
        """Only its own inbox's events (never account-wide ones such as presence)."""
        return account_id == self.account_id and inbox_id is not None and inbox_id in self.inbox_ids

    def offer(self, frame: str) -> None:
        """Translate an agents' frame into the visitor's, or drop it."""
        translated = self.translate(frame)
        if translated is not None:
            super().offer(translated)

    def translate(self, frame: str) -> str | None:
        """The visitor's version of an agents' frame, or None when it is not theirs."""
        try:
            parsed = json.loads(frame)
            event, data = parsed["event"], parsed["data"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        if event in ("message.created", "message.updated"):
            if data.get("conversation_id") not in self.conversation_ids:
                return None
            message = visitor_message(data)
            return visitor_frame(event, message) if message is not None else None
        if event in _CONVERSATION_EVENTS:
            if event == "conversation.created":
                if (data.get("contact_inbox") or {}).get("source_id") != self.source_id:
                    return None
                self.conversation_ids.add(data["id"])
            elif data.get("id") not in self.conversation_ids:
                return None
            if event not in ("conversation.created", "conversation.status_changed"):
                return None  # assignments and attributes are the agents' business
            return visitor_frame("conversation.status", {"id": data["id"], "status": data.get("status")})
        if event in ("conversation.typing_on", "conversation.typing_off"):
            conversation = data.get("conversation") or {}
            user = data.get("user") or {}
            if (conversation.get("id") not in self.conversation_ids or user.get("type") != "user"
                    or data.get("is_private")):
                return None
            return visitor_frame("typing", {"on": event == "conversation.typing_on"})
        return None
