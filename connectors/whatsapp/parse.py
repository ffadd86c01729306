"""WhatsApp Cloud API webhooks -> Postroom's shapes.

Follows the *messages webhook reference*
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages)
and its *status* page
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/):
``{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>, "changes":
[{"field": "messages", "value": {"messaging_product", "metadata": {"display_phone_number",
"phone_number_id"}, "contacts": [{"profile": {"name"}, "wa_id"}], "messages": [...],
"statuses": [...]}}]}]}``.

* ``messages[]``: keyed by ``id`` (the wamid); ``text.body``, the ``caption`` of media;
  a media ``id`` becomes an attachment fetched before storage (``connectors.base.media``)
  and is kept in metadata too, ``button`` / ``interactive`` replies by their
  title, ``location``; ``context.id`` is what the message answers. Reactions are skipped;
  ``unsupported`` messages are stored with their error title, so nothing is lost.
* ``statuses[]``: ``sent`` / ``delivered`` / ``read`` / ``failed`` (with ``errors[]``:
  ``code``, ``title``, ``error_data.details``) for the wamid of a reply.
Changes for another phone number than the inbox's are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.base import InboundAttachment, InboundMessage, Quarantined, Receipt, SenderIdentity, WebhookBatch
from connectors.base.media import default_name
from connectors.base.push import json_body

OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")


def parse_body(inbox_id: int, raw: bytes, phone_number_id: str | None) -> WebhookBatch:
    """The batch of one verified webhook body."""
    batch = WebhookBatch()
    body = json_body(raw, batch)
    if body is None:
        return batch
    if not isinstance(body, dict) or body.get("object") != OBJECT or not isinstance(body.get("entry"), list):
        batch.quarantined.append(Quarantined(f"expected an object={OBJECT!r} body with entry[]", body))
        return batch
    for entry in body["entry"]:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value")
            if (change or {}).get("field") != "messages" or not isinstance(value, dict):
                batch.skipped += 1  # account_update, template status…: not conversations
                continue
            number = str((value.get("metadata") or {}).get("phone_number_id") or "")
            if phone_number_id and number and number != phone_number_id:
                batch.skipped += 1
                continue
            names = {str(c.get("wa_id")): (c.get("profile") or {}).get("name") for c in value.get("contacts") or []}
            for message in value.get("messages") or []:
                try:
                    parsed = _message(inbox_id, message, names)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    batch.quarantined.append(Quarantined(f"unreadable message: {type(exc).__name__}: {exc}", message))
                    continue
                if parsed is None:
                    batch.skipped += 1
                else:
                    batch.messages.append(parsed)
            for status in value.get("statuses") or []:
                try:
                    batch.receipts.append(_status(status))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    batch.quarantined.append(Quarantined(f"unreadable status: {type(exc).__name__}: {exc}", status))
    return batch


def _message(inbox_id: int, message: dict[str, Any], names: dict[str, Any]) -> InboundMessage | None:
    kind = str(message.get("type") or "")
    if kind == "reaction":
        return None
    sender = str(message["from"])
    text: str | None = None
    metadata: dict[str, Any] = {"type": kind}
    attachments: list[InboundAttachment] = []
    if kind == "text":
        text = message["text"]["body"]
    elif kind in MEDIA_TYPES:
        media = message[kind]
        text = media.get("caption")
        metadata["media"] = {k: media.get(k) for k in ("id", "mime_type", "sha256", "filename") if media.get(k)}
        mime = str(media.get("mime_type") or "application/octet-stream")
        attachments.append(InboundAttachment(file_name=media.get("filename") or default_name(kind, mime),
                                             content_type=mime, platform_id=str(media["id"])))
    elif kind == "button":
        text = message["button"].get("text")
        metadata["payload"] = message["button"].get("payload")
    elif kind == "interactive":
        reply = message["interactive"].get("button_reply") or message["interactive"].get("list_reply") or {}
        text = reply.get("title")
        metadata["reply_id"] = reply.get("id")
    elif kind == "location":
        location = message["location"]
        text = location.get("name") or f"{location.get('latitude')},{location.get('longitude')}"
        metadata["location"] = location
    else:  # unsupported, contacts, order…: kept with what WhatsApp said about it
        errors = message.get("errors") or []
        text = errors[0].get("title") if errors else None
        metadata["raw"] = message
    context = (message.get("context") or {}).get("id")
    return InboundMessage(
        inbox_id=inbox_id, source_id=str(message["id"]),
        sender=SenderIdentity(source_id=sender, name=names.get(sender), phone_number=f"+{sender}"),
        text=text, attachments=attachments, sent_at=_time(message.get("timestamp")),
        in_reply_to=[str(context)] if context else [], metadata=metadata,
    )


def _status(status: dict[str, Any]) -> Receipt:
    value = str(status["status"])
    if value not in STATUSES:
        raise ValueError(f"unknown status {value!r}")
    error = None
    errors = status.get("errors") or []
    if errors:
        first = errors[0]
        details = (first.get("error_data") or {}).get("details")
        error = f"{first.get('code')}: {first.get('title') or first.get('message')}" + (f" ({details})" if details else "")
    return Receipt(value, source_ids=[str(status["id"])], recipient=str(status.get("recipient_id") or "") or None,
                   error=error)  # type: ignore[arg-type]


def _time(seconds: Any) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), UTC)
