"""Short-lived stream tickets: a browser cannot set headers on a websocket, so it trades
its token for a ticket (HMAC-signed user, account and expiry) passed as ``?ticket=``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

TICKET_SECONDS = 60


def _sign(key: bytes, body: bytes) -> str:
    digest = hmac.new(hashlib.sha256(b"postroom-stream:" + key).digest(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_ticket(key: bytes, user_id: int, account_id: int, *, now: float | None = None) -> str:
    """A ticket valid for :data:`TICKET_SECONDS`."""
    expires = int((now or time.time()) + TICKET_SECONDS)
    body = f"{user_id}.{account_id}.{expires}"
    return f"{body}.{_sign(key, body.encode())}"


def read_ticket(key: bytes, ticket: str, *, now: float | None = None) -> tuple[int, int] | None:
    """(user_id, account_id) of a valid, unexpired ticket; None otherwise."""
    try:
        user_id, account_id, expires, signature = ticket.split(".")
        body = f"{user_id}.{account_id}.{expires}"
        if not hmac.compare_digest(signature, _sign(key, body.encode())):
            return None
        if int(expires) < (now or time.time()):
            return None
        return int(user_id), int(account_id)
    except ValueError:
        return None
