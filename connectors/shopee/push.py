"""Shopee's push notifications for new chat messages (Open Platform v2 *Push Mechanism*,
push code 10, ``webchat_push``).

Shopee POSTs JSON to the app's callback URL and signs each call: the ``Authorization``
header is ``hex(HMAC-SHA256(push key, callback URL + "|" + raw body))``, where the push key
is the app's partner key (or the separate *live push partner key* the console shows for
some apps). The body is ``{"msg_id", "code", "shop_id", "timestamp", "data"}``; for code 10
``data.type`` is ``"message"`` (``data.content`` is the chat message, with the fields
``get_message`` answers: ``message_id``, ``conversation_id``, ``from_id``,
``from_user_name``, ``to_id``, ``to_user_name``, ``message_type``, ``content``,
``created_timestamp``…) or ``"notification"`` (read marks and the like: nothing to store).

A pushed message keeps the message id and conversation id the poller uses, so ingest's
``UNIQUE(inbox_id, source_id)`` stores it once whichever path sees it first, and a
redelivery is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from connectors.base.marketplace import ConversationRef
from connectors.base.messages import InboundMessage
from connectors.base.push import (
    Quarantined,
    SignatureInvalid,
    WebhookBatch,
    WebhookRequest,
    hmac_sha256_matches,
    json_body,
)

#: ``code`` of the chat push (``webchat_push``).
WEBCHAT_PUSH = 10


def signed_part(url: str, body: bytes) -> bytes:
    """What Shopee signs: the callback URL, ``|``, the raw body."""
    return url.encode() + b"|" + body


def verify_push(push_key: str, url: str, request: WebhookRequest) -> None:
    """:class:`SignatureInvalid` unless ``Authorization`` signs ``url|body`` (constant time).

    An entirely empty body is the reachability check the Shopee console makes when the
    callback URL is saved: it carries nothing to store, so it is let through unsigned.
    """
    if not request.body.strip():
        return
    provided = request.headers.get("authorization")
    if not provided:
        raise SignatureInvalid("Authorization is missing", missing=True)
    if not hmac_sha256_matches(push_key, signed_part(url, request.body), provided.lower(), encoding="hex"):
        raise SignatureInvalid("Authorization does not match the callback URL and body")


def parse_push(request: WebhookRequest, shop_id: str,
               parse_message: Callable[[ConversationRef, dict[str, Any]], InboundMessage | None],
               is_shop: Callable[[dict[str, Any]], bool]) -> WebhookBatch:
    """The chat message a verified push carries (other pushes and other shops' are skipped).

    ``parse_message`` is the connector's own reading of a ``get_message`` item, so a
    pushed message and a polled one become the same ``InboundMessage``.
    """
    batch = WebhookBatch()
    if not request.body.strip():
        return batch
    body = json_body(request.body, batch)
    if body is None:
        return batch
    if not isinstance(body, dict) or body.get("code") != WEBCHAT_PUSH:
        batch.skipped += 1  # another push type (orders, tracking…): the chat channel has no use for it
        return batch
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    if str(body.get("shop_id") or "") != shop_id:
        batch.skipped += 1  # another shop of the same partner app: its own inbox's poller reads it
        return batch
    if data.get("type") != "message":
        batch.skipped += 1
        return batch
    content = data.get("content")
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            content = None
    ref = str(body.get("msg_id") or "") or None
    if not isinstance(content, dict) or not content.get("message_id") or not content.get("conversation_id"):
        batch.quarantined.append(Quarantined("a chat push without message_id or conversation_id", body, ref))
        return batch
    outgoing = is_shop(content)
    buyer_id = str(content.get("to_id") if outgoing else content.get("from_id") or "")
    buyer_name = content.get("to_user_name") if outgoing else content.get("from_user_name")
    conversation = ConversationRef(id=str(content["conversation_id"]),
                                   last_message_at=float(content.get("created_timestamp") or 0),
                                   buyer_id=buyer_id or None, buyer_name=buyer_name or None)
    try:
        message = parse_message(conversation, content)
    except (KeyError, TypeError, ValueError) as exc:
        batch.quarantined.append(Quarantined(f"an unreadable chat push: {type(exc).__name__}", body, ref))
        return batch
    if message is None:
        batch.skipped += 1
    else:
        message.metadata = {**message.metadata, "shopee_delivery": "push"}
        batch.messages.append(message)
    return batch
