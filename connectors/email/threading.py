"""Postroom's own Message-ID scheme and per-conversation reply tokens.

A reply Postroom sends has ``Message-ID: <postroom.<token>.<message id>.<random>@<domain>>``
and ``Reply-To: <local>+<token>@<domain>``, where ``<token>`` is the conversation's thread
key (20 hex digits). An answer that names either (in ``In-Reply-To``, ``References`` or the
recipient address) joins that conversation whatever else its headers say. A mail with
neither is threaded by the root of its ``References`` (the first id), hashed into the same
20-hex-digit form, so every message of one mail thread shares one key.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_OWN_ID = re.compile(r"^postroom\.(?:(?P<token>[0-9a-f]{20})\.)?(?P<message>\d+)\.[0-9a-z]+@", re.I)
_TOKEN_ADDRESS = re.compile(r"\+t(?P<token>[0-9a-f]{20})@", re.I)
_TOKEN = re.compile(r"^[0-9a-f]{20}$")


def thread_key_for(root_id: str) -> str:
    """The thread key of a mail thread whose first message has id ``root_id``."""
    return hashlib.sha256(root_id.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def is_token(value: str | None) -> bool:
    """Whether ``value`` has the form of a thread key Postroom made."""
    return bool(value and _TOKEN.match(value))


def own_message_id(token: str | None, message_id: int, domain: str) -> str:
    """A new Message-ID (without ``<>``) for reply ``message_id`` of thread ``token``."""
    middle = f"{token}." if is_token(token) else ""
    return f"postroom.{middle}{message_id}.{secrets.token_hex(4)}@{domain}"


def parse_own_id(message_id: str) -> tuple[str | None, int] | None:
    """``(token, message id)`` when ``message_id`` is one of Postroom's, else None."""
    match = _OWN_ID.match(message_id or "")
    if match is None:
        return None
    return match.group("token"), int(match.group("message"))


def reply_address(address: str, token: str | None) -> str:
    """``local+t<token>@domain`` for the inbox's address (the address itself without token)."""
    local, at, domain = address.partition("@")
    if not at or not is_token(token):
        return address
    return f"{local.split('+', 1)[0]}+t{token}@{domain}"


def token_in_address(address: str) -> str | None:
    """The reply token of a ``local+t<token>@domain`` address, or None."""
    match = _TOKEN_ADDRESS.search(address or "")
    return match.group("token").lower() if match else None
