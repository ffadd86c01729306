"""A small in-memory, per-client-address token bucket for the public widget endpoints.

Each (bucket name, client address) pair holds up to ``capacity`` tokens and gains
``rate`` tokens a second; a request takes one token or is refused with 429 and a
``Retry-After`` header. The state lives in the process: with several processes behind
a load balancer each one counts on its own, so the effective limit is multiplied by the
number of processes (acceptable for abuse protection; use the load balancer's limits
for anything stricter).

The client address is the one uvicorn reports (``X-Forwarded-For`` is honoured only
from the proxies uvicorn trusts, ``--forwarded-allow-ips``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

#: Forget idle clients when this many are tracked (a full bucket carries no information).
MAX_TRACKED = 50_000


class TooManyRequests(HTTPException):
    """Over the per-address rate limit: 429 with ``Retry-After`` (whole seconds)."""

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(429, f"too many requests; try again in {seconds} s", {"Retry-After": str(seconds)})


@dataclass(frozen=True)
class Limit:
    """``capacity`` requests at once, refilled at ``rate`` per second."""

    capacity: float
    rate: float


@dataclass
class TokenBuckets:
    """Named token buckets per client address."""

    limits: dict[str, Limit]
    clock: object = time.monotonic
    _buckets: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def take(self, name: str, address: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; returns 0 when allowed, else the seconds to wait."""
        limit = self.limits[name]
        now = self.clock()  # type: ignore[operator]
        tokens, stamp = self._buckets.get((name, address), (limit.capacity, now))
        tokens = min(limit.capacity, tokens + (now - stamp) * limit.rate)
        if tokens < cost:
            self._buckets[(name, address)] = (tokens, now)
            return (cost - tokens) / limit.rate if limit.rate > 0 else 3600.0
        self._buckets[(name, address)] = (tokens - cost, now)
        if len(self._buckets) > MAX_TRACKED:
            self._forget_full(now)
        return 0.0

    def check(self, name: str, connection: HTTPConnection) -> None:
        """Take a token for the connection's client address or raise :class:`TooManyRequests`."""
        wait = self.take(name, client_address(connection))
        if wait:
            raise TooManyRequests(wait)

    def _forget_full(self, now: float) -> None:
        for key, (tokens, stamp) in list(self._buckets.items()):
            limit = self.limits[key[0]]
            if tokens + (now - stamp) * limit.rate >= limit.capacity:
                del self._buckets[key]


def client_address(connection: HTTPConnection) -> str:
    """The client's address as the server sees it (``unknown`` when there is none)."""
    return connection.client.host if connection.client else "unknown"
