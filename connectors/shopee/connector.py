"""The Shopee channel (Open Platform v2, seller chat).

Pages followed (open.shopee.com, Open Platform v2 API reference):

* request signing and common parameters: *Developer Guide → API calls → Signature*
  (``sign = hex(HMAC-SHA256(partner_key, partner_id + path + timestamp + access_token +
  shop_id))``; public calls sign ``partner_id + path + timestamp``);
* tokens: *v2.public.refresh_access_token* (``POST /api/v2/auth/access_token/get``; the
  access token lives 4 hours, ``expire_in`` seconds; each refresh returns a new
  refresh token, valid 30 days);
* ``GET /api/v2/sellerchat/get_conversation_list`` (*v2.sellerchat.get_conversation_list*,
  module 109): ``direction``, ``type``, ``next_timestamp_nano``, ``page_size``; answers
  ``conversations`` and ``page_result.{more, next_cursor.next_message_time_nano}``;
* ``GET /api/v2/sellerchat/get_message`` (*v2.sellerchat.get_message*): ``conversation_id``,
  ``offset``, ``page_size``; answers ``messages`` newest first and
  ``page_result.next_offset``;
* ``POST /api/v2/sellerchat/send_message`` (*v2.sellerchat.send_message*): ``to_id``,
  ``message_type``, ``content.text`` (``"text"``) or ``content.image_url`` (``"image"``);
* ``POST /api/v2/sellerchat/upload_image`` (*v2.sellerchat.upload_image*): multipart
  ``file`` (jpg, jpeg, png or gif); answers ``response.url``, to send as an image message.
  An image message received carries ``content.url``.

New chat messages also arrive by push (*Push Mechanism*, code 10: ``connectors/shopee/push.py``)
at the inbox's ``webhook_url``; polling stays on as the backfill, and both paths store a
message once (same ``source_id``).

Settings: ``partner_id``, ``shop_id``, ``api_base_url`` (default
``https://partner.shopeemobile.com``), ``poll_interval``, ``push_url`` (the callback URL
exactly as entered in the Shopee console, when it differs from the URL Postroom sees
behind a proxy). Secrets: ``partner_key``, ``push_partner_key`` (when the console shows
a separate live push partner key), ``access_token``, ``refresh_token`` (and
``access_token_expires_at``, written back after each refresh). Ids above 2**53
(conversation and message ids) are kept as text.
"""

from __future__ import annotations

import json
import time
from typing import Any

from connectors.base import (
    ConnectorConfig,
    InboundMessage,
    NotConfigured,
    OutboundMessage,
    PushConnector,
    WebhookBatch,
    WebhookRequest,
)
from connectors.base.marketplace import (
    ConversationRef,
    MarketplaceConnector,
    Page,
    PlatformError,
    TokenGrant,
    answer_body,
    hmac_sha256_hex,
    placeholder_text,
    platform_error,
)
from connectors.base.marketplace_media import download_attachments, image_attachment
from connectors.base.messages import InboundAttachment
from connectors.shopee.push import parse_push, verify_push

DEFAULT_BASE_URL = "https://partner.shopeemobile.com"
CONVERSATION_PAGE = 50
MESSAGE_PAGE = 50
REFRESH_PATH = "/api/v2/auth/access_token/get"
LIST_PATH = "/api/v2/sellerchat/get_conversation_list"
MESSAGES_PATH = "/api/v2/sellerchat/get_message"
SEND_PATH = "/api/v2/sellerchat/send_message"
UPLOAD_IMAGE_PATH = "/api/v2/sellerchat/upload_image"
#: What ``upload_image`` takes.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif")
#: Image downloads inside a push call, at most (Shopee wants a quick answer).
PUSH_DOWNLOAD_SECONDS = 3.0
#: ``error`` values meaning the access token ran out (Shopee spells one of them this way).
EXPIRED = {"invalid_acceess_token", "invalid_access_token", "error_token_expired"}
AUTH = {"error_auth", "error_sign", "error_permission", "invalid_partner_id", "invalid_shop_id"}
RATE = {"error_too_many_request", "error_rate_limit"}
TRANSIENT = {"error_server", "error_inner", "error_busy", "error_network"}


