"""Messenger and Instagram webhook events -> Postroom's shapes.

Follows the Messenger Platform's *Webhook Events Reference*
(https://developers.facebook.com/docs/messenger-platform/reference/webhook-events) and
its pages ``messages``, ``message_echoes``, ``messaging_postbacks``,
``message_deliveries`` and ``message_reads``, and Instagram's *Messaging webhooks*
(https://developers.facebook.com/docs/instagram-platform/webhooks/): a body is
``{"object": "page"|"instagram", "entry": [{"id", "time", "messaging": [event]}]}``, each
event ``{"sender": {"id"}, "recipient": {"id"}, "timestamp": ms, <kind>: {...}}``.

* ``message`` from a customer: an incoming message keyed by ``mid``; text, attachments
  (``payload.url``), quick-reply payloads, and ``reply_to.mid`` as what it answers.
* ``message`` with ``is_echo``: a message the page sent. Echoes of Postroom's own replies
  (their ``metadata`` starts with ``postroom:``) are skipped, the outbox already has
  them; others were written by a person in Meta's inbox and are stored as outgoing.
* ``postback``: a button press, stored as an incoming message with its title.
* ``delivery`` (``mids``, ``watermark``) and ``read`` (``watermark``; Instagram: ``mid``):
  receipts for our replies.
* ``referral`` (*messaging_referrals*
  https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_referrals,
  and ``postback.referral`` / ``message.referral`` on a new thread's first event): one
  with ``source: ADS`` (a Click-to-Messenger or Click-to-Direct ad) sets the
  conversation's custom attributes ``entry_point: "ad"`` and ``ad_referral`` (ad id and
  title, ref, post and product ids, when). Meta's policy gives the first message after
  such a click a standard window of up to 7 days
  (https://developers.facebook.com/documentation/business-messaging/messenger-platform/policy/).
  A referral event on its own (a user with a thread came back through an ad) is stored
  as an automatic message saying so, which starts no clock; other referrals are kept in
  the message's metadata.
Anything else signed but unexpected is counted as skipped; an event without the fields
above is quarantined.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlparse

from connectors.base import (
    InboundAttachment,
    InboundMessage,
    Quarantined,
    Receipt,
    SenderIdentity,
    WebhookBatch,
)
from connectors.base.push import json_body

#: The ``metadata`` Postroom puts on the replies it sends, to recognise their echoes.
ECHO_MARK = "postroom:"
#: ``referral.source`` of a Click-to-Messenger / Click-to-Direct ad.
AD_SOURCE = "ADS"
#: Meta's attachment types -> a MIME type good enough to file them.
ATTACHMENT_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg", "file": "application/octet-stream"}


def parse_body(inbox_id: int, raw: bytes, expected_object: str) -> WebhookBatch:
    """The batch of one verified webhook body."""
    batch = WebhookBatch()
    body = json_body(raw, batch)
    if body is None:
        return batch
    if not isinstance(body, dict) or body.get("object") != expected_object or not isinstance(body.get("entry"), list):
        batch.quarantined.append(Quarantined(f"expected an object={expected_object!r} body with entry[]", body))
        return batch
    for entry in body["entry"]:
        events = entry.get("messaging") if isinstance(entry, dict) else None
        if not isinstance(events, list):
            batch.skipped += 1  # changes[] (feed, comments) and standby are not inbox messages
            continue
        for event in events:
            try:
                _event(inbox_id, event, batch)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                batch.quarantined.append(Quarantined(f"unreadable messaging event: {type(exc).__name__}: {exc}", event))
    return batch


def _event(inbox_id: int, event: dict[str, Any], batch: WebhookBatch) -> None:
    sender = str(event["sender"]["id"])
    recipient = str(event["recipient"]["id"])
    at = _time(event.get("timestamp"))
    if "message" in event:
        message = event["message"]
        if message.get("is_echo"):
            if str(message.get("metadata") or "").startswith(ECHO_MARK):
                batch.skipped += 1
                return
            batch.messages.append(_message(inbox_id, message, customer=recipient, at=at, direction="outgoing"))
        else:
            parsed = _message(inbox_id, message, customer=sender, at=at, direction="incoming")
            _refer(parsed, message.get("referral") or event.get("referral"), at)
            batch.messages.append(parsed)
    elif "postback" in event:
        postback = event["postback"]
        title = postback.get("title") or postback.get("payload") or "(button)"
        source_id = postback.get("mid") or f"postback:{sender}:{event.get('timestamp')}"
        parsed = InboundMessage(
            inbox_id=inbox_id, source_id=str(source_id), sender=SenderIdentity(source_id=sender),
            text=str(title), sent_at=at, metadata={"postback_payload": postback.get("payload")},
        )
        _refer(parsed, postback.get("referral"), at)
        batch.messages.append(parsed)
    elif "referral" in event and event["referral"].get("source") == AD_SOURCE:
        # A user with a thread came back through an ad: no message yet, but the entry
        # point matters for the reply window of the message that follows.
        referral = _ad_referral(event["referral"], at)
        what = referral.get("ad_title") or referral.get("ad_id") or "an ad"
        parsed = InboundMessage(
            inbox_id=inbox_id, source_id=f"referral:{sender}:{event.get('timestamp')}",
            sender=SenderIdentity(source_id=sender), text=f"(opened the conversation from the ad: {what})",
            sent_at=at, automatic=True, metadata={"referral": event["referral"]},
        )
        parsed.conversation_attributes = {"entry_point": "ad", "ad_referral": referral}
        batch.messages.append(parsed)
    elif "delivery" in event:
        delivery = event["delivery"]
        batch.receipts.append(Receipt("delivered", source_ids=[str(m) for m in delivery.get("mids") or []],
                                      recipient=sender, watermark=_time(delivery.get("watermark"))))
    elif "read" in event:
        read = event["read"]
        if read.get("mid"):  # Instagram names the message read
            batch.receipts.append(Receipt("read", source_ids=[str(read["mid"])], recipient=sender))
        else:
            batch.receipts.append(Receipt("read", recipient=sender, watermark=_time(read["watermark"])))
    else:
        batch.skipped += 1  # reactions, other referrals, opt-ins, typing: nothing to store


def _ad_referral(referral: dict[str, Any], at: datetime | None) -> dict[str, Any]:
    """What a conversation keeps of a Click-to-Messenger / Click-to-Direct ad referral."""
    context = referral.get("ads_context_data") or {}
    found = {"source": referral.get("source"), "type": referral.get("type"), "ref": referral.get("ref"),
             "ad_id": referral.get("ad_id"), "ad_title": context.get("ad_title"), "post_id": context.get("post_id"),
             "product_id": context.get("product_id"), "at": at.isoformat() if at else None}
    return {k: str(v) for k, v in found.items() if v}


def _refer(message: InboundMessage, referral: Any, at: datetime | None) -> None:
    """Keep a referral on the message; one from an ad also marks the conversation's entry point."""
    if not isinstance(referral, dict):
        return
    message.metadata["referral"] = referral
    if referral.get("source") == AD_SOURCE:
        message.conversation_attributes = {"entry_point": "ad", "ad_referral": _ad_referral(referral, at)}


