"""One signed POST to a webhook's URL, with the outbound safety rules.

The URL is resolved and checked for every delivery (:mod:`app.webhooks.safety`) and the
request connects to the checked address, with the ``Host`` header and the TLS server
name of the original host. Redirects are never followed, at most
:data:`MAX_RESPONSE_BYTES` of the answer are read, and every request has a total
timeout. The client is aiohttp's: its connection pool costs a fraction of httpx's per
request, which is most of a webhook worker's CPU (docs/performance.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from app.models import utcnow
from app.webhooks.safety import UnsafeURL, resolve_target

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_BYTES = 512
USER_AGENT = "Postroom-Webhooks/1"


@dataclass(slots=True)
class Outcome:
    """What one attempt came to."""

    delivered: bool
    retry: bool
    status_code: int | None
    error: str | None
    excerpt: str | None
    latency_ms: float
    retry_after: float | None = None


class Sender:
    """A pooled HTTP client for webhook requests (one per worker)."""

    def __init__(self, *, timeout_seconds: float, allow_private: bool) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: aiohttp binds a session to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, use_dns_cache=False),
                timeout=self.timeout,
                headers={"user-agent": USER_AGENT, "content-type": "application/json"},
                # No proxies from the environment: the checked address is the one connected to.
                trust_env=False,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST ``body`` to ``url``; network errors, 5xx and 429 ask for a retry."""
        started = time.perf_counter()
        try:
            target = await resolve_target(url, allow_private=self.allow_private)
        except UnsafeURL as exc:
            return Outcome(False, False, None, f"refused: {exc}", None, 0.0)
        request_headers = {**headers, "host": _host_header(url)}
        try:
            async with self._client().post(
                target.url, data=body, headers=request_headers, allow_redirects=False,
                server_hostname=target.host if target.scheme == "https" else None,
            ) as response:
                received = await _read_capped(response)
                code, answer_headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:500], None,
                           (time.perf_counter() - started) * 1000)
        latency = (time.perf_counter() - started) * 1000
        excerpt = received[:EXCERPT_BYTES].decode("utf-8", "replace")
        if 200 <= code < 300:
            return Outcome(True, False, code, None, excerpt, latency)
        if code == 429 or code >= 500:
            return Outcome(False, True, code, f"HTTP {code}", excerpt, latency, retry_after(answer_headers))
        note = "redirects are not followed" if 300 <= code < 400 else f"HTTP {code}"
        return Outcome(False, False, code, note, excerpt, latency)


def _host_header(url: str) -> str:
    """``host[:port]`` of the URL as sent on the wire (IDNA for an international name)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    return netloc if netloc.isascii() else netloc.encode("idna").decode("ascii")


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """At most :data:`MAX_RESPONSE_BYTES` of the body (a connection left unread is closed)."""
    received = b""
    while len(received) < MAX_RESPONSE_BYTES:
        chunk = await response.content.read(MAX_RESPONSE_BYTES - len(received))
        if not chunk:
            break
        received += chunk
    return received


def retry_after(headers: CIMultiDictProxy[str] | dict[str, str]) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta or HTTP date), capped at a day."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(float(value), 24 * 3600)
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            when: datetime = parsedate_to_datetime(value)
            return max(0.0, min((when - utcnow()).total_seconds(), 24 * 3600))
        except (TypeError, ValueError):
            return None


__all__ = ["Outcome", "Sender", "retry_after", "MAX_RESPONSE_BYTES", "EXCERPT_BYTES"]