def sign(partner_key: str, partner_id: str, path: str, timestamp: int,
         access_token: str = "", shop_id: str = "") -> str:
    """Shopee's request signature (shop calls add the access token and shop id)."""
    return hmac_sha256_hex(partner_key, f"{partner_id}{path}{timestamp}{access_token}{shop_id}")


def classify(status: int, body: Any) -> PlatformError | None:
    """The error a Shopee answer carries, or None for a result."""
    body = body if isinstance(body, dict) else {}
    error = str(body.get("error") or "")
    if status == 200 and not error:
        return None
    text = str(body.get("message") or f"HTTP {status}")
    expired = error in EXPIRED or (error == "error_auth" and "expire" in text.lower())
    return platform_error(error or status, status, text, expired=expired, rate=error in RATE, auth=error in AUTH,
                          transient=error in TRANSIENT)


class ShopeeConnector(MarketplaceConnector, PushConnector):
    """One Shopee shop's buyer chats: polled, and pushed to the inbox's webhook."""

    empty_acknowledgement = True
    images_refused = None

    channel_type = "shopee"
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, config: ConnectorConfig) -> None:
        settings = config.settings
        self.partner_key = config.secret("partner_key")
        self.push_key = str(config.secrets.get("push_partner_key") or "").strip() or self.partner_key
        self.push_url = str(settings.get("push_url") or "").strip()
        self.partner_id = str(settings.get("partner_id") or "").strip()
        self.shop_id = str(settings.get("shop_id") or "").strip()
        if not self.partner_id.isdigit() or not self.shop_id.isdigit():
            raise NotConfigured("partner_id and shop_id must be set (numbers)")
        super().__init__(config)

    def platform_secrets(self) -> list[str]:
        """The partner key (and the push key)."""
        return [self.partner_key, self.push_key]

    # -- push (code 10) ----------------------------------------------------------------------
    def verify(self, request: WebhookRequest) -> None:
        """Check ``Authorization`` against the callback URL and the raw body."""
        verify_push(self.push_key, self.push_url or request.url, request)

    def parse(self, request: WebhookRequest) -> WebhookBatch:
        """The chat message a push carries, read as the poller reads it."""
        return parse_push(request, self.shop_id, self.parse_message, self._from_shop)

    async def complete(self, batch: WebhookBatch) -> None:
        """Fetch pushed images' bytes, briefly (those that take longer keep their URL)."""
        await download_attachments(self.http.client, batch.messages, timeout=PUSH_DOWNLOAD_SECONDS)

    def _from_shop(self, raw: dict[str, Any]) -> bool:
        return str(raw.get("from_shop_id") or "") == self.shop_id or str(raw.get("from_id")) == self.shop_id

    async def _request(self, method: str, path: str, token: str | None, *,
                       params: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
                       files: dict[str, tuple[str, bytes, str]] | None = None) -> Any:
        timestamp = int(time.time())
        query: dict[str, Any] = {"partner_id": self.partner_id, "timestamp": timestamp}
        if token is None:
            query["sign"] = sign(self.partner_key, self.partner_id, path, timestamp)
        else:
            query.update(access_token=token, shop_id=self.shop_id,
                         sign=sign(self.partner_key, self.partner_id, path, timestamp, token, self.shop_id))
        query.update(params or {})
        kwargs: dict[str, Any] = {"params": query}
        if files is not None:
            kwargs["files"] = files
        elif body is not None:
            kwargs["content"] = json.dumps(body, ensure_ascii=False).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        return answer_body(await self.http.request(method, self.base_url + path, **kwargs), classify)

    async def refresh_tokens(self, refresh_token: str) -> TokenGrant:
        """``POST /api/v2/auth/access_token/get`` (a public call: signed without a token)."""
        body = await self._request("POST", REFRESH_PATH, None, body={
            "refresh_token": refresh_token, "partner_id": int(self.partner_id), "shop_id": int(self.shop_id)})
        return TokenGrant(str(body["access_token"]), str(body.get("refresh_token") or "") or None,
                          time.time() + float(body.get("expire_in") or 14400))

    async def conversations_page(self, token: str, page: Any) -> Page:
        """One page of ``get_conversation_list``, newest activity first."""
        params: dict[str, Any] = {"direction": "older", "type": "all", "page_size": CONVERSATION_PAGE}
        if page:
            params["next_timestamp_nano"] = page
        body = await self._request("GET", LIST_PATH, token, params=params)
        response = body.get("response") or {}
        items = [
            ConversationRef(
                id=str(c["conversation_id"]),
                last_message_at=int(c.get("last_message_timestamp") or 0) / 1e9,
                buyer_id=str(c.get("to_id")) if c.get("to_id") is not None else None,
                buyer_name=c.get("to_name"),
                buyer_avatar=c.get("to_avatar"),
            )
            for c in response.get("conversations") or []
        ]
        result = response.get("page_result") or {}
        cursor = (result.get("next_cursor") or {}).get("next_message_time_nano")
        return Page(items, str(cursor) if result.get("more") and cursor else None)

    async def messages_page(self, token: str, conversation: ConversationRef, page: Any) -> Page:
        """One page of ``get_message``, newest first."""
        params: dict[str, Any] = {"conversation_id": conversation.id, "page_size": MESSAGE_PAGE}
        if page:
            params["offset"] = page
        body = await self._request("GET", MESSAGES_PATH, token, params=params)
        response = body.get("response") or {}
        messages = response.get("messages") or []
        next_offset = (response.get("page_result") or {}).get("next_offset")
        more = bool(next_offset) and str(next_offset) != "0" and len(messages) > 0
        return Page(messages, str(next_offset) if more else None)

    def message_time(self, raw: dict[str, Any]) -> float:
        """``created_timestamp`` (seconds)."""
        return float(raw.get("created_timestamp") or 0)

    def parse_message(self, conversation: ConversationRef, raw: dict[str, Any]) -> InboundMessage | None:
        """A Shopee message: text, or a note naming an order, product, image or sticker."""
        from_shop = self._from_shop(raw)
        content = raw.get("content") or {}
        kind = str(raw.get("message_type") or "text")
        source = raw.get("source_content") or {}
        order_id = content.get("order_sn") or source.get("order_sn")
        product_id = content.get("item_id") or source.get("item_id")
        text = content.get("text")
        attachments = []
        if kind == "image" and content.get("url"):
            attachments.append(image_attachment(str(content["url"])))
        elif not text:
            text = _note(kind, content)
        buyer_id = conversation.buyer_id or str(raw.get("to_id") if from_shop else raw.get("from_id"))
        return self.buyer_message(
            conversation, raw, source_id=str(raw["message_id"]), buyer_id=buyer_id, incoming=not from_shop,
            text=text, attachments=attachments, metadata={"shopee_message_type": kind},
            order_id=order_id, product_id=product_id)

    async def send_reply(self, token: str, message: OutboundMessage) -> str:
        """``send_message`` to the buyer (``to_id`` is the buyer's user id)."""
        if not message.recipient_source_id.isdigit():
            raise PlatformError("refused", "error_param", "the buyer's Shopee user id is unknown")
        body = await self._request("POST", SEND_PATH, token, body={
            "to_id": int(message.recipient_source_id), "message_type": "text",
            "content": {"text": message.text}})
        return str((body.get("response") or {})["message_id"])


    async def send_image(self, token: str, message: OutboundMessage, image: InboundAttachment) -> str:
        """``upload_image``, then ``send_message`` with ``message_type: "image"``."""
        if not message.recipient_source_id.isdigit():
            raise PlatformError("refused", "error_param", "the buyer's Shopee user id is unknown")
        if image.content_type not in IMAGE_TYPES:
            raise PlatformError("refused", "error_param",
                                f"Shopee chat takes jpg, png or gif images, not {image.content_type}")
        assert image.data is not None
        uploaded = await self._request("POST", UPLOAD_IMAGE_PATH, token, files={
            "file": (image.file_name or "image", image.data, image.content_type)})
        url = (uploaded.get("response") or {}).get("url")
        if not url:
            raise PlatformError("transient", "error_server", "upload_image answered no url")
        body = await self._request("POST", SEND_PATH, token, body={
            "to_id": int(message.recipient_source_id), "message_type": "image", "content": {"image_url": url}})
        return str((body.get("response") or {})["message_id"])


def _note(kind: str, content: dict[str, Any]) -> str:
    return placeholder_text("Shopee", kind, order_id=content.get("order_sn") if kind == "order" else None,
                            product_id=content.get("item_id") if kind == "item" else None, url=content.get("url"))
