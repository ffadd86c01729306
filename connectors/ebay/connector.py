"""The eBay channel (REST Message API, ``commerce/message/v1``).

Pages followed (developer.ebay.com):

* *Message API → getConversations* ``GET /conversation`` (``conversation_type``
  ``FROM_MEMBERS``, ``limit`` at most 50, ``offset``; answers ``conversations`` of
  *ConversationDetail* — ``conversationId``, ``conversationTitle``, ``latestMessage``,
  ``referenceId`` / ``referenceType`` (``LISTING``: the item id), ``unreadCount`` — and
  ``next`` when a further page exists);
* *getConversation* ``GET /conversation/{conversation_id}`` (``conversation_type``,
  ``limit``, ``offset``; answers ``messages`` of *MessageDetail* — ``messageId``,
  ``messageBody``, ``createdDate``, ``senderUsername``, ``recipientUsername``,
  ``messageMedia`` — and ``next``);
* *sendMessage* ``POST /send_message`` (``conversationId``, ``messageText``);
* *OAuth → Using a refresh token to update a User access token*:
  ``POST /identity/v1/oauth2/token`` with HTTP Basic ``client_id:client_secret``,
  ``grant_type=refresh_token``, ``refresh_token``, ``scope``; the access token lives
  7,200 s (``expires_in``) and the refresh token (18 months) is not replaced;
* errors: ``{"errors": [{"errorId", "domain", "category", "message"}]}``; 401 with
  error 1001 *Invalid access token*; 429 when a call limit is reached.

REST calls are authorised by the OAuth user token (``Authorization: Bearer``); eBay
signs nothing else. The order of messages inside a conversation is not stated, so every
page of a changed conversation is read and filtered by time.

Settings: ``client_id`` (the app id), ``seller_username``, ``api_base_url`` (default
``https://api.ebay.com``), ``oauth_scope``, ``poll_interval``. Secrets: ``client_secret``,
``access_token``, ``refresh_token``.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from connectors.base import ConnectorConfig, InboundMessage, NotConfigured, OutboundMessage, SenderIdentity
from connectors.base.marketplace import (
    ConversationRef,
    MarketplaceConnector,
    Page,
    PlatformError,
    TokenGrant,
    http_kind,
    order_attributes,
    retry_after_header,
)

DEFAULT_BASE_URL = "https://api.ebay.com"
BASE_PATH = "/commerce/message/v1"
LIST_PATH = BASE_PATH + "/conversation"
MESSAGES_PATH = BASE_PATH + "/conversation/{conversation_id}"
SEND_PATH = BASE_PATH + "/send_message"
TOKEN_PATH = "/identity/v1/oauth2/token"
DEFAULT_SCOPE = "https://api.ebay.com/oauth/api_scope/commerce.message"
PAGE_SIZE = 50


def parse_time(value: str | None) -> float:
    """Unix seconds of an eBay ISO 8601 date (``2026-11-30T09:15:00.000Z``)."""
    if not value:
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def classify(status: int, body: Any) -> PlatformError | None:
    """The error an eBay answer carries, or None for a result."""
    if 200 <= status < 300:
        return None
    body = body if isinstance(body, dict) else {}
    if "error" in body:  # the OAuth token endpoint's own shape
        kind = "auth" if body.get("error") in ("invalid_grant", "invalid_client") else http_kind(status)
        return PlatformError(kind, body["error"], str(body.get("error_description") or ""))
    errors = body.get("errors") or [{}]
    code = errors[0].get("errorId", status)
    text = str(errors[0].get("message") or f"HTTP {status}")
    if status == 401 or code == 1001:
        return PlatformError("expired", code, text)
    return PlatformError(http_kind(status), code, text)


class EbayConnector(MarketplaceConnector):
    """One eBay seller's member-to-member conversations."""

    channel_type = "ebay"
    messages_newest_first = False

    def __init__(self, config: ConnectorConfig) -> None:
        self.client_id = str(config.settings.get("client_id") or "").strip()
        if not self.client_id:
            raise NotConfigured("client_id is not set")
        self.client_secret = config.secret("client_secret")
        self.seller = str(config.settings.get("seller_username") or "").strip()
        if not self.seller:
            raise NotConfigured("seller_username is not set")
        self.scope = str(config.settings.get("oauth_scope") or DEFAULT_SCOPE)
        self.base_url = str(config.settings.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        super().__init__(config)

    def platform_secrets(self) -> list[str]:
        """The client secret."""
        return [self.client_secret]

    async def _request(self, method: str, path: str, token: str, *, params: dict[str, Any] | None = None,
                       body: dict[str, Any] | None = None) -> Any:
        answer = await self.http.request(method, self.base_url + path, params=params, json=body,
                                         headers={"Authorization": f"Bearer {token}"})
        return self._result(answer)

    def _result(self, answer: Any) -> Any:
        error = classify(answer.status, answer.body)
        if error is not None:
            if error.kind == "rate":
                error.retry_after = retry_after_header(answer.headers)
            raise error
        return answer.body or {}

    async def refresh_tokens(self, refresh_token: str) -> TokenGrant:
        """The OAuth refresh grant; eBay keeps the refresh token."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        answer = await self.http.request("POST", self.base_url + TOKEN_PATH, headers={"Authorization": f"Basic {basic}"},
                                         data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                               "scope": self.scope})
        body = self._result(answer)
        return TokenGrant(str(body["access_token"]), None, time.time() + float(body.get("expires_in") or 7200))

    async def conversations_page(self, token: str, page: Any) -> Page:
        """One page of *getConversations* (members' conversations), newest first."""
        offset = int(page or 0)
        body = await self._request("GET", LIST_PATH, token, params={
            "conversation_type": "FROM_MEMBERS", "limit": PAGE_SIZE, "offset": offset})
        items = []
        for c in body.get("conversations") or []:
            latest = c.get("latestMessage") or {}
            other = latest.get("recipientUsername") if latest.get("senderUsername") == self.seller \
                else latest.get("senderUsername")
            items.append(ConversationRef(
                id=str(c["conversationId"]), last_message_at=parse_time(latest.get("createdDate") or c.get("createdDate")),
                buyer_id=other, buyer_name=other,
                raw={"reference_id": c.get("referenceId"), "reference_type": c.get("referenceType"),
                     "title": c.get("conversationTitle")}))
        return Page(items, offset + PAGE_SIZE if body.get("next") else None)

    async def messages_page(self, token: str, conversation: ConversationRef, page: Any) -> Page:
        """One page of *getConversation*."""
        offset = int(page or 0)
        path = MESSAGES_PATH.format(conversation_id=quote(conversation.id, safe=""))
        body = await self._request("GET", path, token, params={
            "conversation_type": "FROM_MEMBERS", "limit": PAGE_SIZE, "offset": offset})
        return Page(body.get("messages") or [], offset + PAGE_SIZE if body.get("next") else None)

    def message_time(self, raw: dict[str, Any]) -> float:
        """``createdDate``."""
        return parse_time(raw.get("createdDate"))

    def parse_message(self, conversation: ConversationRef, raw: dict[str, Any]) -> InboundMessage | None:
        """An eBay member message; media are listed by their URLs."""
        from_seller = raw.get("senderUsername") == self.seller
        buyer = conversation.buyer_id or raw.get("recipientUsername" if from_seller else "senderUsername") or "unknown"
        text = raw.get("messageBody") or ""
        media = [m.get("mediaUrl") for m in raw.get("messageMedia") or [] if m.get("mediaUrl")]
        if media:
            text = "\n".join([text, *(f"[eBay attachment: {url}]" for url in media)]).strip()
        product = conversation.raw.get("reference_id") if conversation.raw.get("reference_type") == "LISTING" else None
        return InboundMessage(
            inbox_id=self.config.inbox_id,
            source_id=str(raw["messageId"]),
            thread_key=conversation.id,
            sender=SenderIdentity(source_id=str(buyer), name=str(buyer)),
            direction="outgoing" if from_seller else "incoming",
            text=text or "[eBay message without text]",
            subject=raw.get("subject") or conversation.raw.get("title"),
            sent_at=datetime.fromtimestamp(self.message_time(raw), UTC),
            conversation_attributes=order_attributes("ebay", product_id=product),
        )

    async def send_reply(self, token: str, message: OutboundMessage) -> str:
        """*sendMessage* into the existing conversation."""
        if not message.conversation_thread_key:
            raise PlatformError("refused", 400, "the conversation has no eBay conversation id")
        body = await self._request("POST", SEND_PATH, token, body={
            "conversationId": message.conversation_thread_key, "messageText": message.text})
        return str(body["messageId"])
