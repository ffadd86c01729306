"""The TikTok Shop channel (TikTok Shop Partner API, customer service, version 202309).

Pages followed (partner.tiktokshop.com/docv2, *TikTok Shop API*):

* *Sign your API request*: the query parameters except ``sign`` and ``access_token``,
  sorted by name, as ``k1v1k2v2…``, after the path, then the JSON body (when the request
  is not multipart), wrapped in the app secret on both sides:
  ``sign = hex(HMAC-SHA256(app_secret, app_secret + path + params + body + app_secret))``;
  the access token goes in the ``x-tts-access-token`` header; ``app_key``,
  ``timestamp`` (seconds) and ``shop_cipher`` are query parameters;
* *Authorization → Refresh access token*: ``GET https://auth.tiktok-shops.com/api/v2/token/refresh``
  with ``app_key``, ``app_secret``, ``refresh_token``, ``grant_type=refresh_token``;
  ``access_token_expire_in`` and ``refresh_token_expire_in`` are Unix times;
* *Customer Service → Get Conversations* ``GET /customer_service/202309/conversations``
  (``page_size``, ``page_token``; answers ``conversations`` and ``next_page_token``),
  *Get Conversation Messages* ``GET /customer_service/202309/conversations/{id}/messages``
  (``page_size``, ``page_token``, ``sort_order``, ``sort_field``; ``content`` is a JSON
  string), *Send Message* ``POST /customer_service/202309/conversations/{id}/messages``
  (``{"type": "TEXT", "content": "{\\"content\\": …}"}``);
* answers ``{"code", "message", "data", "request_id"}``; ``code`` 0 is success.

Settings: ``api_base_url`` (default ``https://open-api.tiktokglobalshop.com``),
``auth_base_url`` (default ``https://auth.tiktok-shops.com``), ``shop_cipher``,
``poll_interval``. Secrets: ``app_key``, ``app_secret``, ``access_token``, ``refresh_token``.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from connectors.base import ConnectorConfig, InboundMessage, NotConfigured, OutboundMessage
from connectors.base.marketplace import (
    ConversationRef,
    MarketplaceConnector,
    Page,
    PlatformError,
    TokenGrant,
    answer_body,
    hmac_sha256_hex,
    json_content,
    placeholder_text,
    platform_error,
    url_setting,
)
from connectors.base.marketplace_media import image_attachment

DEFAULT_BASE_URL = "https://open-api.tiktokglobalshop.com"
DEFAULT_AUTH_URL = "https://auth.tiktok-shops.com"
VERSION = "202309"
REFRESH_PATH = "/api/v2/token/refresh"
LIST_PATH = f"/customer_service/{VERSION}/conversations"
MESSAGES_PATH = f"/customer_service/{VERSION}/conversations/{{conversation_id}}/messages"
PAGE_SIZE = 20
#: Error codes (TikTok Shop API *Common error codes*): expired token, refused credentials.
EXPIRED = {105002}
AUTH = {105000, 105001, 105003, 106001, 106002, 106011}
RATE = {36009004, 429}
BUYER_ROLES = {"BUYER"}
AUTOMATIC_ROLES = {"ROBOT", "SYSTEM"}


def sign(app_secret: str, path: str, params: dict[str, Any], body: bytes = b"") -> str:
    """TikTok Shop's request signature."""
    base = path + "".join(f"{k}{params[k]}" for k in sorted(params) if k not in ("sign", "access_token"))
    return hmac_sha256_hex(app_secret, app_secret.encode() + base.encode() + body + app_secret.encode())


def classify(status: int, body: Any) -> PlatformError | None:
    """The error a TikTok Shop answer carries, or None for a result."""
    body = body if isinstance(body, dict) else {}
    try:
        code = int(body.get("code", status if status != 200 else -1))
    except (TypeError, ValueError):
        code = -1
    if status == 200 and code == 0:
        return None
    return platform_error(code, status, str(body.get("message") or f"HTTP {status}"), expired=code in EXPIRED,
                          rate=code in RATE, auth=code in AUTH or status == 401,
                          transient=36009000 <= code < 36010000)


