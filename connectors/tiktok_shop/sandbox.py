"""A loopback TikTok Shop Partner API (customer service, 202309), for tests and demos.

It follows the pages named in ``connectors/tiktok_shop/connector.py``: every call's
``sign`` is checked (HMAC-SHA256 keyed with the app secret over ``secret + path + sorted
params + body + secret``, ``sign`` and ``access_token`` excluded) and a ``timestamp``
more than five minutes off is refused; the ``x-tts-access-token`` header must hold a live
token; ``/api/v2/token/refresh`` (auth host) trades a refresh token for new ones;
conversations are listed newest activity first, messages newest first, both in pages
cut at an opaque ``next_page_token``. Answers are ``{"code", "message", "data",
"request_id"}``; errors: 106001 (signature), 105002 (expired token), 105001 (invalid
token), 36009004 with HTTP 429 (rate limit), 36009003 with HTTP 500 (internal error).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base.marketplace import signature_matches
from connectors.base.marketplace_sandbox import Conv, MarketplaceSandbox, Msg
from connectors.tiktok_shop.connector import LIST_PATH, MESSAGES_PATH, REFRESH_PATH, sign

APP_KEY = "6a1b2c3d4e5f"
APP_SECRET = "ttsec" + "4e8b0c7a" * 5
SHOP_CIPHER = "ROW_sandbox_cipher"
SHOP_USER_ID = 7490001


class TikTokShopSandbox(MarketplaceSandbox):
    """A fake TikTok Shop customer service API (and its auth host) for one shop."""

    name = "tiktok_shop"

    def __init__(self, *, app_secret: str = APP_SECRET, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app_key = APP_KEY
        self.app_secret = app_secret

    def channel(self) -> dict[str, Any]:
        """The inbox channel fields that connect to this sandbox."""
        return {"type": "tiktok_shop", "api_base_url": self.base_url, "auth_base_url": self.base_url + "/auth",
                "shop_cipher": SHOP_CIPHER, "app_key": self.app_key, "app_secret": self.app_secret,
                "access_token": self.access_token, "refresh_token": self.refresh_token}

    def routes(self) -> list[Route]:
        return [
            Route("/auth" + REFRESH_PATH, self._on_refresh, methods=["GET"]),
            Route(LIST_PATH, self._on_list, methods=["GET"]),
            Route(MESSAGES_PATH.replace("{conversation_id}", "{cid}"), self._on_messages, methods=["GET", "POST"]),
            self.media_route(),
        ]

    async def _check(self, request: Request, name: str) -> tuple[dict[str, Any], bytes, Response | None]:
        params = dict(request.query_params)
        body = await request.body()
        expected = sign(self.app_secret, request.url.path, params, body)
        if params.get("app_key") != self.app_key or not signature_matches(expected, params.get("sign")):
            return params, body, self._error(name, params, 401, 106001, "Invalid signature", False)
        try:
            timestamp = int(params.get("timestamp", ""))
        except ValueError:
            return params, body, self._error(name, params, 400, 106011, "Invalid timestamp", True)
        if abs(time.time() - timestamp) > 300 or params.get("shop_cipher") != SHOP_CIPHER:
            return params, body, self._error(name, params, 400, 106011, "Invalid timestamp or shop_cipher", True)
        problem = self.token_valid(request.headers.get("x-tts-access-token"))
        if problem == "expired":
            return params, body, self._error(name, params, 401, 105002, "Expired credentials", True)
        if problem:
            return params, body, self._error(name, params, 401, 105001, "Invalid credentials", True)
        return params, body, self.fault_answer(
            name, lambda: self._error(name, params, 429, 36009004, "Too many requests", True),
            lambda: self._error(name, params, 500, 36009003, "Internal error", True))

    def _error(self, name: str, params: dict[str, Any], status: int, code: int, message: str,
               signed: bool) -> JSONResponse:
        self.record(name, params, status, signed)
        return JSONResponse({"code": code, "message": message, "request_id": secrets.token_hex(8)}, status)

    def _ok(self, name: str, params: dict[str, Any], data: dict[str, Any]) -> Response:
        self.record(name, params, 200, True)
        body = {"code": 0, "message": "Success", "data": data, "request_id": secrets.token_hex(8)}
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    async def _on_refresh(self, request: Request) -> Response:
        params = dict(request.query_params)
        if params.get("app_key") != self.app_key or not signature_matches(self.app_secret, params.get("app_secret")):
            return self._error(REFRESH_PATH, {}, 401, 105000, "Invalid app credentials", False)
        tokens = self.use_refresh_token(str(params.get("refresh_token") or ""))
        if tokens is None or params.get("grant_type") != "refresh_token":
            return self._error(REFRESH_PATH, {}, 401, 105003, "Invalid refresh token", True)
        now = int(time.time())
        return self._ok(REFRESH_PATH, {}, {
            "access_token": tokens[0], "access_token_expire_in": now + int(self.token_ttl),
            "refresh_token": tokens[1], "refresh_token_expire_in": now + 30 * 86400,
            "open_id": "sandbox-open-id", "seller_name": "Sandbox shop", "seller_base_region": "TH",
            "user_type": 0})

    async def _on_list(self, request: Request) -> Response:
        params, _, refused = await self._check(request, LIST_PATH)
        if refused is not None:
            return refused
        size = max(1, min(20, int(params.get("page_size") or 10)))
        offset = _offset(params.get("page_token"))
        page = self.page_by_offset(offset, size + 1)
        more = len(page) > size
        data = {"conversations": [self._conversation(c) for c in page[:size]],
                "next_page_token": _token(offset + size) if more else ""}
        return self._ok(LIST_PATH, params, data)

    async def _on_messages(self, request: Request) -> Response:
        params, body, refused = await self._check(request, MESSAGES_PATH)
        if refused is not None:
            return refused
        conv = self.conversation(int(request.path_params["cid"]))
        if conv is None:
            return self._error(MESSAGES_PATH, params, 404, 12052002, "Conversation not found", True)
        if request.method == "POST":
            return self._send(conv, params, body)
        size = max(1, min(20, int(params.get("page_size") or 10)))
        offset = _offset(params.get("page_token"))
        newest = conv.messages[::-1] if params.get("sort_order", "DESC") == "DESC" else conv.messages
        page = newest[offset:offset + size]
        more = len(newest) > offset + size
        return self._ok(MESSAGES_PATH, params, {"messages": [self._message(conv, m) for m in page],
                                                "next_page_token": _token(offset + size) if more else ""})

    def _send(self, conv: Conv, params: dict[str, Any], body: bytes) -> Response:
        path = "send"
        try:
            payload = json.loads(body or b"{}")
            text = json.loads(payload.get("content") or "{}").get("content")
        except (ValueError, AttributeError):
            text = None
        if payload.get("type") != "TEXT" or not text:
            return self._error(path, params, 400, 36009001, "type TEXT with content is required", True)
        message = self.add_reply(conv.id, text)
        assert message is not None
        return self._ok(path, {**params, "body": payload}, {"message_id": str(message.id)})

    def _conversation(self, conv: Conv) -> dict[str, Any]:
        return {"id": str(conv.id), "participant_count": 2, "can_send_message": True, "unread_count": 1,
                "create_time": int(conv.messages[0].created),
                "participants": [
                    {"role": "BUYER", "user_id": str(conv.buyer_id), "im_user_id": f"im{conv.buyer_id}",
                     "nickname": conv.buyer_name, "avatar": "", "buyer_platform": "TIKTOK_SHOP"},
                    {"role": "SHOP", "user_id": str(SHOP_USER_ID), "im_user_id": f"im{SHOP_USER_ID}",
                     "nickname": "Sandbox shop", "avatar": ""}],
                "latest_message": self._message(conv, conv.messages[-1])}

    def _message(self, conv: Conv, m: Msg) -> dict[str, Any]:
        kind, content = "TEXT", {"content": m.text}
        if m.kind == "order":
            kind, content = "ORDER_CARD", {"order_id": m.order_id}
        elif m.kind == "item":
            kind, content = "PRODUCT_CARD", {"product_id": m.product_id}
        elif m.kind == "image":
            kind, content = "IMAGE", {"url": m.text, "width": 240, "height": 240}
        sender = ({"role": "BUYER", "im_user_id": f"im{conv.buyer_id}", "nickname": conv.buyer_name}
                  if m.from_buyer else {"role": "SHOP", "im_user_id": f"im{SHOP_USER_ID}", "nickname": "Sandbox shop"})
        return {"id": str(m.id), "index": str(m.id), "type": kind,
                "content": json.dumps(content, ensure_ascii=False), "create_time": int(m.created),
                "is_visible": True, "sender": sender}


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError):
        return 0
