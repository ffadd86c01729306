"""A loopback eBay REST Message API and OAuth token endpoint, for tests and demos.

It follows the pages named in ``connectors/ebay/connector.py``: every Message API call
needs ``Authorization: Bearer`` with a live user token (401, error 1001 *Invalid access
token* otherwise); ``POST /identity/v1/oauth2/token`` checks HTTP Basic
``client_id:client_secret`` and the refresh token (``invalid_grant`` otherwise) and
keeps the refresh token, as eBay does; ``GET /conversation`` lists members'
conversations newest activity first and ``GET /conversation/{id}`` their messages,
both paged by ``limit`` / ``offset`` with ``next`` links; ``POST /send_message`` stores
a reply. Rate limits answer 429 with error 2001 *Too many requests*.

Post-Order API (pages named in ``connectors/ebay/requests.py``): return requests and
item-not-received inquiries opened with :meth:`EbaySandbox.open_return` /
:meth:`~EbaySandbox.open_inquiry` (closed with :meth:`~EbaySandbox.close_request`) are
served by ``GET /post-order/v2/return/search`` and ``/inquiry/search`` (open ones only,
creation-date filters, ``limit`` capped at :attr:`~EbaySandbox.request_page_limit`,
``offset`` = page number from 1, ``paginationOutput``), which want
``Authorization: IAF <user token>`` and ``X-EBAY-C-MARKETPLACE-ID``; ``send_message`` on a
request stores the seller's message in :attr:`~EbaySandbox.request_messages`.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base.marketplace import signature_matches
from connectors.base.marketplace_sandbox import Conv, MarketplaceSandbox, Msg
from connectors.ebay.connector import LIST_PATH, MESSAGES_PATH, SEND_PATH, TOKEN_PATH
from connectors.ebay.requests import (
    INQUIRY_MESSAGE_PATH,
    INQUIRY_SEARCH_PATH,
    RETURN_MESSAGE_PATH,
    RETURN_SEARCH_PATH,
    iso,
    post_order_time,
)

CLIENT_ID = "PostroomS-sandbox-PRD-1a2b3c4d5-6e7f8a9b"
CLIENT_SECRET = "PRD-" + "9c3e5a7b1d2f" * 3
SELLER = "postroom_sandbox_shop"


@dataclass
class BuyerRequest:
    """A return request or an item-not-received inquiry a buyer opened."""

    kind: str  # "return" | "item_not_received"
    id: str
    buyer: str
    item_id: str
    transaction_id: str
    created: float
    order_id: str | None = None
    reason: str = ""
    comment: str = ""
    open: bool = True


class EbaySandbox(MarketplaceSandbox):
    """A fake eBay Message API for one seller."""

    name = "ebay"
    token_ttl = 7200.0

    def __init__(self, *, client_secret: str = CLIENT_SECRET, **kwargs: Any) -> None:
        kwargs.setdefault("rotate_refresh_tokens", False)
        super().__init__(**kwargs)
        self.client_secret = client_secret
        #: The largest ``limit`` the Post-Order searches honour (tests make it small).
        self.request_page_limit = 200
        self.requests: dict[str, BuyerRequest] = {}
        #: ``(request id, content)`` of the seller's messages on requests.
        self.request_messages: list[tuple[str, str]] = []

    def channel(self) -> dict[str, Any]:
        """The inbox channel fields that connect to this sandbox."""
        return {"type": "ebay", "api_base_url": self.base_url, "client_id": CLIENT_ID, "seller_username": SELLER,
                "client_secret": self.client_secret, "access_token": self.access_token,
                "refresh_token": self.refresh_token}

    def routes(self) -> list[Route]:
        return [
            Route(TOKEN_PATH, self._on_token, methods=["POST"]),
            Route(LIST_PATH, self._on_list, methods=["GET"]),
            Route(MESSAGES_PATH.replace("{conversation_id}", "{cid}"), self._on_messages, methods=["GET"]),
            Route(SEND_PATH, self._on_send, methods=["POST"]),
            Route(RETURN_SEARCH_PATH, self._on_return_search, methods=["GET"]),
            Route(INQUIRY_SEARCH_PATH, self._on_inquiry_search, methods=["GET"]),
            Route(RETURN_MESSAGE_PATH, self._on_request_message, methods=["POST"]),
            Route(INQUIRY_MESSAGE_PATH, self._on_request_message, methods=["POST"]),
            self.media_route(),
        ]

    # -- Post-Order API ------------------------------------------------------------------
    def open_return(self, buyer: str, *, order_id: str, item_id: str, reason: str = "NOT_AS_DESCRIBED",
                    comment: str = "", at: float | None = None) -> BuyerRequest:
        """A buyer opens a return request."""
        request = BuyerRequest("return", str(self.new_id() % 10**10), buyer, item_id, str(self.new_id() % 10**12),
                               time.time() if at is None else at, order_id, reason, comment)
        with self._lock:
            self.requests[request.id] = request
        return request

    def open_inquiry(self, buyer: str, *, item_id: str, transaction_id: str, at: float | None = None) -> BuyerRequest:
        """A buyer opens an item-not-received inquiry."""
        request = BuyerRequest("item_not_received", str(self.new_id() % 10**10), buyer, item_id, transaction_id,
                               time.time() if at is None else at)
        with self._lock:
            self.requests[request.id] = request
        return request

    def close_request(self, request_id: str) -> None:
        """The request is settled: searches for open ones no longer list it."""
        with self._lock:
            self.requests[request_id].open = False

    def _post_order_check(self, request: Request, path: str) -> Response | None:
        params = dict(request.query_params)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("IAF ") or self.token_valid(auth[4:]):
            return self._post_order_error(path, params, 401, 1001, "Invalid access token", False)
        if not request.headers.get("x-ebay-c-marketplace-id"):
            return self._post_order_error(path, params, 400, 1002, "X-EBAY-C-MARKETPLACE-ID is required", True)
        return self.fault_answer(
            path, lambda: self._post_order_error(path, params, 429, 2001, "Too many requests", True),
            lambda: self._post_order_error(path, params, 500, 10000, "Internal error", True))

    def _post_order_error(self, path: str, params: dict[str, Any], status: int, code: int, message: str,
                          signed: bool) -> JSONResponse:
        self.record(path, params, status, signed)
        return JSONResponse({"error": [{"errorId": code, "domain": "returnErrorDomain", "severity": "ERROR",
                                        "category": "REQUEST", "message": message}]}, status)

    def _search(self, request: Request, path: str, kind: str, since_param: str) -> Response:
        q = dict(request.query_params)
        limit = max(1, min(self.request_page_limit, int(q.get("limit") or 25)))
        page = max(1, int(q.get("offset") or 1))
        since = post_order_time(q.get(since_param)) if q.get(since_param) else 0.0
        with self._lock:
            found = sorted((r for r in self.requests.values() if r.kind == kind and r.open and r.created >= since),
                           key=lambda r: (-r.created, r.id))
        members = found[(page - 1) * limit:page * limit]
        body = {"members": [self._return(r) if kind == "return" else self._inquiry(r) for r in members],
                "paginationOutput": {"offset": page, "limit": limit, "totalEntries": len(found),
                                     "totalPages": math.ceil(len(found) / limit)}}
        body["total" if kind == "return" else "totalNumberOfInquiries"] = len(found)
        return self._ok(path, q, body)

    async def _on_return_search(self, request: Request) -> Response:
        refused = self._post_order_check(request, RETURN_SEARCH_PATH)
        if refused is not None:
            return refused
        if request.query_params.get("role", "SELLER") != "SELLER":
            return self._post_order_error(RETURN_SEARCH_PATH, dict(request.query_params), 400, 1003,
                                          "this seller can only search as SELLER", True)
        return self._search(request, RETURN_SEARCH_PATH, "return", "creation_date_range_from")

    async def _on_inquiry_search(self, request: Request) -> Response:
        refused = self._post_order_check(request, INQUIRY_SEARCH_PATH)
        if refused is not None:
            return refused
        return self._search(request, INQUIRY_SEARCH_PATH, "item_not_received", "inquiry_creation_date_range_from")

    async def _on_request_message(self, request: Request) -> Response:
        kind = "return" if "/return/" in request.url.path else "item_not_received"
        path = RETURN_MESSAGE_PATH if kind == "return" else INQUIRY_MESSAGE_PATH
        refused = self._post_order_check(request, path)
        if refused is not None:
            return refused
        payload = json.loads(await request.body() or b"{}")
        content = (payload.get("message") or {}).get("content")
        target = self.requests.get(request.path_params["id"])
        if target is None or target.kind != kind or not content:
            return self._post_order_error(path, {"body": payload}, 400, 1004, "unknown request or empty message", True)
        with self._lock:
            self.request_messages.append((target.id, content))
        self.record(path, {"body": payload}, 200, True)
        return Response(status_code=200)

    def _return(self, r: BuyerRequest) -> dict[str, Any]:
        return {"returnId": r.id, "orderId": r.order_id, "buyerLoginName": r.buyer, "sellerLoginName": SELLER,
                "currentType": "MONEY_BACK", "state": "RETURN_REQUESTED", "status": "RETURN_REQUESTED",
                "creationInfo": {"item": {"itemId": r.item_id, "transactionId": r.transaction_id,
                                          "returnQuantity": 1},
                                 "type": "MONEY_BACK", "reason": r.reason, "reasonType": "SNAD",
                                 "comments": {"content": r.comment}, "creationDate": {"value": iso(r.created)}},
                "sellerResponseDue": {"activityDue": "SELLER_APPROVE_REQUEST",
                                      "respondByDate": {"value": iso(r.created + 3 * 86400)}}}

    def _inquiry(self, r: BuyerRequest) -> dict[str, Any]:
        return {"inquiryId": r.id, "inquiryStatusEnum": "WAITING_SELLER_RESPONSE", "itemId": r.item_id,
                "transactionId": r.transaction_id, "buyer": r.buyer, "seller": SELLER,
                "claimAmount": {"value": 25.0, "currency": "USD"}, "creationDate": {"value": iso(r.created)},
                "respondByDate": {"value": iso(r.created + 3 * 86400)}}

    def _check(self, request: Request, path: str) -> Response | None:
        params = dict(request.query_params)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or self.token_valid(auth[7:]):
            return self._error(path, params, 401, 1001, "Invalid access token", False)
        return self.fault_answer(
            path, lambda: self._error(path, params, 429, 2001, "Too many requests", True),
            lambda: self._error(path, params, 500, 10000, "There was a problem with an eBay internal system", True))

    def _error(self, path: str, params: dict[str, Any], status: int, code: int, message: str,
               signed: bool) -> JSONResponse:
        self.record(path, params, status, signed)
        return JSONResponse({"errors": [{"errorId": code, "domain": "API_MESSAGE", "category": "REQUEST",
                                         "message": message}]}, status)

    def _ok(self, path: str, params: dict[str, Any], body: dict[str, Any]) -> Response:
        self.record(path, params, 200, True)
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    async def _on_token(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{self.client_secret}".encode()).decode()
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not signature_matches(expected, request.headers.get("authorization")):
            self.record(TOKEN_PATH, {}, 401, False)
            return JSONResponse({"error": "invalid_client", "error_description": "client authentication failed"}, 401)
        tokens = self.use_refresh_token(form.get("refresh_token", "")) if form.get("grant_type") == "refresh_token" else None
        if tokens is None:
            self.record(TOKEN_PATH, {}, 400, True)
            return JSONResponse({"error": "invalid_grant", "error_description":
                                 "the provided authorization refresh token is invalid or was issued to another client"},
                                400)
        self.record(TOKEN_PATH, {}, 200, True)
        return JSONResponse({"access_token": tokens[0], "expires_in": int(self.token_ttl),
                             "token_type": "User Access Token"})

    async def _on_list(self, request: Request) -> Response:
        refused = self._check(request, LIST_PATH)
        if refused is not None:
            return refused
        q = dict(request.query_params)
        if q.get("conversation_type") not in ("FROM_MEMBERS", "FROM_EBAY"):
            return self._error(LIST_PATH, q, 400, 355001, "conversation_type is required", True)
        limit = max(1, min(50, int(q.get("limit") or 25)))
        offset = int(q.get("offset") or 0)
        page = self.page_by_offset(offset, limit) if q["conversation_type"] == "FROM_MEMBERS" else []
        total = self.count()
        body: dict[str, Any] = {"conversations": [self._conversation(c) for c in page], "limit": limit,
                                "offset": offset, "total": total, "href": str(request.url)}
        if offset + limit < total and q["conversation_type"] == "FROM_MEMBERS":
            body["next"] = f"{self.base_url}{LIST_PATH}?conversation_type=FROM_MEMBERS&limit={limit}&offset={offset + limit}"
        return self._ok(LIST_PATH, q, body)

    async def _on_messages(self, request: Request) -> Response:
        refused = self._check(request, MESSAGES_PATH)
        if refused is not None:
            return refused
        q = dict(request.query_params)
        conv = self.conversation(int(request.path_params["cid"]))
        if conv is None:
            return self._error(MESSAGES_PATH, q, 404, 355002, "Conversation not found", True)
        limit = max(1, min(50, int(q.get("limit") or 25)))
        offset = int(q.get("offset") or 0)
        body: dict[str, Any] = {"conversationStatus": "ACTIVE", "conversationType": "FROM_MEMBERS",
                                "conversationTitle": f"Question from {conv.buyer_name}",
                                "messages": [self._message(conv, m) for m in conv.messages[offset:offset + limit]],
                                "limit": limit, "offset": offset, "total": len(conv.messages)}
        if offset + limit < len(conv.messages):
            body["next"] = f"{self.base_url}/commerce/message/v1/conversation/{conv.id}?offset={offset + limit}"
        return self._ok(MESSAGES_PATH, q, body)

    async def _on_send(self, request: Request) -> Response:
        refused = self._check(request, SEND_PATH)
        if refused is not None:
            return refused
        payload = json.loads(await request.body() or b"{}")
        conv = self.conversation(int(payload.get("conversationId") or 0))
        if conv is None or not payload.get("messageText"):
            return self._error(SEND_PATH, payload, 400, 355003, "conversationId and messageText are required", True)
        message = self.add_reply(conv.id, payload["messageText"])
        assert message is not None
        return self._ok(SEND_PATH, {"body": payload}, {**self._message(conv, message)})

    def _conversation(self, conv: Conv) -> dict[str, Any]:
        first = conv.messages[0]
        reference = next((m.product_id for m in conv.messages if m.product_id), None)
        body: dict[str, Any] = {"conversationId": str(conv.id), "conversationStatus": "ACTIVE",
                                "conversationTitle": f"Question from {conv.buyer_name}",
                                "conversationType": "FROM_MEMBERS", "createdDate": _iso(first.created),
                                "latestMessage": self._message(conv, conv.messages[-1]), "unreadCount": 1}
        if reference:
            body.update(referenceId=reference, referenceType="LISTING")
        return body

    def _message(self, conv: Conv, m: Msg) -> dict[str, Any]:
        sender, recipient = (conv.buyer_name, SELLER) if m.from_buyer else (SELLER, conv.buyer_name)
        text = m.text if m.kind == "text" else f"About {m.kind} {m.order_id or m.product_id}: {m.text}"
        media = []
        if m.kind == "image":
            text, media = "", [{"mediaName": m.text.rsplit("/", 1)[-1], "mediaType": "IMAGE", "mediaUrl": m.text}]
        return {"messageId": str(m.id), "messageBody": text, "createdDate": _iso(m.created),
                "senderUsername": sender, "recipientUsername": recipient, "readStatus": False,
                "subject": f"Question from {conv.buyer_name}", "messageMedia": media}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