class TikTokShopConnector(MarketplaceConnector):
    """One TikTok Shop's customer service conversations."""

    channel_type = "tiktok_shop"
    default_base_url = DEFAULT_BASE_URL
    images_refused = ("images are not sent to TikTok Shop from Postroom (the customer-service image upload "
                      "was not confirmed on TikTok's pages): send the image in TikTok Shop Seller Center")

    def __init__(self, config: ConnectorConfig) -> None:
        self.app_key = config.secret("app_key")
        self.app_secret = config.secret("app_secret")
        self.shop_cipher = str(config.settings.get("shop_cipher") or "").strip()
        if not self.shop_cipher:
            raise NotConfigured("shop_cipher is not set")
        self.auth_url = url_setting(config.settings, "auth_base_url", DEFAULT_AUTH_URL)
        super().__init__(config)

    def platform_secrets(self) -> list[str]:
        """The app secret."""
        return [self.app_secret]

    async def _request(self, method: str, path: str, token: str, *, params: dict[str, Any] | None = None,
                       body: dict[str, Any] | None = None) -> Any:
        query: dict[str, Any] = {"app_key": self.app_key, "timestamp": int(time.time()),
                                 "shop_cipher": self.shop_cipher, **(params or {})}
        raw = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        query["sign"] = sign(self.app_secret, path, query, raw)
        headers = {"x-tts-access-token": token, "Content-Type": "application/json"}
        answer = await self.http.request(method, self.base_url + path, params=query, headers=headers,
                                         content=raw or None)
        return self._result(answer)

    def _result(self, answer: Any) -> Any:
        return answer_body(answer, classify).get("data") or {}

    async def refresh_tokens(self, refresh_token: str) -> TokenGrant:
        """``GET /api/v2/token/refresh`` on the auth host."""
        answer = await self.http.request("GET", self.auth_url + REFRESH_PATH, params={
            "app_key": self.app_key, "app_secret": self.app_secret, "refresh_token": refresh_token,
            "grant_type": "refresh_token"})
        data = self._result(answer)
        refresh_at = data.get("refresh_token_expire_in")
        return TokenGrant(str(data["access_token"]), str(data.get("refresh_token") or "") or None,
                          float(data.get("access_token_expire_in") or time.time() + 7 * 86400),
                          float(refresh_at) if refresh_at else None)

    async def conversations_page(self, token: str, page: Any) -> Page:
        """One page of *Get Conversations*, newest activity first."""
        params: dict[str, Any] = {"page_size": PAGE_SIZE}
        if page:
            params["page_token"] = page
        data = await self._request("GET", LIST_PATH, token, params=params)
        items = []
        for c in data.get("conversations") or []:
            buyer = next((p for p in c.get("participants") or [] if p.get("role") in BUYER_ROLES), {})
            latest = c.get("latest_message") or {}
            items.append(ConversationRef(
                id=str(c["id"]), last_message_at=float(latest.get("create_time") or c.get("create_time") or 0),
                buyer_id=str(buyer.get("user_id") or buyer.get("im_user_id") or "") or None,
                buyer_name=buyer.get("nickname"), buyer_avatar=buyer.get("avatar")))
        return Page(items, data.get("next_page_token") or None)

    async def messages_page(self, token: str, conversation: ConversationRef, page: Any) -> Page:
        """One page of *Get Conversation Messages*, newest first."""
        params: dict[str, Any] = {"page_size": PAGE_SIZE, "sort_order": "DESC", "sort_field": "create_time"}
        if page:
            params["page_token"] = page
        path = MESSAGES_PATH.format(conversation_id=quote(conversation.id, safe=""))
        data = await self._request("GET", path, token, params=params)
        return Page(data.get("messages") or [], data.get("next_page_token") or None)

    def message_time(self, raw: dict[str, Any]) -> float:
        """``create_time`` (seconds)."""
        return float(raw.get("create_time") or 0)

    def parse_message(self, conversation: ConversationRef, raw: dict[str, Any]) -> InboundMessage | None:
        """A TikTok Shop message; invisible ones (``is_visible`` false) are skipped."""
        if raw.get("is_visible") is False:
            return None
        sender = raw.get("sender") or {}
        role = str(sender.get("role") or "BUYER")
        kind = str(raw.get("type") or "TEXT")
        content = json_content(raw.get("content"), "content")
        text = content.get("content") if kind == "TEXT" else None
        attachments = []
        if kind == "IMAGE" and content.get("url"):
            attachments.append(image_attachment(str(content["url"])))
        elif not text:
            text = _note(kind, content)
        buyer_id = conversation.buyer_id or str(sender.get("im_user_id") or "unknown")
        return self.buyer_message(
            conversation, raw, source_id=str(raw["id"]), buyer_id=buyer_id, incoming=role in BUYER_ROLES,
            text=text, attachments=attachments, automatic=role in AUTOMATIC_ROLES,
            metadata={"tiktok_message_type": kind, "tiktok_sender_role": role},
            order_id=content.get("order_id") if kind == "ORDER_CARD" else None,
            product_id=content.get("product_id") if kind == "PRODUCT_CARD" else None)

    async def send_reply(self, token: str, message: OutboundMessage) -> str:
        """*Send Message* into the conversation."""
        if not message.conversation_thread_key:
            raise PlatformError("refused", 400, "the conversation has no TikTok Shop conversation id")
        path = MESSAGES_PATH.format(conversation_id=quote(message.conversation_thread_key, safe=""))
        data = await self._request("POST", path, token, body={
            "type": "TEXT", "content": json.dumps({"content": message.text}, ensure_ascii=False)})
        return str(data["message_id"])


def _note(kind: str, content: dict[str, Any]) -> str:
    return placeholder_text("TikTok Shop", kind.lower(),
                            order_id=content.get("order_id") if kind == "ORDER_CARD" else None,
                            product_id=content.get("product_id") if kind == "PRODUCT_CARD" else None,
                            url=content.get("url"))
