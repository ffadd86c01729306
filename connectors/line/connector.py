"""LINE Messaging API: signed webhooks in; reply (while the token is fresh) or push out.

Settings (Chatwoot's ``Channel::Line``): ``line_channel_id``, ``line_channel_secret``
and ``line_channel_token`` (secrets), ``api_base_url`` (``https://api.line.me`` by
default; a sandbox's in tests), ``reply_token_seconds`` (how long after receipt a reply
token is used, default 30).

* Signature: ``X-Line-Signature`` is base64(HMAC-SHA256(channel secret, raw body))
  (https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature/).
* Replies: ``POST /v2/bot/message/reply`` with the ``replyToken`` of the customer's last
  message while it is fresh and unused, else ``POST /v2/bot/message/push`` with
  ``X-Line-Retry-Key`` (derived from the reply's id, so a retried push is delivered once)
  (https://developers.line.biz/en/reference/messaging-api/#send-reply-message,
  https://developers.line.biz/en/reference/messaging-api/#send-push-message,
  https://developers.line.biz/en/docs/messaging-api/retrying-api-request/).
  An *Invalid reply token* answer falls back to push.
* Files users send: ``GET https://api-data.line.me/v2/bot/message/{messageId}/content``
  (``api_data_base_url``; an inbox with its own ``api_base_url`` uses that host), fetched
  before the message is stored (``connectors.base.media``).
* Replies with files are refused before anything is sent (:data:`FILES_REFUSED` says why).
* Profiles of new contacts: ``GET /v2/bot/profile/{userId}`` (``displayName``,
  ``pictureUrl``, ``language``).
* Errors are ``{"message", "details"}``; 429 is a rate limit, 401 a refused token
  (https://developers.line.biz/en/reference/messaging-api/#status-codes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base import (
    AuthFailed,
    ConnectorConfig,
    OutboundMessage,
    PermanentSendError,
    PushConnector,
    RateLimited,
    SenderIdentity,
    TransientError,
    WebhookBatch,
    WebhookRequest,
    redact,
)
from connectors.base.media import Media, MediaUnavailable, download
from connectors.base.push import require_signature
from connectors.base.text import split_text
from connectors.line.parse import parse_body

DEFAULT_BASE_URL = "https://api.line.me"
DEFAULT_DATA_URL = "https://api-data.line.me"
#: Text message limit, and messages per request.
MAX_TEXT = 5000
MAX_MESSAGES = 5
DEFAULT_REPLY_TOKEN_SECONDS = 30
#: LINE sends no Retry-After; wait this long after a 429.
DEFAULT_RETRY_AFTER = 30.0
#: LINE image and video messages name their file by public HTTPS URLs
#: (``originalContentUrl``, ``previewImageUrl``) and there is no message type for other
#: files (https://developers.line.biz/en/reference/messaging-api/#image-message); Postroom
#: serves attachments to signed-in agents only, so it has no such URL to give.
FILES_REFUSED = ("not sent: LINE takes images and videos only as public HTTPS URLs (originalContentUrl, "
                 "previewImageUrl) and has no message type for other files; Postroom has no public URL for "
                 "this reply's files. Send the text alone, or a link the customer can open")
_RETRY_KEYS = uuid.UUID("6f1c3c52-64a4-4b39-9c3e-3f0b1c1d2e7a")


class LineConnector(PushConnector):
    """One LINE Official Account's one-to-one chats."""

    channel_type = "line"
    platform_name = "LINE"

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self.secret = config.secret("line_channel_secret")
        self._token = config.secrets.get("line_channel_token")
        settings = config.settings
        self.base_url = str(settings.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        # Contents live on their own host; an inbox pointed at another API (a sandbox) finds them there too.
        data_url = settings.get("api_data_base_url") or (settings.get("api_base_url") and self.base_url)
        self.data_url = str(data_url or DEFAULT_DATA_URL).rstrip("/")
        self.reply_token_seconds = float(settings.get("reply_token_seconds") or DEFAULT_REPLY_TOKEN_SECONDS)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        #: Reply tokens this process used (each works once).
        self._used_tokens: set[str] = set()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    def verify(self, request: WebhookRequest) -> None:
        """``X-Line-Signature`` with the channel secret."""
        require_signature(self.secret, request, "X-Line-Signature", encoding="base64")

    def parse(self, request: WebhookRequest) -> WebhookBatch:
        """Messages and follow / unfollow events of a verified body."""
        return parse_body(self.config.inbox_id, request.body, datetime.now(UTC))

    @property
    def fetches_profiles(self) -> bool:
        """Profiles need the access token."""
        return bool(self._token)

    async def profile(self, sender_id: str) -> SenderIdentity | None:
        """Display name, picture and language of a user (None when LINE will not say)."""
        if not self._token:
            return None
        try:
            body = await self._call("GET", f"/v2/bot/profile/{sender_id}", timeout=3.0)
        except Exception:  # noqa: BLE001 - a profile is a nicety: the message matters
            return None
        attributes = {k: body[k] for k in ("language", "statusMessage") if body.get(k)}
        return SenderIdentity(source_id=sender_id, name=body.get("displayName"), avatar_url=body.get("pictureUrl"),
                              attributes=attributes)

    async def download_media(self, platform_id: str) -> Media:
        """The content of a user's image, video, audio or file message
        (https://developers.line.biz/en/reference/messaging-api/#get-content)."""
        if not self._token:
            raise MediaUnavailable("line_channel_token is not set")
        return await download(self._http, f"{self.data_url}/v2/bot/message/{platform_id}/content",
                              headers={"Authorization": f"Bearer {self._token}"}, secrets=[self._token])

    async def send(self, message: OutboundMessage) -> str:
        """Reply with the fresh token, else push; returns the first sent message's id."""
        if not self._token:
            raise PermanentSendError("not_configured", "line_channel_token is not set")
        if message.attachments:
            raise PermanentSendError(400, FILES_REFUSED)
        texts = split_text(message.text or "", MAX_TEXT)
        if not texts:
            raise PermanentSendError(400, "nothing to send: the reply has no text")
        batches = [texts[i:i + MAX_MESSAGES] for i in range(0, len(texts), MAX_MESSAGES)]
        ids: list[str] = []
        token = self._reply_token(message)
        for number, batch in enumerate(batches):
            payload = [{"type": "text", "text": t} for t in batch]
            if token and number == 0:
                self._used_tokens.add(token)
                try:
                    body = await self._call("POST", "/v2/bot/message/reply", json={"replyToken": token, "messages": payload})
                    ids.extend(_sent_ids(body))
                    continue
                except PermanentSendError as exc:
                    if "reply token" not in exc.text.lower():
                        raise
            key = str(uuid.uuid5(_RETRY_KEYS, f"{self.config.inbox_id}:{message.message_id}:{number}"))
            body = await self._call("POST", "/v2/bot/message/push", json={"to": message.recipient_source_id, "messages": payload},
                                    headers={"X-Line-Retry-Key": key})
            ids.extend(_sent_ids(body) or [f"retry-key:{key}"])
        return ids[0]

    def _reply_token(self, message: OutboundMessage) -> str | None:
        last = message.metadata.get("last_incoming") or {}
        meta = last.get("metadata") or {}
        token, received = meta.get("reply_token"), meta.get("received_at")
        if not token or token in self._used_tokens or not received:
            return None
        try:
            age = datetime.now(UTC) - datetime.fromisoformat(received)
        except ValueError:
            return None
        return token if age < timedelta(seconds=self.reply_token_seconds) else None

    async def _call(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None,
                    timeout: float | None = None) -> Any:
        all_headers = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        extra: dict[str, Any] = {"timeout": httpx.Timeout(timeout, connect=timeout)} if timeout else {}
        try:
            response = await self._http.request(method, self.base_url + path, json=json, headers=all_headers, **extra)
        except httpx.HTTPError as exc:
            raise TransientError(redact(f"{path}: {type(exc).__name__}: {exc}", [self._token])) from None
        if response.status_code == 409 and response.headers.get("x-line-accepted-request-id"):
            return {}  # the same retry key was accepted before: already sent
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code < 400:
            return body
        text = redact(str((body or {}).get("message") or f"HTTP {response.status_code}"), [self._token])
        details = (body or {}).get("details")
        if details:
            text += " (" + "; ".join(str(d.get("message")) for d in details if isinstance(d, dict)) + ")"
        if response.status_code == 429:
            raise RateLimited(DEFAULT_RETRY_AFTER, f"{path}: {text}")
        if response.status_code == 401:
            raise AuthFailed(f"{path}: 401 {text}")
        if response.status_code >= 500:
            raise TransientError(f"{path}: {response.status_code} {text}")
        raise PermanentSendError(response.status_code, text)


def _sent_ids(body: Any) -> list[str]:
    return [str(m["id"]) for m in (body or {}).get("sentMessages") or [] if m.get("id")]
