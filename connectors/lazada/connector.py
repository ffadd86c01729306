"""The Lazada channel (Lazada Open Platform, IM API).

Pages followed (open.lazada.com, *Lazada Open Platform → Documentation*):

* *API call → Signature algorithm*: every call carries ``app_key``, ``timestamp``
  (milliseconds), ``sign_method=sha256``, ``access_token`` and ``sign``; ``sign`` is
  ``UPPER(hex(HMAC-SHA256(app_secret, api_path + k1v1k2v2…)))`` over all parameters
  sorted by name (``sign`` itself excluded);
* *Seller authorization → Refresh access token*: ``/auth/token/refresh`` on
  ``https://auth.lazada.com/rest`` with ``refresh_token``; answers ``access_token``,
  ``refresh_token``, ``expires_in`` and ``refresh_expires_in`` (seconds);
* *IM → GetSessionList* ``/im/session/list`` (``start_time`` ms, ``page_size``,
  ``last_session_id``; answers ``session_list``, ``has_more``, ``next_start_time``,
  ``last_session_id``), *IM → GetMessages* ``/im/message/list`` (``session_id``,
  ``start_time``, ``page_size``, ``last_message_id``; messages newest first with
  ``content`` a JSON string), *IM → SendMessage* ``/im/message/send`` (``session_id``,
  ``template_id=1``, ``txt``);
* errors: ``{"type", "code", "message", "request_id"}`` with ``code`` other than ``"0"``;
  ``IllegalAccessToken`` (expired or invalid token), ``IncompleteSignature``,
  ``ApiCallLimit`` (rate limit), ``ServiceTimeout`` / ``InternalError``.

Settings: ``api_base_url`` (the country's REST base, e.g. ``https://api.lazada.co.th/rest``),
``auth_base_url`` (default ``https://auth.lazada.com/rest``), ``poll_interval``. Secrets:
``app_key``, ``app_secret``, ``access_token``, ``refresh_token``.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.base import ConnectorConfig, InboundMessage, OutboundMessage
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

DEFAULT_BASE_URL = "https://api.lazada.com.my/rest"
DEFAULT_AUTH_URL = "https://auth.lazada.com/rest"
REFRESH_PATH = "/auth/token/refresh"
LIST_PATH = "/im/session/list"
MESSAGES_PATH = "/im/message/list"
SEND_PATH = "/im/message/send"
PAGE_SIZE = 50
#: Message templates (IM API): 1 text, 3 image, 4 emoji, 6 video, 10006 item, 10007 order.
TEXT, IMAGE, ITEM, ORDER = 1, 3, 10006, 10007
EXPIRED = {"IllegalAccessToken", "AccessTokenExpired"}
AUTH = {"IncompleteSignature", "InvalidAppKey", "IllegalRefreshToken", "AppWhiteIpLimit", "InsufficientPermission"}
RATE = {"ApiCallLimit", "AppCallLimit", "SellerCallLimit"}
TRANSIENT = {"ServiceTimeout", "InternalError", "ServiceUnavailable", "SystemError"}


def sign(app_secret: str, path: str, params: dict[str, Any]) -> str:
    """Lazada's signature over the API path and the sorted parameters."""
    base = path + "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hmac_sha256_hex(app_secret, base, upper=True)


def classify(status: int, body: Any) -> PlatformError | None:
    """The error a Lazada answer carries, or None for a result."""
    body = body if isinstance(body, dict) else {}
    code = str(body.get("code", "") if body else status)
    if status == 200 and code == "0":
        return None
    return platform_error(code, status, str(body.get("message") or f"HTTP {status}"), expired=code in EXPIRED,
                          rate=code in RATE, auth=code in AUTH, transient=code in TRANSIENT)


