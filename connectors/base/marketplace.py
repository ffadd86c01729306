"""What every marketplace connector shares: tokens that expire and are refreshed, HMAC
signing, one HTTP call with the platform's errors mapped to the typed ones, and the
paging loop that walks conversations and their messages from a cursor.

A marketplace connector (Shopee, Lazada, TikTok Shop, eBay) only says how its platform
lists conversations and messages, how a raw message becomes an ``InboundMessage`` and how
a reply is sent; everything else lives here once.

The sync is a sequence of *passes*. A pass walks the conversation list (newest activity
first) one page per ``fetch``; for each conversation with activity since the watermark it
reads the conversation's messages, newest first, until they are older than the watermark.
The cursor ``{"watermark", "page", "done", "top"}`` is saved with the messages of each
page, so a crash repeats at most one page (and ingest's unique index makes that harmless).
When the list reaches conversations older than the watermark the pass ends, the newest
activity seen becomes the next watermark, and the connector rests ``poll_interval``
seconds before the next pass. Only one page of conversations and their new messages is
ever held in memory, however many conversations the shop has.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from connectors.base.connector import ConnectorConfig, Cursor, PullConnector, redact
from connectors.base.errors import (
    AuthFailed,
    NotConfigured,
    PermanentSendError,
    RateLimited,
    TransientError,
)
from connectors.base.marketplace_media import OwnMessages, download_attachments
from connectors.base.messages import InboundAttachment, InboundMessage, OutboundMessage, SenderIdentity

log = logging.getLogger("postroom.connectors.marketplace")

#: Refresh an access token this long before it runs out.
REFRESH_MARGIN_SECONDS = 300.0
#: Each pass reads again what changed this long before the watermark: messages that
#: land in the same second as the newest one seen may be listed a moment later.
OVERLAP_SECONDS = 10.0
DEFAULT_POLL_INTERVAL = 30.0
#: A rate-limit answer that names no wait.
DEFAULT_RETRY_AFTER = 5.0


def hmac_sha256_hex(key: str, message: str | bytes, *, upper: bool = False) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key`` (the scheme every marketplace uses)."""
    data = message.encode() if isinstance(message, str) else message
    digest = hmac.new(key.encode(), data, hashlib.sha256).hexdigest()
    return digest.upper() if upper else digest


def url_setting(settings: Mapping[str, Any], name: str, default: str) -> str:
    """The URL a setting names (``default`` when it is unset), without a trailing slash."""
    return str(settings.get(name) or default).rstrip("/")


def signature_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two hex signatures (case-insensitive)."""
    return bool(given) and hmac.compare_digest(expected.lower().encode(), str(given).strip().lower().encode())


# -- errors ------------------------------------------------------------------------------

class PlatformError(Exception):
    """What a platform answered instead of a result, classified once by its client.

    ``kind``: ``expired`` (the access token ran out: refresh and try again), ``auth``
    (credentials refused), ``rate`` (wait ``retry_after``), ``transient`` (try again
    later) or ``refused`` (this request is wrong and will stay wrong).
    """

    def __init__(self, kind: str, code: str | int, text: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {text}")
        self.kind = kind
        self.code = code
        self.text = text
        self.retry_after = retry_after


def platform_error(code: str | int, status: int, text: str, *, expired: bool = False, rate: bool = False,
                   auth: bool = False, transient: bool = False) -> PlatformError:
    """The error for an answer that is not a result, by the precedence the platforms that
    answer with their own error codes (Shopee, Lazada, TikTok Shop) share.

    Each flag says what the platform's code means; the first that holds wins: an expired
    token, then a rate limit (or HTTP 429), refused credentials, a transient fault (or
    HTTP 5xx); otherwise what the HTTP status means (``refused`` for a 200 carrying an
    error code).
    """
    if expired:
        return PlatformError("expired", code, text)
    if rate or status == 429:
        return PlatformError("rate", code, text)
    if auth:
        return PlatformError("auth", code, text)
    if transient or status >= 500:
        return PlatformError("transient", code, text)
    return PlatformError(http_kind(status) if status != 200 else "refused", code, text)


def typed_error(exc: PlatformError, what: str, *, sending: bool = False) -> Exception:
    """The connector error the runner understands for a platform's answer."""
    text = f"{what}: {exc.code}: {exc.text}"
    if exc.kind == "rate":
        return RateLimited(exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER, text)
    if exc.kind in ("auth", "expired"):
        return AuthFailed(text)
    if exc.kind == "refused" and sending:
        return PermanentSendError(exc.code, exc.text)
    return TransientError(text)


