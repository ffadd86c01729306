"""A loopback Shopee Open Platform v2 (seller chat), for tests, benchmarks and demos.

It follows the pages named in ``connectors/shopee/connector.py``: every call's ``sign``
is checked (HMAC-SHA256 with the partner key over ``partner_id + path + timestamp +
access_token + shop_id``, or ``partner_id + path + timestamp`` for the token call) and a
timestamp more than five minutes off is refused; access tokens run out after
``token_ttl`` and ``/api/v2/auth/access_token/get`` trades a refresh token for new ones
(spending the old one); conversations are listed newest activity first in pages cut at
``next_cursor.next_message_time_nano``; messages newest first in pages cut at
``next_offset``; ids are above 2**53 and are sent as JSON numbers, as Shopee does.

Answers follow Shopee's envelope ``{"request_id", "error", "message", "response"}``;
errors: ``error_sign`` (403), ``invalid_acceess_token`` (403, Shopee's spelling, for an
expired or unknown token), ``error_param`` (400), ``error_too_many_request`` (429, with
``Retry-After``), ``error_server`` (500).

Pushes (*Push Mechanism*, code 10): :meth:`ShopeeSandbox.chat_push` builds the
``webchat_push`` body for a message, :meth:`~ShopeeSandbox.signed_push` signs it
(``Authorization`` = hex HMAC-SHA256 with the partner key over ``callback URL + "|" +
raw body``) and :meth:`~ShopeeSandbox.deliver_push` / :meth:`~ShopeeSandbox.push_to`
POST it to Postroom, as Shopee does after a buyer writes.

Run ``python -m connectors.shopee.sandbox --conversations 100 --messages 5`` to serve one
by hand; it prints the inbox settings to use.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base.marketplace import hmac_sha256_hex, signature_matches
from connectors.base.marketplace_sandbox import Conv, MarketplaceSandbox, Msg
from connectors.base.sandbox import form_parts
from connectors.shopee.connector import LIST_PATH, MESSAGES_PATH, REFRESH_PATH, SEND_PATH, UPLOAD_IMAGE_PATH, sign
from connectors.shopee.push import WEBCHAT_PUSH, signed_part

PARTNER_ID = 2001887
SHOP_ID = 820001
PARTNER_KEY = "shpk" + "5a6f4d7a" * 7


class ShopeeSandbox(MarketplaceSandbox):
    """A fake Shopee partner API for one shop."""

    name = "shopee"

    def __init__(self, *, partner_key: str = PARTNER_KEY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.partner_key = partner_key
        self.partner_id = PARTNER_ID
        self.shop_id = SHOP_ID

    def channel(self) -> dict[str, Any]:
        """The inbox channel fields that connect to this sandbox."""
        return {"type": "shopee", "partner_id": self.partner_id, "shop_id": self.shop_id,
                "api_base_url": self.base_url, "partner_key": self.partner_key,
                "access_token": self.access_token, "refresh_token": self.refresh_token}

    def routes(self) -> list[Route]:
        return [
            Route(REFRESH_PATH, self._refresh, methods=["POST"]),
            Route(LIST_PATH, self._list, methods=["GET"]),
            Route(MESSAGES_PATH, self._messages, methods=["GET"]),
            Route(SEND_PATH, self._send, methods=["POST"]),
            Route(UPLOAD_IMAGE_PATH, self._upload_image, methods=["POST"]),
            self.media_route(),
        ]

    # -- checks ------------------------------------------------------------------------
    def _check(self, request: Request, path: str, *, shop: bool) -> JSONResponse | None:
        q = request.query_params
        params = dict(q)
        try:
            timestamp = int(q.get("timestamp", ""))
        except ValueError:
            return self._error(path, params, 400, "error_param", "timestamp is required", False)
        token = q.get("access_token", "") if shop else ""
        shop_id = q.get("shop_id", "") if shop else ""
        expected = sign(self.partner_key, str(self.partner_id), path, timestamp, token, shop_id)
        if q.get("partner_id") != str(self.partner_id) or not signature_matches(expected, q.get("sign")):
            return self._error(path, params, 403, "error_sign", "Wrong sign.", False)
        if abs(time.time() - timestamp) > 300:
            return self._error(path, params, 403, "error_param", "Invalid timestamp.", True)
        if shop:
            if shop_id != str(self.shop_id):
                return self._error(path, params, 403, "error_auth", "Invalid shop_id.", True)
            problem = self.token_valid(token)
            if problem:
                return self._error(path, params, 403, "invalid_acceess_token", "Invalid access_token.", True)
        busy = "Too many requests, please try later."
        return self.fault_answer(
            path, lambda: self._error(path, params, 429, "error_too_many_request", busy, True),
            lambda: self._error(path, params, 500, "error_server", "Something wrong. Please try later.", True))

    def _error(self, path: str, params: dict[str, Any], status: int, error: str, message: str,
               signed: bool) -> JSONResponse:
        self.record(path, params, status, signed)
        return JSONResponse({"request_id": secrets.token_hex(16), "error": error, "message": message}, status)

    def _ok(self, path: str, params: dict[str, Any], response: dict[str, Any]) -> Response:
        self.record(path, params, 200, True)
        body = {"request_id": secrets.token_hex(16), "error": "", "message": "", "response": response}
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    # -- routes ------------------------------------------------------------------------
    async def _refresh(self, request: Request) -> Response:
        refused = self._check(request, REFRESH_PATH, shop=False)
        if refused is not None:
            return refused
        body = json.loads(await request.body() or b"{}")
        tokens = self.use_refresh_token(str(body.get("refresh_token") or ""))
        params = dict(request.query_params)
        if tokens is None or int(body.get("shop_id") or 0) != self.shop_id:
            return self._error(REFRESH_PATH, params, 403, "error_auth", "Invalid refresh_token.", True)
        self.record(REFRESH_PATH, params, 200, True)
        access, refresh = tokens
        return JSONResponse({"request_id": secrets.token_hex(16), "error": "", "message": "",
                             "partner_id": self.partner_id, "shop_id": self.shop_id,
                             "access_token": access, "refresh_token": refresh, "expire_in": int(self.token_ttl)})

    async def _list(self, request: Request) -> Response:
        refused = self._check(request, LIST_PATH, shop=True)
        if refused is not None:
            return refused
        q = request.query_params
        size = max(1, min(100, int(q.get("page_size") or 25)))
        nano = q.get("next_timestamp_nano")
        before = (int(nano) / 1e9, -1) if nano else None
        page = self.newest_first(before=before, limit=size + 1)
        more = len(page) > size
        page = page[:size]
        result: dict[str, Any] = {"page_size": size, "more": more}
        if more:
            result["next_cursor"] = {"next_message_time_nano": str(_nano(page[-1].last)),
                                     "conversation_id": str(page[-1].id)}
        return self._ok(LIST_PATH, dict(q), {"conversations": [self._conversation(c) for c in page],
                                             "page_result": result})

    async def _messages(self, request: Request) -> Response:
        refused = self._check(request, MESSAGES_PATH, shop=True)
        if refused is not None:
            return refused
        q = request.query_params
        conv = self.conversation(int(q.get("conversation_id") or 0))
        if conv is None:
            return self._error(MESSAGES_PATH, dict(q), 400, "error_param", "conversation not found", True)
        size = max(1, min(60, int(q.get("page_size") or 25)))
        offset = q.get("offset")
        newest = conv.messages[::-1]
        if offset:
            newest = [m for m in newest if m.id < int(offset)]
        page = newest[:size]
        more = len(newest) > size
        result = {"page_size": size, "next_offset": str(page[-1].id) if more else ""}
        return self._ok(MESSAGES_PATH, dict(q), {"messages": [self._message(conv, m) for m in page],
                                                 "page_result": result})

    async def _send(self, request: Request) -> Response:
        refused = self._check(request, SEND_PATH, shop=True)
        if refused is not None:
            return refused
        body = json.loads(await request.body() or b"{}")
        params = {**dict(request.query_params), "body": body}
        content = body.get("content") or {}
        kind = body.get("message_type")
        conv = self.conversation_of(int(body.get("to_id") or 0))
        if conv is None:
            return self._error(SEND_PATH, params, 400, "error_param", "to_id has no conversation with the shop", True)
        if kind == "image":
            url = str(content.get("image_url") or "")
            if url.rsplit("/", 1)[-1] not in self.images or not url.startswith(self.base_url + "/media/"):
                return self._error(SEND_PATH, params, 400, "error_param", "image_url must come from upload_image",
                                   True)
            text = url
        elif kind == "text" and content.get("text"):
            text = content["text"]
        else:
            return self._error(SEND_PATH, params, 400, "error_param", "content.text is required", True)
        message = self.add_reply(conv.id, text, kind=kind)
        assert message is not None
        return self._ok(SEND_PATH, params, {
            "to_id": conv.buyer_id, "message_id": str(message.id), "message_type": kind,
            "content": content, "conversation_id": conv.id,
            "created_timestamp": int(message.created), "message_option": 0})

    async def _upload_image(self, request: Request) -> Response:
        refused = self._check(request, UPLOAD_IMAGE_PATH, shop=True)
        if refused is not None:
            return refused
        _, files = await form_parts(request)
        params = dict(request.query_params)
        upload = files.get("file")
        if upload is None or upload[2] not in ("image/jpeg", "image/png", "image/gif") or not upload[1]:
            return self._error(UPLOAD_IMAGE_PATH, params, 400, "error_param", "file must be a jpg, png or gif",
                               True)
        if len(upload[1]) > 2 * 1024 * 1024:
            return self._error(UPLOAD_IMAGE_PATH, params, 400, "error_param", "file is larger than 2 MB", True)
        url = self.host_image(upload[1], upload[2])
        return self._ok(UPLOAD_IMAGE_PATH, {**params, "file": upload[0]}, {"url": url, "thumbnail": url})

    # -- pushes ------------------------------------------------------------------------
    def chat_push(self, message: Msg) -> dict[str, Any]:
        """The ``webchat_push`` (code 10) body Shopee sends for a chat message."""
        conv = self.conversation(message.conversation_id)
        assert conv is not None
        content = self._message(conv, message)
        buyer, shop = conv.buyer_name, f"shop{self.shop_id}"
        content.update(from_user_name=buyer if message.from_buyer else shop,
                       to_user_name=shop if message.from_buyer else buyer,
                       is_in_chatbot_session=False, quoted_msg=None)
        return {"msg_id": secrets.token_hex(16), "code": WEBCHAT_PUSH, "shop_id": self.shop_id,
                "timestamp": int(time.time()),
                "data": {"type": "message", "region": "TH", "content": content}}

    def signed_push(self, url: str, body: Any, *, key: str | None = None) -> tuple[bytes, dict[str, str]]:
        """A push as Shopee sends it to ``url``: compact JSON and its ``Authorization``."""
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        signature = hmac_sha256_hex(key or self.partner_key, signed_part(url, raw))
        return raw, {"content-type": "application/json", "authorization": signature}

    async def deliver_push(self, client: httpx.AsyncClient, url: str, message: Msg) -> httpx.Response:
        """POST the signed push of ``message`` with ``client`` (an app under test)."""
        raw, headers = self.signed_push(url, self.chat_push(message))
        return await client.post(url, content=raw, headers=headers)

    def push_to(self, url: str, message: Msg) -> httpx.Response:
        """POST the signed push of ``message`` to a running server at ``url``."""
        raw, headers = self.signed_push(url, self.chat_push(message))
        return httpx.post(url, content=raw, headers=headers, timeout=10.0)

    # -- shapes --------------------------------------------------------------------------
    def _conversation(self, conv: Conv) -> dict[str, Any]:
        last = conv.messages[-1]
        return {
            "conversation_id": conv.id, "to_id": conv.buyer_id, "to_name": conv.buyer_name,
            "to_avatar": "", "shop_id": self.shop_id, "unread_count": 1, "pinned": False,
            "last_read_message_id": "0", "latest_message_id": str(last.id),
            "latest_message_type": last.kind, "latest_message_content": {"text": last.text},
            "latest_message_from_id": conv.buyer_id if last.from_buyer else self.shop_id,
            "last_message_timestamp": _nano(conv.last), "last_message_option": 0,
            "max_general_option_hide_time": "9223372036854775807",
        }

    def _message(self, conv: Conv, m: Msg) -> dict[str, Any]:
        buyer, shop = (conv.buyer_id, 0), (self.shop_id, self.shop_id)
        (from_id, from_shop), (to_id, to_shop) = (buyer, shop) if m.from_buyer else (shop, buyer)
        content: dict[str, Any] = {"text": m.text}
        if m.kind == "order":
            content = {"order_sn": m.order_id, "shop_id": self.shop_id}
        elif m.kind == "item":
            content = {"item_id": int(m.product_id or 0), "shop_id": self.shop_id}
        elif m.kind == "image":
            content = {"url": m.text, "thumb_url": m.text, "thumb_height": 240, "thumb_width": 240}
        return {
            "message_id": str(m.id), "message_type": m.kind, "from_id": from_id, "from_shop_id": from_shop,
            "to_id": to_id, "to_shop_id": to_shop, "conversation_id": str(conv.id),
            "created_timestamp": int(m.created), "region": "TH", "status": "normal", "source": "web",
            "content": content, "message_option": 0,
            "source_content": {"order_sn": m.order_id or "", "item_id": int(m.product_id or 0)}
            if m.kind == "text" and (m.order_id or m.product_id) else {},
        }


def _nano(seconds: float) -> int:
    return int(round(seconds * 1e9))


def main() -> None:  # pragma: no cover - manual use and the benchmark's sandbox process
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sandbox = ShopeeSandbox()
    if args.port:
        sandbox.port = args.port
        sandbox.base_url = f"http://127.0.0.1:{args.port}"
    sandbox.fill(args.conversations, args.messages)
    print(json.dumps(sandbox.channel()), flush=True)
    sandbox.serve()


if __name__ == "__main__":  # pragma: no cover
    main()