def _message(inbox_id: int, message: dict[str, Any], *, customer: str, at: datetime | None,
             direction: str) -> InboundMessage:
    metadata: dict[str, Any] = {}
    if message.get("quick_reply"):
        metadata["quick_reply_payload"] = message["quick_reply"].get("payload")
    attachments = []
    for item in message.get("attachments") or []:
        kind = str(item.get("type") or "file")
        payload = item.get("payload") or {}
        url = payload.get("url")
        if not url:  # location, fallback, template: keep what it said
            metadata.setdefault("attachments", []).append(item)
            continue
        attachments.append(InboundAttachment(
            file_name=_file_name(url), content_type=ATTACHMENT_TYPES.get(kind, "application/octet-stream"),
            external_url=str(url)))
    reply_to = (message.get("reply_to") or {}).get("mid")
    return InboundMessage(
        inbox_id=inbox_id, source_id=str(message["mid"]), sender=SenderIdentity(source_id=customer),
        direction="outgoing" if direction == "outgoing" else "incoming",
        text=message.get("text"), attachments=attachments, sent_at=at,
        in_reply_to=[str(reply_to)] if reply_to else [], metadata=metadata,
    )


def _file_name(url: str) -> str | None:
    name = unquote(urlparse(url).path.rsplit("/", 1)[-1])
    return name or None


def _time(ms: Any) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC)
