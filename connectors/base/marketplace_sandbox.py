"""The part every marketplace sandbox shares: a shop's conversations and messages, tokens
that expire and are refreshed, queued faults, the calls received, and a loopback server.

Each platform's ``sandbox.py`` adds only its wire format: routes, signature checks, the
JSON it answers and its error codes. Tests and benchmarks play buyers
(:meth:`MarketplaceSandbox.buyer_writes`, :meth:`~MarketplaceSandbox.fill`), expire
tokens (:meth:`~MarketplaceSandbox.expire_access_tokens`), queue faults
(:meth:`~MarketplaceSandbox.fail_next`) and read what the connector did
(:attr:`~MarketplaceSandbox.calls`, :attr:`~MarketplaceSandbox.sent`).

The server is :class:`connectors.base.sandbox.LoopbackServer` (127.0.0.1, a thread of its
own); ``serve`` runs it as the main program of a process instead, so benchmarks can
measure the connector's memory alone. Calls and faults are kept here in the
marketplaces' terms (a call's query parameters and whether its signature held; faults
by kind: a rate limit or a server error).
"""

from __future__ import annotations

import bisect
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base.sandbox import LoopbackServer


@dataclass
class Call:
    """One request the connector made."""

    path: str
    params: dict[str, Any]
    status: int
    signed: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """An error answer queued for the next calls of one path."""

    path: str
    kind: str
    times: int
    retry_after: int | None = None
    #: Calls of the path let through before the fault starts.
    after: int = 0


@dataclass
class Msg:
    """One chat message in the sandbox's shop."""

    id: int
    conversation_id: int
    from_buyer: bool
    text: str
    created: float
    kind: str = "text"
    order_id: str | None = None
    product_id: str | None = None


@dataclass
class Conv:
    """One buyer's conversation with the shop (messages oldest first)."""

    id: int
    buyer_id: int
    buyer_name: str
    messages: list[Msg] = field(default_factory=list)

    @property
    def last(self) -> float:
        return self.messages[-1].created if self.messages else 0.0


