"""A loopback Lazada Open Platform (IM API), for tests, benchmarks and demos.

It follows the pages named in ``connectors/lazada/connector.py``: every call's ``sign``
is checked (``UPPER(hex(HMAC-SHA256(app_secret, api_path + sorted k+v)))``, ``sign``
excluded) and a ``timestamp`` (ms) more than 7 minutes off is refused; access tokens run
out after ``token_ttl`` and ``/auth/token/refresh`` trades a refresh token for new ones;
sessions are listed newest activity first in pages cut at ``next_start_time`` +
``last_session_id``; messages newest first in pages cut the same way, ``content`` as a
JSON string. Errors use Lazada's ``{"type", "code", "message", "request_id"}`` with HTTP
200: ``IncompleteSignature``, ``IllegalAccessToken``, ``MissingParameter``,
``ApiCallLimit`` (rate limit), ``InternalError``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base.marketplace import signature_matches
from connectors.base.marketplace_sandbox import Conv, MarketplaceSandbox, Msg
from connectors.lazada.connector import ITEM, LIST_PATH, MESSAGES_PATH, ORDER, REFRESH_PATH, SEND_PATH, TEXT, sign

APP_KEY = "112233"
APP_SECRET = "lzsec" + "7d1f9a2c" * 4
SELLER_ID = 100077001


class LazadaSandbox(MarketplaceSandbox):
    """A fake Lazada REST API (and its auth host) for one seller."""

    name = "lazada"

    def __init__(self, *, app_secret: str = APP_SECRET, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app_key = APP_KEY
        self.app_secret = app_secret

    def channel(self) -> dict[str, Any]:
        """The inbox channel fields that connect to this sandbox."""
        return {"type": "lazada", "api_base_url": self.base_url + "/rest", "auth_base_url": self.base_url + "/auth",
                "app_key": self.app_key, "app_secret": self.app_secret,
                "access_token": self.access_token, "refresh_token": self.refresh_token}

    def routes(self) -> list[Route]:
        return [
            Route("/auth" + REFRESH_PATH, self._on_refresh, methods=["GET", "POST"]),
            Route("/rest" + LIST_PATH, self._on_list, methods=["GET"]),
            Route("/rest" + MESSAGES_PATH, self._on_messages, methods=["GET"]),
            Route("/rest" + SEND_PATH, self._on_send, methods=["POST"]),
            self.media_route(),
        ]

    async def _params(self, request: Request) -> dict[str, Any]:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        return params

    def _check(self, path: str, params: dict[str, Any], *, shop: bool) -> Response | None:
        expected = sign(self.app_secret, path, params)
        if params.get("app_key") != self.app_key or not signature_matches(expected, params.get("sign")):
            return self._error(path, params, "IncompleteSignature",
                               "The request signature does not conform to platform standards", False)
        try:
            timestamp = int(params.get("timestamp", "")) / 1000
        except ValueError:
            return self._error(path, params, "MissingParameter", "timestamp is required", True)
        if abs(time.time() - timestamp) > 420:
            return self._error(path, params, "InvalidTimestamp", "Timestamp is invalid", True)
        if shop and self.token_valid(params.get("access_token")):
            return self._error(path, params, "IllegalAccessToken",
                               "The specified access token is invalid or expired", True)
        limit = "The request has exceeded the limit of api calls"
        return self.fault_answer(
            path, lambda: self._error(path, params, "ApiCallLimit", limit, True),
            lambda: self._error(path, params, "InternalError", "The request has failed due to an internal error", True))

    def _error(self, path: str, params: dict[str, Any], code: str, message: str, signed: bool) -> Response:
        self.record(path, params, 429 if code == "ApiCallLimit" else 400, signed)
        return JSONResponse({"type": "ISV" if code != "InternalError" else "SYSTEM", "code": code,
                             "message": message, "request_id": secrets.token_hex(8)})

    def _ok(self, path: str, params: dict[str, Any], data: dict[str, Any]) -> Response:
        self.record(path, params, 200, True)
        body = {"code": "0", "data": data, "request_id": secrets.token_hex(8)}
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    async def _on_refresh(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._check(REFRESH_PATH, params, shop=False)
        if refused is not None:
            return refused
        tokens = self.use_refresh_token(str(params.get("refresh_token") or ""))
        if tokens is None:
            return self._error(REFRESH_PATH, params, "IllegalRefreshToken", "The refresh token is invalid", True)
        self.record(REFRESH_PATH, params, 200, True)
        return JSONResponse({"code": "0", "access_token": tokens[0], "refresh_token": tokens[1],
                             "expires_in": int(self.token_ttl), "refresh_expires_in": 30 * 86400,
                             "country": "th", "account_platform": "seller_center",
                             "request_id": secrets.token_hex(8)})

    async def _on_list(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._check(LIST_PATH, params, shop=True)
        if refused is not None:
            return refused
        size = max(1, min(100, int(params.get("page_size") or 20)))
        start = int(params.get("start_time") or time.time() * 1000)
        last = params.get("last_session_id")
        before = (start / 1000, int(last) if last else 2**80)
        page = self.newest_first(before=before, limit=size + 1)
        more = len(page) > size
        page = page[:size]
        data: dict[str, Any] = {"session_list": [self._session(c) for c in page], "has_more": more}
        if more:
            data.update(next_start_time=_ms(page[-1].last), last_session_id=str(page[-1].id))
        return self._ok(LIST_PATH, params, data)

    async def _on_messages(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._check(MESSAGES_PATH, params, shop=True)
        if refused is not None:
            return refused
        conv = self.conversation(int(params.get("session_id") or 0))
        if conv is None:
            return self._error(MESSAGES_PATH, params, "InvalidParameter", "session_id not found", True)
        size = max(1, min(100, int(params.get("page_size") or 20)))
        start = int(params.get("start_time") or time.time() * 1000)
        last = params.get("last_message_id")
        before = (start, int(last) if last else 2**80)
        newest = [m for m in conv.messages[::-1] if (_ms(m.created), m.id) < before]
        page = newest[:size]
        more = len(newest) > size
        data: dict[str, Any] = {"message_list": [self._message(conv, m) for m in page], "has_more": more}
        if more:
            data.update(next_start_time=_ms(page[-1].created), last_message_id=str(page[-1].id))
        return self._ok(MESSAGES_PATH, params, data)

    async def _on_send(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._check(SEND_PATH, params, shop=True)
        if refused is not None:
            return refused
        conv = self.conversation(int(params.get("session_id") or 0))
        if conv is None or str(params.get("template_id")) != str(TEXT) or not params.get("txt"):
            return self._error(SEND_PATH, params, "InvalidParameter", "session_id, template_id=1 and txt are required", True)
        message = self.add_reply(conv.id, params["txt"])
        assert message is not None
        return self._ok(SEND_PATH, params, {"message_id": str(message.id)})

    def _session(self, conv: Conv) -> dict[str, Any]:
        last = conv.messages[-1]
        return {"session_id": str(conv.id), "buyer_id": conv.buyer_id, "title": conv.buyer_name,
                "head_url": "", "unread_count": 1, "last_message_time": _ms(conv.last),
                "last_message_id": str(last.id), "summary": last.text[:40], "site_id": "LAZADA_TH"}

    def _message(self, conv: Conv, m: Msg) -> dict[str, Any]:
        template, content = TEXT, {"txt": m.text}
        if m.kind == "order":
            template, content = ORDER, {"orderId": m.order_id}
        elif m.kind == "item":
            template, content = ITEM, {"itemId": m.product_id}
        elif m.kind == "image":
            template, content = 3, {"imgUrl": m.text, "width": 240, "height": 240}
        buyer, seller = (1, conv.buyer_id), (2, SELLER_ID)
        (from_type, from_id), (to_type, to_id) = (buyer, seller) if m.from_buyer else (seller, buyer)
        return {"message_id": str(m.id), "session_id": str(conv.id), "from_account_type": from_type,
                "from_account_id": str(from_id), "to_account_type": to_type, "to_account_id": str(to_id),
                "template_id": template, "type": 1, "content": json.dumps(content, ensure_ascii=False),
                "send_time": _ms(m.created), "status": 0, "auto_reply": False}


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))