# -- tokens ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenGrant:
    """A platform's answer to a token refresh."""

    access_token: str
    #: None when the platform keeps the old refresh token (eBay).
    refresh_token: str | None
    #: Unix seconds when the access token runs out (None: unknown).
    expires_at: float | None
    refresh_expires_at: float | None = None


#: Secret fields a refresh writes back (stored encrypted with the inbox's credentials).
TOKEN_FIELDS = ("access_token", "refresh_token", "access_token_expires_at", "refresh_token_expires_at")


class TokenKeeper:
    """The inbox's current access token: refreshed before it runs out or when the
    platform says it has, at most one refresh at a time, and saved (encrypted) at once,
    because some platforms invalidate the old refresh token when they issue a new one."""

    def __init__(self, config: ConnectorConfig, refresh: Callable[[str], Awaitable[TokenGrant]]) -> None:
        secrets = config.secrets
        self.access_token: str | None = str(secrets.get("access_token") or "").strip() or None
        self.refresh_token: str | None = str(secrets.get("refresh_token") or "").strip() or None
        if not self.access_token and not self.refresh_token:
            raise NotConfigured("access_token is not set (nor a refresh_token to get one)")
        expires = secrets.get("access_token_expires_at") or config.settings.get("access_token_expires_at")
        self.expires_at: float | None = float(expires) if expires else None
        self.refreshes = 0
        self._refresh = refresh
        self._save = config.save_secrets
        self._lock = asyncio.Lock()

    def secrets(self) -> list[str]:
        """The token values, for redacting error texts."""
        return [t for t in (self.access_token, self.refresh_token) if t]

    def _due(self) -> bool:
        if not self.access_token:
            return True
        return self.expires_at is not None and time.time() >= self.expires_at - REFRESH_MARGIN_SECONDS

    async def current(self) -> str:
        """A usable access token, refreshed first when it is about to run out."""
        if self._due():
            await self.refresh(stale=self.access_token)
        assert self.access_token is not None
        return self.access_token

    async def refresh(self, *, stale: str | None) -> None:
        """Get a new access token, unless another call already replaced ``stale``."""
        async with self._lock:
            if self.access_token != stale and self.access_token and not self._due():
                return
            if not self.refresh_token:
                raise AuthFailed("the access token expired and there is no refresh_token: reconnect the shop")
            try:
                grant = await self._refresh(self.refresh_token)
            except PlatformError as exc:
                if exc.kind in ("rate", "transient"):
                    raise typed_error(exc, "token refresh") from None
                raise AuthFailed(f"token refresh refused: {exc.code}: {exc.text} (reconnect the shop)") from None
            self.access_token = grant.access_token
            if grant.refresh_token:
                self.refresh_token = grant.refresh_token
            self.expires_at = grant.expires_at
            self.refreshes += 1
            values: dict[str, Any] = {"access_token": grant.access_token, "refresh_token": self.refresh_token,
                                      "access_token_expires_at": grant.expires_at}
            if grant.refresh_expires_at is not None:
                values["refresh_token_expires_at"] = grant.refresh_expires_at
            if self._save is not None:
                try:
                    await self._save(values)
                except Exception:  # noqa: BLE001 - the token still works from memory
                    log.exception("could not store refreshed tokens")


# -- HTTP --------------------------------------------------------------------------------

@dataclass
class Answer:
    """A platform's HTTP answer, body parsed as JSON when it is JSON."""

    status: int
    body: Any
    headers: httpx.Headers