class MarketplaceSandbox(LoopbackServer):
    """A fake marketplace for one shop. Subclasses provide ``routes()``."""

    #: How long an access token lives (platforms: hours; tests shorten it).
    token_ttl: float = 4 * 3600.0
    name = "marketplace"
    #: Ids start here: above 2**53, as Shopee's conversation ids do.
    first_id = 2**53 + 1_000_000

    def __init__(self, *, token_ttl: float | None = None, rotate_refresh_tokens: bool = True) -> None:
        if token_ttl is not None:
            self.token_ttl = token_ttl
        super().__init__()
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.calls: list[Call] = []  # type: ignore[assignment]  # the marketplaces' record
        #: Replies the connector sent, as stored messages.
        self.sent: list[Msg] = []
        self.refreshes = 0
        self._lock = threading.RLock()
        self._ids = itertools.count(self.first_id)
        self._conversations: dict[int, Conv] = {}
        self._by_buyer: dict[int, Conv] = {}
        #: (last message time, conversation id), kept sorted: the list order.
        self._order: list[tuple[float, int]] = []
        self._faults: list[Fault] = []  # type: ignore[assignment]
        self._access: dict[str, float] = {}
        self._refresh_tokens: set[str] = set()
        #: Image files the shop's chats show, by name (served at ``/media/<name>``).
        self.images: dict[str, tuple[bytes, str]] = {}
        self.access_token, self.refresh_token = self.issue_tokens(initial=True)

    # -- lifecycle (start, stop, ``with``: LoopbackServer) -----------------------------
    def serve(self) -> None:
        """Serve in this thread until interrupted (a sandbox process of its own)."""
        uvicorn.run(Starlette(routes=self.routes()), host="127.0.0.1", port=self.port, log_level="warning",
                    lifespan="off")

    # -- tokens ------------------------------------------------------------------------
    def issue_tokens(self, *, initial: bool = False) -> tuple[str, str]:
        """A new access token (valid ``token_ttl``) and refresh token."""
        with self._lock:
            access = secrets.token_hex(16)
            refresh = secrets.token_hex(16)
            self._access[access] = time.time() + self.token_ttl
            self._refresh_tokens.add(refresh)
            if not initial:
                self.refreshes += 1
            return access, refresh

    def token_valid(self, token: str | None) -> str | None:
        """None when ``token`` is a live access token, else ``"expired"`` or ``"invalid"``."""
        with self._lock:
            expires = self._access.get(token or "")
        if expires is None:
            return "invalid"
        return "expired" if time.time() >= expires else None

    def use_refresh_token(self, refresh: str) -> tuple[str, str] | None:
        """Trade a refresh token for new tokens (the old one is spent when rotating)."""
        with self._lock:
            if refresh not in self._refresh_tokens:
                return None
            access, new_refresh = self.issue_tokens()
            if self.rotate_refresh_tokens:
                self._refresh_tokens.discard(refresh)
            else:
                self._refresh_tokens.discard(new_refresh)
                new_refresh = refresh
            return access, new_refresh

    def expire_access_tokens(self) -> None:
        """Every access token issued so far runs out now."""
        with self._lock:
            for token in self._access:
                self._access[token] = 0.0

    # -- faults and calls --------------------------------------------------------------
    def fail_next(self, path: str, kind: str = "rate", *, times: int = 1,  # type: ignore[override]
                  retry_after: int | None = 1, after: int = 0) -> None:
        """Answer ``times`` calls of ``path`` with an error (``rate``, ``server``), starting
        after ``after`` more calls of it."""
        with self._lock:
            self._faults.append(Fault(path, kind, times, retry_after, after))

    def take_fault(self, path: str) -> Fault | None:  # type: ignore[override]
        """The fault queued for this call, if any (used up one call at a time)."""
        with self._lock:
            for fault in self._faults:
                if fault.path != path or fault.times <= 0:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                return fault
        return None

    def fault_answer(self, path: str, rate: Callable[[], Response],
                     server: Callable[[], Response]) -> Response | None:
        """The answer a fault queued for ``path`` gives, None when there is none: ``rate()``
        with the fault's ``Retry-After`` for a rate limit, else ``server()`` (only the one
        used is called, so only it records the call)."""
        fault = self.take_fault(path)
        if fault is None:
            return None
        if fault.kind != "rate":
            return server()
        response = rate()
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    def record(self, path: str, params: dict[str, Any], status: int, signed: bool) -> None:  # type: ignore[override]
        """Remember a call (tests read :attr:`calls`)."""
        with self._lock:
            self.calls.append(Call(path, params, status, signed))

    def calls_to(self, path: str) -> list[Call]:
        """The calls made to one path."""
        with self._lock:
            return [c for c in self.calls if c.path == path]

    # -- images ----------------------------------------------------------------------------
    def host_image(self, data: bytes, content_type: str = "image/png", name: str | None = None) -> str:
        """Serve ``data`` at a URL of this sandbox (the platform's image CDN); returns it."""
        name = name or f"{self.new_id()}.{content_type.rsplit('/', 1)[-1]}"
        with self._lock:
            self.images[name] = (data, content_type)
        return f"{self.base_url}/media/{name}"

    def buyer_sends_image(self, buyer_id: int, data: bytes, *, content_type: str = "image/png",
                          name: str | None = None) -> Msg:
        """A buyer's image message (``Msg.text`` holds the image's URL)."""
        return self.buyer_writes(buyer_id, self.host_image(data, content_type), name=name, kind="image")

    def media_route(self) -> Route:
        """``GET /media/<name>``: the hosted images (404 for unknown ones)."""
        async def serve(request: Request) -> Response:
            with self._lock:
                found = self.images.get(request.path_params["name"])
            if found is None:
                return Response(status_code=404)
            return Response(found[0], media_type=found[1])
        return Route("/media/{name}", serve, methods=["GET"])

    # -- the shop ------------------------------------------------------------------------
    def new_id(self) -> int:
        """A fresh platform id (above 2**53)."""
        with self._lock:
            return next(self._ids)

    def buyer_writes(self, buyer_id: int, text: str, *, name: str | None = None, at: float | None = None,
                     kind: str = "text", order_id: str | None = None, product_id: str | None = None) -> Msg:
        """A buyer's message (their conversation is created on the first)."""
        return self._add(buyer_id, name, True, text, at, kind, order_id, product_id)

    def seller_writes(self, buyer_id: int, text: str, *, at: float | None = None) -> Msg:
        """A reply the seller typed in the marketplace's own seller centre."""
        return self._add(buyer_id, None, False, text, at, "text", None, None)

    def fill(self, conversations: int, messages: int, *, start: float | None = None) -> None:
        """``conversations`` buyers with ``messages`` messages each, one second apart,
        ending an hour ago (or at ``start``)."""
        now = time.time() - 3600 if start is None else start
        span = conversations * messages
        with self._lock:
            for c in range(conversations):
                buyer = 5_000_000_000 + len(self._by_buyer)
                conv = Conv(self.new_id(), buyer, f"buyer{buyer}")
                for m in range(messages):
                    text = f"buyer {buyer} message {m}: còn hàng không ạ? มีสินค้าไหม 有货吗"
                    conv.messages.append(Msg(self.new_id(), conv.id, m % 3 != 2, text,
                                             round(now - span + c * messages + m, 3)))
                self._conversations[conv.id] = conv
                self._by_buyer[buyer] = conv
                bisect.insort(self._order, (conv.last, conv.id))

    def _add(self, buyer_id: int, name: str | None, from_buyer: bool, text: str, at: float | None,
             kind: str, order_id: str | None, product_id: str | None) -> Msg:
        with self._lock:
            conv = self._by_buyer.get(buyer_id)
            if conv is None:
                conv = Conv(self.new_id(), buyer_id, name or f"buyer{buyer_id}")
                self._conversations[conv.id] = conv
                self._by_buyer[buyer_id] = conv
            else:
                del self._order[bisect.bisect_left(self._order, (conv.last, conv.id))]
            created = round(max(time.time() if at is None else at, conv.last), 3)  # platforms count in ms
            message = Msg(self.new_id(), conv.id, from_buyer, text, created, kind, order_id, product_id)
            conv.messages.append(message)
            bisect.insort(self._order, (conv.last, conv.id))
            return message

    def add_reply(self, conversation_id: int, text: str, *, kind: str = "text") -> Msg | None:
        """Store a reply the connector sent (None: no such conversation); an image's
        ``text`` is its URL."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            if conv is None:
                return None
            message = self._add(conv.buyer_id, None, False, text, None, kind, None, None)
            self.sent.append(message)
            return message

    def conversation(self, conversation_id: int) -> Conv | None:
        """A conversation by id."""
        with self._lock:
            return self._conversations.get(conversation_id)

    def conversation_of(self, buyer_id: int) -> Conv | None:
        """A buyer's conversation."""
        with self._lock:
            return self._by_buyer.get(buyer_id)

    def newest_first(self, *, before: tuple[float, int] | None = None, limit: int) -> list[Conv]:
        """Conversations by latest activity, newest first, strictly after the key ``before``
        (``(last message time, conversation id)``; a keyset page)."""
        with self._lock:
            end = len(self._order) if before is None else bisect.bisect_left(self._order, before)
            keys = self._order[max(0, end - limit):end][::-1]
            return [self._conversations[cid] for _, cid in keys]

    def page_by_offset(self, offset: int, limit: int) -> list[Conv]:
        """Conversations by latest activity, newest first, from ``offset``."""
        with self._lock:
            end = len(self._order) - offset
            keys = self._order[max(0, end - limit):max(0, end)][::-1]
            return [self._conversations[cid] for _, cid in keys]

    def count(self) -> int:
        """How many conversations the shop has."""
        with self._lock:
            return len(self._order)

