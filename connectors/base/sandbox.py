"""What every loopback platform emulator shares: a Starlette app served on 127.0.0.1 in a
thread of its own (so it keeps answering while the caller's event loop is blocked), the
calls it received, queued faults, and multipart parsing without extra dependencies.

Each platform's sandbox (``connectors/<channel>/sandbox.py``) adds its routes, answers in
the platform's documented wire format, and builds signed webhook calls.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import BaseRoute


@dataclass
class Call:
    """One request the connector made to the sandbox."""

    endpoint: str
    body: Any
    headers: dict[str, str]
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """An error answer queued for the next ``times`` calls of an endpoint."""

    endpoint: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


class LoopbackServer:
    """Serve ``routes()`` on a free local port; record calls; answer queued faults."""

    name = "sandbox"

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._faults: list[Fault] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def routes(self) -> list[BaseRoute]:
        """The platform's endpoints (subclasses)."""
        raise NotImplementedError

    def start(self) -> LoopbackServer:
        """Serve in a background thread; returns once the port answers."""
        config = uvicorn.Config(Starlette(routes=self.routes()), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and records ------------------------------------------------------------
    def fail_next(self, endpoint: str, status: int, body: dict[str, Any], *,
                  headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``endpoint`` with ``status`` and ``body``."""
        with self.lock:
            self._faults.append(Fault(endpoint, status, body, headers or {}, times))

    def take_fault(self, endpoint: str) -> Fault | None:
        """The fault queued for ``endpoint``, if any (consumed)."""
        with self.lock:
            for fault in self._faults:
                if fault.endpoint == endpoint:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def record(self, endpoint: str, body: Any, request: Request, status: int) -> None:
        """Remember a call (headers lower-cased, Authorization kept for assertions)."""
        with self.lock:
            self.calls.append(Call(endpoint, body, {k.lower(): v for k, v in request.headers.items()}, status))

    def calls_of(self, endpoint: str) -> list[Call]:
        """The recorded calls of one endpoint."""
        with self.lock:
            return [c for c in self.calls if c.endpoint == endpoint]

    # -- webhook calls the platform makes ----------------------------------------------
    def signature_headers(self, raw: bytes) -> dict[str, str]:
        """The platform's signature headers for a body (subclasses)."""
        raise NotImplementedError

    def signed(self, body: Any) -> tuple[bytes, dict[str, str]]:
        """A webhook body as the platform sends it: compact JSON bytes and signed headers."""
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return raw, {"content-type": "application/json", **self.signature_headers(raw)}

    async def deliver(self, client: httpx.AsyncClient, url: str, body: Any) -> httpx.Response:
        """POST a signed webhook call to Postroom (``url``: the inbox's ``webhook_url``)."""
        raw, headers = self.signed(body)
        return await client.post(url, content=raw, headers=headers)


async def form_parts(request: Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Fields and files of a ``multipart/form-data`` body (standard library parser)."""
    content_type = request.headers.get("content-type", "")
    raw = b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + await request.body()
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for part in BytesParser(policy=HTTP).parsebytes(raw).iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[name] = (part.get_filename(), data, part.get_content_type())
        else:
            fields[name] = data.decode()
    return fields, files


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