class Http:
    """One connection pool per connector; network failures become ``TransientError``."""

    def __init__(self, *, redact_values: Callable[[], list[str]], timeout: float = 30.0) -> None:
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
        self._redact_values = redact_values

    @property
    def client(self) -> httpx.AsyncClient:
        """The pool itself (image downloads stream through it)."""
        return self._client

    async def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """Send one request; the body is parsed as JSON when possible."""
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise TransientError(redact(f"{method} {url}: {type(exc).__name__}: {exc}", self._redact_values())) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        return Answer(response.status_code, body, response.headers)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()


def answer_body(answer: Answer, classify: Callable[[int, Any], PlatformError | None]) -> Any:
    """The body of a platform's answer, or the ``PlatformError`` that ``classify`` finds in
    it raised (a rate limit waits the answer's ``Retry-After``)."""
    error = classify(answer.status, answer.body)
    if error is not None:
        if error.kind == "rate":
            error.retry_after = retry_after_header(answer.headers)
        raise error
    return answer.body


def retry_after_header(headers: httpx.Headers) -> float | None:
    """The ``Retry-After`` seconds of an answer, when it names them."""
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def http_kind(status: int) -> str:
    """The error kind an HTTP status means when the body says nothing more precise."""
    if status == 429:
        return "rate"
    if status in (401, 403):
        return "auth"
    if status >= 500 or status in (408, 409):
        return "transient"
    return "refused"


# -- the sync loop -----------------------------------------------------------------------

@dataclass
class ConversationRef:
    """One conversation as the platform lists it."""

    id: str
    #: Unix seconds of its latest message.
    last_message_at: float
    buyer_id: str | None = None
    buyer_name: str | None = None
    buyer_avatar: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    """One page of a list and how to ask for the next (None: this was the last)."""

    items: list[Any]
    next: Any = None


