"""A loopback LINE Messaging API, for tests, benchmarks and demos.

* **webhook calls**: :meth:`LineSandbox.user_writes`, :meth:`~LineSandbox.follow`,
  :meth:`~LineSandbox.unfollow` build events (with ``webhookEventId``,
  ``deliveryContext.isRedelivery``, ``replyToken``), :meth:`~LineSandbox.redelivered`
  repeats one as LINE's redelivery does, :meth:`~LineSandbox.body` wraps them and
  :meth:`~LineSandbox.deliver` posts them signed with ``X-Line-Signature`` (base64
  HMAC-SHA256 of the body with the channel secret)
  (https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects,
  https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature/).
* ``POST /v2/bot/message/reply``: a reply token works once, for ``reply_token_seconds``;
  otherwise 400 *Invalid reply token*.
* ``POST /v2/bot/message/push``: ``X-Line-Retry-Key`` makes a retried request a no-op
  (409 with ``x-line-accepted-request-id``,
  https://developers.line.biz/en/docs/messaging-api/retrying-api-request/).
* ``GET /v2/bot/message/{messageId}/content``: the bytes of a user's media message, with
  its ``Content-Type`` (https://developers.line.biz/en/reference/messaging-api/#get-content);
  :meth:`LineSandbox.user_sends` makes one.
* ``GET /v2/bot/profile/{userId}``: ``displayName``, ``userId``, ``pictureUrl``, ``language``.
Both answer ``{"sentMessages": [{"id", "quoteToken"}]}``; errors are ``{"message",
"details"}`` with 401 for a wrong token and 429 for rate limits
(https://developers.line.biz/en/reference/messaging-api/#status-codes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.base.sandbox import LoopbackServer


class LineSandbox(LoopbackServer):
    """A fake Messaging API for one channel."""

    name = "line-sandbox"

    def __init__(self, *, channel_secret: str = "sandbox-line-channel-secret",
                 channel_token: str = "sandbox-line-channel-token", reply_token_seconds: float = 60.0) -> None:
        super().__init__()
        self.channel_secret = channel_secret
        self.channel_token = channel_token
        self.reply_token_seconds = reply_token_seconds
        self.destination = "U" + secrets.token_hex(16)
        #: Accepted requests: ``{"endpoint", "body", "ids"}``.
        self.sent: list[dict[str, Any]] = []
        self._profiles: dict[str, dict[str, Any]] = {}
        self._reply_tokens: dict[str, float] = {}
        self._retry_keys: dict[str, str] = {}
        self._ids = itertools.count(500000000000000001)
        #: Contents of users' media messages, by message id: ``(bytes, Content-Type)``.
        self.contents: dict[str, tuple[bytes, str]] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/bot/message/reply", self._reply, methods=["POST"]),
            Route("/v2/bot/message/push", self._push, methods=["POST"]),
            Route("/v2/bot/profile/{user_id}", self._profile, methods=["GET"]),
            Route("/v2/bot/message/{message_id}/content", self._content, methods=["GET"]),
        ]

    def signature_headers(self, raw: bytes) -> dict[str, str]:
        """``X-Line-Signature``: base64(HMAC-SHA256(channel secret, body))."""
        digest = hmac.new(self.channel_secret.encode(), raw, hashlib.sha256).digest()
        return {"X-Line-Signature": base64.b64encode(digest).decode()}

    # -- users and their events --------------------------------------------------------
    def user(self, user_id: str, display_name: str, *, language: str | None = None) -> str:
        """Make a user known (their profile answers the profile API)."""
        with self.lock:
            self._profiles[user_id] = {"displayName": display_name, "userId": user_id,
                                       "pictureUrl": f"https://profile.line-scdn.example/{user_id}",
                                       **({"language": language} if language else {})}
        return user_id

    def _event(self, user_id: str, kind: str, *, reply: bool = True) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind, "mode": "active", "timestamp": int(time.time() * 1000),
            "source": {"type": "user", "userId": user_id},
            "webhookEventId": "01" + secrets.token_hex(12).upper(),
            "deliveryContext": {"isRedelivery": False},
        }
        if reply:
            token = secrets.token_hex(16)
            with self.lock:
                self._reply_tokens[token] = time.monotonic()
            event["replyToken"] = token
        return event

    def user_writes(self, user_id: str, text: str) -> dict[str, Any]:
        """A text message from a user in their one-to-one chat."""
        event = self._event(user_id, "message")
        event["message"] = {"id": str(next(self._ids)), "type": "text", "quoteToken": secrets.token_urlsafe(12),
                            "text": text}
        return event

    def user_sends(self, user_id: str, kind: str, data: bytes, content_type: str, *,
                   file_name: str | None = None) -> dict[str, Any]:
        """An ``image``, ``video``, ``audio`` or ``file`` message; its content is served by
        ``GET /v2/bot/message/{messageId}/content``."""
        event = self._event(user_id, "message")
        message: dict[str, Any] = {"id": str(next(self._ids)), "type": kind, "quoteToken": secrets.token_urlsafe(12)}
        if kind == "file":
            message.update(fileName=file_name or "file", fileSize=len(data))
        else:
            message["contentProvider"] = {"type": "line"}
        if kind in ("video", "audio"):
            message["duration"] = 2000
        with self.lock:
            self.contents[message["id"]] = (data, content_type)
        event["message"] = message
        return event

    def follow(self, user_id: str) -> dict[str, Any]:
        """The user added the account as a friend (or unblocked it)."""
        return {**self._event(user_id, "follow"), "follow": {"isUnblocked": False}}

    def unfollow(self, user_id: str) -> dict[str, Any]:
        """The user blocked the account."""
        return self._event(user_id, "unfollow", reply=False)

    @staticmethod
    def redelivered(event: dict[str, Any]) -> dict[str, Any]:
        """The same event redelivered: same ids, ``isRedelivery`` true."""
        return {**event, "deliveryContext": {"isRedelivery": True}}

    def group_message(self, group_id: str, user_id: str, text: str) -> dict[str, Any]:
        """A message in a group chat (Postroom skips these)."""
        event = self.user_writes(user_id, text)
        event["source"] = {"type": "group", "groupId": group_id, "userId": user_id}
        return event

    def body(self, *events: dict[str, Any]) -> dict[str, Any]:
        """A webhook body carrying ``events``."""
        return {"destination": self.destination, "events": list(events)}

    # -- Messaging API -----------------------------------------------------------------
    def _check(self, request: Request, endpoint: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if request.headers.get("authorization") != f"Bearer {self.channel_token}":
            return 401, {"message": "Authentication failed. Confirm that the access token in the authorization "
                                    "header is valid."}, {}
        fault = self.take_fault(endpoint)
        if fault is not None:
            return fault.status, fault.body, fault.headers
        return None

    def _accept(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        ids = [str(next(self._ids)) for _ in messages]
        self.sent.append({"endpoint": endpoint, "body": body, "ids": ids})
        return {"sentMessages": [{"id": i, "quoteToken": secrets.token_urlsafe(12)} for i in ids]}

    def _invalid(self, body: dict[str, Any]) -> dict[str, Any] | None:
        messages = body.get("messages") or []
        if not 1 <= len(messages) <= 5:
            return {"message": "The request body has 1 error(s)",
                    "details": [{"message": "Size must be between 1 and 5", "property": "messages"}]}
        for m in messages:
            if m.get("type") == "text" and not 1 <= len(m.get("text") or "") <= 5000:
                return {"message": "The request body has 1 error(s)",
                        "details": [{"message": "Length must be between 1 and 5000", "property": "messages[0].text"}]}
        return None

    async def _reply(self, request: Request) -> Response:
        body = await request.json()
        status, answer, headers = self._check(request, "reply") or (0, {}, {})
        if not status:
            with self.lock:
                issued = self._reply_tokens.pop(str(body.get("replyToken")), None)
                invalid = self._invalid(body)
                if issued is None or time.monotonic() - issued > self.reply_token_seconds:
                    status, answer = 400, {"message": "Invalid reply token"}
                elif invalid:
                    status, answer = 400, invalid
                else:
                    status, answer = 200, self._accept("reply", body)
        self.record("reply", body, request, status)
        return JSONResponse(answer, status_code=status, headers=headers)

    async def _push(self, request: Request) -> Response:
        body = await request.json()
        status, answer, headers = self._check(request, "push") or (0, {}, {})
        if not status:
            key = request.headers.get("x-line-retry-key")
            with self.lock:
                invalid = self._invalid(body)
                if key is not None and key in self._retry_keys:
                    status, answer = 409, {"message": "The retry key is already accepted"}
                    headers = {"x-line-accepted-request-id": self._retry_keys[key]}
                elif str(body.get("to")) not in self._profiles:
                    status, answer = 400, {"message": "The property, 'to', in the request body is invalid (line: -, column: -)"}
                elif invalid:
                    status, answer = 400, invalid
                else:
                    status, answer = 200, self._accept("push", body)
                    if key is not None:
                        self._retry_keys[key] = str(uuid.uuid4())
        self.record("push", body, request, status)
        return JSONResponse(answer, status_code=status, headers=headers)

    async def _profile(self, request: Request) -> Response:
        checked = self._check(request, "profile")
        if checked is not None:
            return JSONResponse(checked[1], status_code=checked[0], headers=checked[2])
        with self.lock:
            profile = self._profiles.get(request.path_params["user_id"])
        self.record("profile", {"userId": request.path_params["user_id"]}, request, 200 if profile else 404)
        if profile is None:
            return JSONResponse({"message": "Not found"}, status_code=404)
        return JSONResponse(profile)

    async def _content(self, request: Request) -> Response:
        """The binary content of a user's media message (404 for an unknown id)."""
        message_id = request.path_params["message_id"]
        checked = self._check(request, "content")
        with self.lock:
            found = self.contents.get(message_id)
        status = checked[0] if checked is not None else (200 if found else 404)
        self.record("content", {"messageId": message_id}, request, status)
        if checked is not None:
            return JSONResponse(checked[1], status_code=checked[0], headers=checked[2])
        if found is None:
            return JSONResponse({"message": "Not found"}, status_code=404)
        return Response(found[0], media_type=found[1])
