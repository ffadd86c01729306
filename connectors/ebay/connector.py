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

Open return and item-not-received requests are read from the Post-Order API at the end
of every pass (``connectors/ebay/requests.py``), each as a conversation of its own.

REST calls are authorised by the OAuth user token (``Authorization: Bearer``; the
Post-Order API takes the same token as ``IAF``); eBay signs nothing else. The order of
messages inside a conversation is not stated, so every page of a changed conversation
is read and filtered by time.

Settings: ``client_id`` (the app id), ``seller_username``, ``api_base_url`` (default
``https://api.ebay.com``), ``oauth_scope``, ``poll_interval``, ``marketplace_id`` (the
Post-Order API's ``X-EBAY-C-MARKETPLACE-ID``, default ``EBAY-US``). Secrets: ``client_secret``,
``access_token``, ``refresh_token``.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors.base import (
    ConnectorConfig,
    Cursor,
    InboundMessage,
    NotConfigured,
    OutboundMessage,
)
from connectors.base.marketplace import (
    ConversationRef,
    MarketplaceConnector,
    Page,
    PlatformError,
    TokenGrant,
    answer_body,
    http_kind,
)
from connectors.base.marketplace_media import image_attachment
from connectors.base.messages import InboundAttachment
from connectors.ebay.requests import (
    INQUIRY_SEARCH_PATH,
    RETURN_SEARCH_PATH,
    THREADS,
    iso,
    parse_inquiry,
    parse_return,
    request_thread,
)

DEFAULT_BASE_URL = "https://api.ebay.com"
BASE_PATH = "/commerce/message/v1"
LIST_PATH = BASE_PATH + "/conversation"
MESSAGES_PATH = BASE_PATH + "/conversation/{conversation_id}"
SEND_PATH = BASE_PATH + "/send_message"
TOKEN_PATH = "/identity/v1/oauth2/token"
DEFAULT_SCOPE = "https://api.ebay.com/oauth/api_scope/commerce.message"
PAGE_SIZE = 50
#: Requests asked for per Post-Order search page.
REQUEST_PAGE = 50
#: Each read of the open requests asks again for those created this long before the
#: previous read (a request can appear in the search a while after its creation date).
REQUEST_OVERLAP_SECONDS = 3600.0


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
    if isinstance(body.get("error"), list):  # the Post-Order API's shape
        body = {"errors": body["error"]}
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
    default_base_url = DEFAULT_BASE_URL
    images_refused = ("eBay's sendMessage takes images only as messageMedia URLs of images eBay hosts "
                      "(uploaded with its Media API), which Postroom does not do: attach the image on eBay")
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
        self.marketplace_id = str(config.settings.get("marketplace_id") or "EBAY-US").strip()
        super().__init__(config)

    def platform_secrets(self) -> list[str]:
        """The client secret."""
        return [self.client_secret]

    async def _request(self, method: str, path: str, token: str, *, params: dict[str, Any] | None = None,
                       body: dict[str, Any] | None = None) -> Any:
        answer = await self.http.request(method, self.base_url + path, params=params, json=body,
                                         headers={"Authorization": f"Bearer {token}"})
        return self._result(answer)

    async def _post_order(self, method: str, path: str, token: str, *, params: dict[str, Any] | None = None,
                          body: dict[str, Any] | None = None) -> Any:
        answer = await self.http.request(method, self.base_url + path, params=params, json=body, headers={
            "Authorization": f"IAF {token}", "X-EBAY-C-MARKETPLACE-ID": self.marketplace_id,
            "Accept": "application/json"})
        return self._result(answer)

    def _result(self, answer: Any) -> Any:
        return answer_body(answer, classify) or {}

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
        """An eBay member message; its media (``messageMedia``) become attachments."""
        from_seller = raw.get("senderUsername") == self.seller
        buyer = conversation.buyer_id or raw.get("recipientUsername" if from_seller else "senderUsername") or "unknown"
        text = raw.get("messageBody") or ""
        attachments = []
        for media in raw.get("messageMedia") or []:
            if not media.get("mediaUrl"):
                continue
            if str(media.get("mediaType") or "IMAGE").upper() == "IMAGE":
                attachments.append(image_attachment(str(media["mediaUrl"]), name=media.get("mediaName")))
            else:  # a PDF or other document: kept by its URL
                attachments.append(InboundAttachment(file_name=media.get("mediaName"),
                                                     external_url=str(media["mediaUrl"])))
        product = conversation.raw.get("reference_id") if conversation.raw.get("reference_type") == "LISTING" else None
        return self.buyer_message(
            conversation, raw, source_id=str(raw["messageId"]), buyer_id=str(buyer), name=str(buyer),
            incoming=not from_seller, text=text or (None if attachments else "[eBay message without text]"),
            attachments=attachments, subject=raw.get("subject") or conversation.raw.get("title"),
            product_id=product)

    # -- return and item-not-received requests (Post-Order API) ----------------------------
    async def fetch(self, cursor: Cursor) -> tuple[list[InboundMessage], Cursor]:
        """The shared paging sync; when a pass ends, the open requests are read too."""
        since: float | None = cursor.get("requests_since")
        messages, following = await super().fetch({k: v for k, v in cursor.items() if k != "requests_since"})
        if "page" in following:  # the pass goes on
            return messages, {**following, "requests_since": since} if since is not None else following
        started = time.time()
        messages.extend(await self.open_requests(since))
        return messages, {**following, "requests_since": started}

    async def open_requests(self, since: float | None) -> list[InboundMessage]:
        """Open return requests and INR inquiries (created since ``since``, less the
        overlap; all of them the first time), every page."""
        start = None if since is None else iso(since - REQUEST_OVERLAP_SECONDS)
        found: list[InboundMessage] = []
        returns = {"return_state": "ALL_OPEN", "role": "SELLER"}
        if start:
            returns["creation_date_range_from"] = start
        for raw in await self._search("return search", RETURN_SEARCH_PATH, returns):
            parsed = parse_return(self.config.inbox_id, raw)
            if parsed is not None:
                found.append(parsed)
        inquiries = {"inquiry_status": "OPEN"}
        if start:
            inquiries["inquiry_creation_date_range_from"] = start
        for raw in await self._search("inquiry search", INQUIRY_SEARCH_PATH, inquiries):
            parsed = parse_inquiry(self.config.inbox_id, raw)
            if parsed is not None:
                found.append(parsed)
        return found

    async def _search(self, what: str, path: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {**filters, "limit": REQUEST_PAGE, "offset": page}
            body = await self.call(what, lambda token, p=params: self._post_order("GET", path, token, params=p))
            batch = body.get("members") or []
            members.extend(batch)
            pages = int((body.get("paginationOutput") or {}).get("totalPages") or 0)
            if not batch or page >= pages:
                return members
            page += 1

    async def send_reply(self, token: str, message: OutboundMessage) -> str:
        """*sendMessage* into the existing conversation; on a request's conversation, the
        Post-Order *send_message* of that return or inquiry."""
        request = request_thread(message.conversation_thread_key)
        if request is not None:
            prefix, request_id = request
            path = THREADS[prefix][1].format(id=quote(request_id, safe=""))
            await self._post_order("POST", path, token, body={"message": {"content": message.text}})
            return f"{prefix}:{request_id}:reply:{message.message_id}"  # eBay answers without an id
        if not message.conversation_thread_key:
            raise PlatformError("refused", 400, "the conversation has no eBay conversation id")
        body = await self._request("POST", SEND_PATH, token, body={
            "conversationId": message.conversation_thread_key, "messageText": message.text})
        return str(body["messageId"])