class LazadaConnector(MarketplaceConnector):
    """One Lazada seller's buyer chats."""

    channel_type = "lazada"
    default_base_url = DEFAULT_BASE_URL
    images_refused = ("Lazada's IM API sends an image only as the URL of an image Lazada already hosts "
                      "(template 3, img_url); Postroom does not upload images to Lazada: send the image "
                      "in Lazada Seller Center")

    def __init__(self, config: ConnectorConfig) -> None:
        self.app_key = config.secret("app_key")
        self.app_secret = config.secret("app_secret")
        self.auth_url = url_setting(config.settings, "auth_base_url", DEFAULT_AUTH_URL)
        super().__init__(config)

    def platform_secrets(self) -> list[str]:
        """The app secret."""
        return [self.app_secret]

    async def _request(self, method: str, base: str, path: str, token: str | None,
                       params: dict[str, Any]) -> Any:
        signed: dict[str, Any] = {"app_key": self.app_key, "timestamp": int(time.time() * 1000),
                                  "sign_method": "sha256", **params}
        if token is not None:
            signed["access_token"] = token
        signed["sign"] = sign(self.app_secret, path, signed)
        kwargs = {"params": signed} if method == "GET" else {"data": signed}
        return answer_body(await self.http.request(method, base + path, **kwargs), classify)

    async def refresh_tokens(self, refresh_token: str) -> TokenGrant:
        """``/auth/token/refresh``."""
        body = await self._request("POST", self.auth_url, REFRESH_PATH, None, {"refresh_token": refresh_token})
        now = time.time()
        refresh_in = body.get("refresh_expires_in")
        return TokenGrant(str(body["access_token"]), str(body.get("refresh_token") or "") or None,
                          now + float(body.get("expires_in") or 604800),
                          now + float(refresh_in) if refresh_in else None)

    async def conversations_page(self, token: str, page: Any) -> Page:
        """One page of ``/im/session/list``, newest activity first."""
        params: dict[str, Any] = {"page_size": PAGE_SIZE,
                                  "start_time": page[0] if page else int(time.time() * 1000) + 60_000}
        if page:
            params["last_session_id"] = page[1]
        data = (await self._request("GET", self.base_url, LIST_PATH, token, params)).get("data") or {}
        items = [
            ConversationRef(id=str(s["session_id"]), last_message_at=int(s.get("last_message_time") or 0) / 1000,
                            buyer_id=str(s.get("buyer_id")) if s.get("buyer_id") is not None else None,
                            buyer_name=s.get("title"), buyer_avatar=s.get("head_url"))
            for s in data.get("session_list") or []
        ]
        more = data.get("has_more") and data.get("next_start_time") is not None
        return Page(items, [int(data["next_start_time"]), str(data.get("last_session_id") or "")] if more else None)

    async def messages_page(self, token: str, conversation: ConversationRef, page: Any) -> Page:
        """One page of ``/im/message/list``, newest first."""
        params: dict[str, Any] = {"session_id": conversation.id, "page_size": PAGE_SIZE,
                                  "start_time": page[0] if page else int(time.time() * 1000) + 60_000}
        if page:
            params["last_message_id"] = page[1]
        data = (await self._request("GET", self.base_url, MESSAGES_PATH, token, params)).get("data") or {}
        more = data.get("has_more") and data.get("next_start_time") is not None
        return Page(data.get("message_list") or [],
                    [int(data["next_start_time"]), str(data.get("last_message_id") or "")] if more else None)

    def message_time(self, raw: dict[str, Any]) -> float:
        """``send_time`` (milliseconds)."""
        return int(raw.get("send_time") or 0) / 1000

    def parse_message(self, conversation: ConversationRef, raw: dict[str, Any]) -> InboundMessage | None:
        """A Lazada message; system messages (``type`` 2) are skipped, recalled ones noted."""
        if int(raw.get("type") or 1) == 2:
            return None
        content = json_content(raw.get("content"), "txt")
        template = int(raw.get("template_id") or TEXT)
        from_buyer = int(raw.get("from_account_type") or 1) == 1
        text = content.get("txt")
        attachments = []
        if int(raw.get("status") or 0) == 1:
            text = "[Lazada: message recalled by the sender]"
        elif template == IMAGE and content.get("imgUrl"):
            attachments.append(image_attachment(str(content["imgUrl"])))
        elif not text:
            text = _note(template, content)
        buyer_id = conversation.buyer_id or str(raw.get("from_account_id" if from_buyer else "to_account_id"))
        return self.buyer_message(
            conversation, raw, source_id=str(raw["message_id"]), buyer_id=buyer_id, incoming=from_buyer,
            text=text, attachments=attachments, automatic=bool(raw.get("auto_reply")),
            metadata={"lazada_template_id": template},
            order_id=content.get("orderId") if template == ORDER else None,
            product_id=content.get("itemId") if template == ITEM else None)

    async def send_reply(self, token: str, message: OutboundMessage) -> str:
        """``/im/message/send`` into the conversation's session."""
        if not message.conversation_thread_key:
            raise PlatformError("refused", "MissingParameter", "the conversation has no Lazada session id")
        body = await self._request("POST", self.base_url, SEND_PATH, token, {
            "session_id": message.conversation_thread_key, "template_id": TEXT, "txt": message.text})
        return str((body.get("data") or {})["message_id"])


def _note(template: int, content: dict[str, Any]) -> str:
    return placeholder_text("Lazada", "image", order_id=content.get("orderId") if template == ORDER else None,
                            product_id=content.get("itemId") if template == ITEM else None,
                            url=content.get("imgUrl") if template == IMAGE else None,
                            fallback=f"[Lazada message (template {template}): not shown in Postroom]")