class MarketplaceConnector(PullConnector):
    """A marketplace shop: conversations and messages pulled by paging, replies sent by API."""

    #: Messages of a conversation come newest first, so reading can stop at the watermark.
    messages_newest_first: ClassVar[bool] = True
    #: Why a reply with an image is refused (None: the platform takes images, ``send_image``).
    images_refused: ClassVar[str | None] = "this marketplace's chat API does not take images from Postroom"
    #: The platform's API root when the inbox's ``api_base_url`` setting names none.
    default_base_url: ClassVar[str]

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        settings = config.settings
        self.poll_interval = max(0.0, float(settings.get("poll_interval") or DEFAULT_POLL_INTERVAL))
        self.base_url = url_setting(settings, "api_base_url", self.default_base_url)
        self.tokens = TokenKeeper(config, self.refresh_tokens)
        self.http = Http(redact_values=self.secret_values)
        #: Ids of image messages sent ahead of a reply's text (not to be stored again).
        self.own_messages = OwnMessages()
        self._rest_until = 0.0
        self._blocked_until = 0.0
        self._blocked_by = ""

    # -- what each platform provides ----------------------------------------------------
    @abstractmethod
    async def refresh_tokens(self, refresh_token: str) -> TokenGrant:
        """Exchange the refresh token for a new access token (raise ``PlatformError``)."""

    @abstractmethod
    async def conversations_page(self, token: str, page: Any) -> Page:
        """One page of conversations (``ConversationRef``), newest activity first."""

    @abstractmethod
    async def messages_page(self, token: str, conversation: ConversationRef, page: Any) -> Page:
        """One page of a conversation's raw messages."""

    @abstractmethod
    def message_time(self, raw: dict[str, Any]) -> float:
        """Unix seconds of a raw message."""

    @abstractmethod
    def parse_message(self, conversation: ConversationRef, raw: dict[str, Any]) -> InboundMessage | None:
        """A raw message as an ``InboundMessage`` (None: not for the inbox)."""

    @abstractmethod
    async def send_reply(self, token: str, message: OutboundMessage) -> str:
        """Deliver one reply; returns the platform's message id (raise ``PlatformError``)."""

    def platform_secrets(self) -> list[str]:
        """The platform's own secrets (partner key, app secret) for redaction."""
        return []

    async def send_image(self, token: str, message: OutboundMessage, image: InboundAttachment) -> str:
        """Deliver one image of a reply as an image message; returns its platform id
        (platforms that take images override this and clear ``images_refused``)."""
        raise PermanentSendError(400, self.images_refused or "images are not supported")

    # -- shared ---------------------------------------------------------------------------
    def buyer_message(self, conversation: ConversationRef, raw: dict[str, Any], *, source_id: str, buyer_id: str,
                      incoming: bool, text: str | None, attachments: list[InboundAttachment],
                      order_id: Any = None, product_id: Any = None, metadata: dict[str, Any] | None = None,
                      automatic: bool = False, subject: str | None = None,
                      name: str | None = None) -> InboundMessage:
        """A message of ``conversation`` as the inbox stores it.

        Threaded by the conversation id; the contact (``sender``) is always the buyer
        (``buyer_id``, named ``name`` or else as the conversation names them, with the
        conversation's avatar): the message is theirs when ``incoming``, the shop's to
        them otherwise; sent at ``message_time(raw)``; the order and product it names
        become the conversation's attributes (``order_attributes``).
        """
        return InboundMessage(
            inbox_id=self.config.inbox_id,
            source_id=source_id,
            thread_key=conversation.id,
            sender=SenderIdentity(source_id=buyer_id, name=conversation.buyer_name if name is None else name,
                                  avatar_url=conversation.buyer_avatar or None),
            direction="incoming" if incoming else "outgoing",
            text=text,
            attachments=attachments,
            subject=subject,
            sent_at=datetime.fromtimestamp(self.message_time(raw), UTC),
            automatic=automatic,
            metadata=metadata or {},
            conversation_attributes=order_attributes(self.channel_type, order_id=order_id, product_id=product_id),
        )

    def secret_values(self) -> list[str]:
        """Every secret this connector holds, for redacting error texts."""
        return self.tokens.secrets() + self.platform_secrets()

    @property
    def fetch_timeout(self) -> float:
        """The rest between passes plus room for a page of conversations."""
        return self.poll_interval + 300.0

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.http.aclose()

    async def call(self, what: str, request: Callable[[str], Awaitable[Any]], *, sending: bool = False) -> Any:
        """Run ``request(access_token)``; an expired token is refreshed and the request
        tried once more; platform errors become the runner's typed errors."""
        token = await self.tokens.current()
        try:
            return await request(token)
        except PlatformError as exc:
            if exc.kind != "expired":
                raise typed_error(exc, what, sending=sending) from None
        await self.tokens.refresh(stale=token)
        try:
            return await request(await self.tokens.current())
        except PlatformError as exc:
            raise typed_error(exc, what, sending=sending) from None

    def fetch_ahead(self, cursor: Cursor) -> bool:
        """The next page of a pass can be fetched while this one is stored."""
        return "page" in cursor

    async def fetch(self, cursor: Cursor) -> tuple[list[InboundMessage], Cursor]:
        """One page of conversations and their new messages (see the module's text)."""
        rest = self._rest_until - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)
        blocked = self._blocked_until - time.monotonic()
        if blocked > 0:
            raise RateLimited(blocked, f"{self._blocked_by} (in the middle of a page; what it gave is stored)")
        watermark: float | None = cursor.get("watermark")
        page_token = cursor.get("page")
        done: list[str] = list(cursor.get("done") or [])
        top: float | None = cursor.get("top")
        since = None if watermark is None else watermark - OVERLAP_SECONDS
        page = await self.call("conversation list", lambda token: self.conversations_page(token, page_token))
        messages: list[InboundMessage] = []
        finished = False
        for conversation in page.items:
            if conversation.id in done:
                continue
            if since is not None and conversation.last_message_at < since:
                finished = True
                break
            try:
                found = await self._new_messages(conversation, since)
            except RateLimited as exc:
                if not messages:
                    raise
                # Keep what this page gave so far; the rest of the page waits for the limit.
                self._blocked_until = time.monotonic() + exc.retry_after
                self._blocked_by = str(exc).rsplit(" (retry after", 1)[0]
                return messages, {**_pass(watermark, top), "page": page_token, "done": done}
            top = max(top or 0.0, conversation.last_message_at)
            messages.extend(found)
            done.append(conversation.id)
        if finished or page.next is None:
            self._rest_until = time.monotonic() + self.poll_interval
            return messages, {"watermark": top if top is not None else watermark}
        return messages, {**_pass(watermark, top), "page": page.next, "done": []}

    async def _new_messages(self, conversation: ConversationRef, since: float | None) -> list[InboundMessage]:
        """The conversation's messages newer than ``since``, oldest first."""
        raws: list[dict[str, Any]] = []
        token_page: Any = None
        while True:
            page = await self.call(
                "message list", lambda token, p=token_page: self.messages_page(token, conversation, p))
            older = False
            for raw in page.items:
                if since is not None and self.message_time(raw) < since:
                    older = True
                    continue
                raws.append(raw)
            if page.next is None or (older and self.messages_newest_first):
                break
            token_page = page.next
        raws.sort(key=self.message_time)
        parsed = (self.parse_message(conversation, raw) for raw in raws)
        messages = [m for m in parsed if m is not None and m.source_id not in self.own_messages]
        await download_attachments(self.http.client, messages)
        return messages

    async def send(self, message: OutboundMessage) -> str:
        """Deliver a reply: each image as an image message (where the platform takes
        them), then the text; returns the last message's id."""
        text = (message.text or "").strip()
        images = list(message.attachments)
        if not text and not images:
            raise PermanentSendError(400, "nothing to send: the reply has no text and no image")
        for image in images:
            if not image.content_type.startswith("image/"):
                raise PermanentSendError(400, f"{image.file_name or 'the file'} is not an image: "
                                              f"marketplace chats take text and images only")
            if self.images_refused:
                raise PermanentSendError(400, self.images_refused)
            if image.data is None:
                raise PermanentSendError(400, f"{image.file_name or 'the image'} has no stored bytes")
        ids: list[str] = []
        for image in images:
            ids.append(await self.call("send image", lambda token, i=image: self.send_image(token, message, i),
                                       sending=True))
        if text:
            ids.append(await self.call("send", lambda token: self.send_reply(token, message), sending=True))
        for earlier in ids[:-1]:
            self.own_messages.add(earlier)
        return ids[-1]


