"""LINE Messaging API webhooks -> Postroom's shapes.

Follows the Messaging API reference, *Webhook event objects*
(https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects) and
*Receive messages (webhook)* (https://developers.line.biz/en/docs/messaging-api/receiving-messages):
``{"destination": <bot user id>, "events": [{"type", "mode", "timestamp", "source":
{"type": "user", "userId"}, "webhookEventId", "deliveryContext": {"isRedelivery"},
"replyToken", "message": {...}}]}``.

* ``message`` events from a user (one-to-one chat): keyed by ``message.id``, which a
  redelivery (``deliveryContext.isRedelivery``) repeats, so ingest stores it once. Text,
  stickers (by package/sticker id), location; image, video, audio and file messages
  become attachments fetched by their message id before storage (``connectors.base.media``;
  ``contentProvider.type: external`` ones keep LINE's ``originalContentUrl``).
  The ``replyToken`` and the time it arrived ride along in metadata for the reply.
* ``follow`` / ``unfollow``: contact events.
Group and room chats, and events in ``standby`` mode, are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.base import ContactEvent, InboundAttachment, InboundMessage, Quarantined, SenderIdentity, WebhookBatch
from connectors.base.media import default_name
from connectors.base.push import json_body

MEDIA_TYPES = ("image", "video", "audio", "file")
#: The type a file is filed under until its download says better.
CONTENT_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mp4", "file": "application/octet-stream"}


def parse_body(inbox_id: int, raw: bytes, received_at: datetime) -> WebhookBatch:
    """The batch of one verified webhook body."""
    batch = WebhookBatch()
    body = json_body(raw, batch)
    if body is None:
        return batch
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        batch.quarantined.append(Quarantined("expected a body with events[]", body))
        return batch
    for event in body["events"]:  # an empty list is LINE's "Verify" button: nothing to do
        try:
            _event(inbox_id, event, batch, received_at)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            batch.quarantined.append(Quarantined(f"unreadable event: {type(exc).__name__}: {exc}", event))
    return batch


def _event(inbox_id: int, event: dict[str, Any], batch: WebhookBatch, received_at: datetime) -> None:
    source = event["source"]
    if source.get("type") != "user" or event.get("mode", "active") != "active":
        batch.skipped += 1
        return
    user_id = str(source["userId"])
    at = _time(event.get("timestamp"))
    kind = event["type"]
    if kind in ("follow", "unfollow"):
        batch.contacts.append(ContactEvent(kind, SenderIdentity(source_id=user_id), at))
        return
    if kind != "message":
        batch.skipped += 1  # postback, beacon, accountLink…: not conversation messages
        return
    message = event["message"]
    mtype = message["type"]
    metadata: dict[str, Any] = {
        "type": mtype,
        "webhook_event_id": event.get("webhookEventId"),
        "redelivery": bool((event.get("deliveryContext") or {}).get("isRedelivery")),
    }
    if event.get("replyToken"):
        metadata["reply_token"] = event["replyToken"]
        metadata["received_at"] = received_at.isoformat()
    text = None
    if mtype == "text":
        text = message["text"]
    elif mtype == "sticker":
        metadata["sticker"] = {"packageId": message.get("packageId"), "stickerId": message.get("stickerId")}
        text = "(sticker)"
    elif mtype == "location":
        text = message.get("address") or message.get("title") or f"{message.get('latitude')},{message.get('longitude')}"
        metadata["location"] = {k: message.get(k) for k in ("title", "address", "latitude", "longitude")}
    attachments: list[InboundAttachment] = []
    if mtype in MEDIA_TYPES:
        provider = message.get("contentProvider") or {}
        metadata["content"] = {"id": message["id"], "fileName": message.get("fileName"), "provider": provider.get("type")}
        mime = CONTENT_TYPES[mtype]
        name = message.get("fileName") or default_name(mtype, mime)
        if provider.get("type") == "external" and provider.get("originalContentUrl"):
            # Sent through a LINE API by its own URL: LINE keeps no copy to fetch.
            attachments.append(InboundAttachment(file_name=name, content_type=mime,
                                                 external_url=str(provider["originalContentUrl"])))
        else:
            attachments.append(InboundAttachment(file_name=name, content_type=mime, platform_id=str(message["id"])))
    batch.messages.append(InboundMessage(
        inbox_id=inbox_id, source_id=str(message["id"]), sender=SenderIdentity(source_id=user_id),
        text=text, attachments=attachments, sent_at=at, metadata=metadata,
    ))


def _time(ms: Any) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC)