def _pass(watermark: float | None, top: float | None) -> Cursor:
    state: Cursor = {"watermark": watermark}
    if top is not None:
        state["top"] = top
    return state


def json_content(value: Any, text_key: str) -> dict[str, Any]:
    """A message's ``content`` that the platform sends as a JSON string (Lazada, TikTok
    Shop), read as an object.

    Missing content (None, ``""``, JSON ``null``) is ``{}``; content that is not JSON, or
    JSON that is not an object, is kept as text under ``text_key`` (the platform's own
    text field).
    """
    try:
        content = json.loads(value or "{}")
    except ValueError:
        return {text_key: str(value)}
    if content is None:
        return {}
    return content if isinstance(content, dict) else {text_key: str(content)}


def placeholder_text(marketplace: str, kind: str, *, order_id: Any = None, product_id: Any = None,
                     url: Any = None, fallback: str | None = None) -> str:
    """The text shown for a message that has none of its own (a card, a sticker, a video).

    The first that is set wins: the order it names (``[Shopee order 123]``), the product,
    the URL of what it carries (``[Shopee sticker: https://…]``); otherwise ``fallback``,
    or a note that Postroom does not show messages of this ``kind``. Which of the message's
    fields name an order, a product or a URL is the platform's to say.
    """
    if order_id:
        return f"[{marketplace} order {order_id}]"
    if product_id:
        return f"[{marketplace} product {product_id}]"
    if url:
        return f"[{marketplace} {kind}: {url}]"
    return fallback or f"[{marketplace} {kind} message: not shown in Postroom]"


def order_attributes(marketplace: str, *, order_id: Any = None, product_id: Any = None) -> dict[str, Any]:
    """The conversation attributes naming what a buyer writes about (ids as text)."""
    attributes: dict[str, Any] = {}
    if order_id not in (None, "", 0):
        attributes["order_id"] = str(order_id)
    if product_id not in (None, "", 0):
        attributes["product_id"] = str(product_id)
    if attributes:
        attributes["marketplace"] = marketplace
    return attributes
