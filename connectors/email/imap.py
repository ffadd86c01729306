"""A thin IMAP session over ``aioimaplib``: connect, select, search and fetch by UID, IDLE.

Errors come out as the connector's typed errors: a refused login is
:class:`AuthFailed`, everything else on the wire (refused connections, timeouts, a server
restarting under us, ``NO``/``BAD`` answers) is :class:`TransientError`, after which the
session is dropped and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from datetime import date
from typing import Any

import aioimaplib

from connectors.base import AuthFailed, TransientError, redact

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_HEAD = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"UID (\d+)")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ImapAccount:
    """Where and as whom to log in."""

    host: str
    port: int
    login: str
    password: str
    ssl: bool = True
    folder: str = "INBOX"
    timeout: float = 30.0


class ImapSession:
    """One logged-in connection with the folder selected; reconnects lazily."""

    def __init__(self, account: ImapAccount) -> None:
        self.account = account
        self.client: aioimaplib.IMAP4 | None = None
        self.uidvalidity: int | None = None

    @property
    def can_idle(self) -> bool:
        """The server offers IDLE (RFC 2177)."""
        return self.client is not None and self.client.has_capability("IDLE")

    async def open(self) -> int:
        """Connect, log in and select the folder (when not already); returns UIDVALIDITY."""
        if self.client is not None and self.uidvalidity is not None:
            return self.uidvalidity
        account = self.account
        try:
            if account.ssl:
                client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                    host=account.host, port=account.port, timeout=account.timeout,
                    ssl_context=ssl.create_default_context())
            else:
                client = aioimaplib.IMAP4(host=account.host, port=account.port, timeout=account.timeout)
            self.client = client
            await asyncio.wait_for(client.wait_hello_from_server(), account.timeout)
            if client.protocol is None or client.get_state() == "LOGOUT":
                raise TransientError(f"IMAP {account.host}:{account.port}: no greeting")
            response = await client.login(account.login, account.password)
            if response.result != "OK":
                raise AuthFailed(f"IMAP login refused: {self._text(response)}")
            response = await client.select(_quote(account.folder))
            if response.result != "OK":
                raise TransientError(f"IMAP SELECT {account.folder}: {self._text(response)}")
            for line in response.lines:
                match = _UIDVALIDITY.search(bytes(line))
                if match:
                    self.uidvalidity = int(match.group(1))
            if self.uidvalidity is None:
                raise TransientError(f"IMAP SELECT {account.folder}: no UIDVALIDITY")
            return self.uidvalidity
        except (AuthFailed, TransientError):
            await self.close()
            raise
        except asyncio.CancelledError:
            self.drop()
            raise
        except (OSError, TimeoutError, asyncio.TimeoutError, aioimaplib.Abort, aioimaplib.CommandTimeout) as exc:
            await self.close()
            raise TransientError(self._error("connect", exc)) from None

    async def search(self, criteria: str) -> list[int]:
        """UIDs matching ``criteria`` (``UID SEARCH``), ascending."""
        response = await self._call(self._client().uid_search(criteria, charset=None), f"UID SEARCH {criteria}")
        uids: list[int] = []
        for line in response.lines:
            text = bytes(line)
            if text.startswith(b"Search completed") or not text.strip():
                continue
            uids.extend(int(t) for t in text.split() if t.isdigit())
        return sorted(set(uids))

    async def fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        """``(uid, raw mail)`` of the given UIDs, without setting ``\\Seen``."""
        if not uids:
            return []
        response = await self._call(
            self._client().uid("fetch", _uid_set(uids), "(UID BODY.PEEK[])"), "UID FETCH")
        found: list[tuple[int, bytes]] = []
        lines = response.lines
        i = 0
        while i < len(lines):
            line = lines[i]
            if isinstance(line, bytes) and _FETCH_HEAD.match(line) and i + 1 < len(lines) \
                    and isinstance(lines[i + 1], bytearray):
                match = _UID.search(line)
                if match is None and i + 2 < len(lines):
                    match = _UID.search(bytes(lines[i + 2]))
                if match is not None:
                    found.append((int(match.group(1)), bytes(lines[i + 1])))
                i += 2
                continue
            i += 1
        return found

    async def mark_seen(self, uids: list[int]) -> None:
        """Set ``\\Seen`` on the given UIDs."""
        if uids:
            await self._call(self._client().uid("store", _uid_set(uids), "+FLAGS.SILENT (\\Seen)"), "UID STORE")

    async def idle(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the server to announce a change; True when it did."""
        client = self._client()
        try:
            idle = await client.idle_start(timeout=seconds)
            pushed = await client.wait_server_push(timeout=seconds + 5)
            client.idle_done()
            await asyncio.wait_for(idle, self.account.timeout)
        except (TimeoutError, asyncio.TimeoutError, aioimaplib.CommandTimeout):
            # No push within the time: leave IDLE cleanly when we can, else reconnect.
            try:
                if client.has_pending_idle():
                    client.idle_done()
                return False
            except Exception:  # noqa: BLE001
                await self.close()
                return False
        except (OSError, aioimaplib.Abort) as exc:
            await self.close()
            raise TransientError(self._error("IDLE", exc)) from None
        if self.client is None or self.client.protocol is None or self.client.get_state() == "LOGOUT":
            await self.close()
            raise TransientError(f"IMAP {self.account.host}: connection closed during IDLE")
        return any(b"EXISTS" in bytes(line) for line in (pushed if isinstance(pushed, list) else []))

    async def close(self) -> None:
        """Log out (best effort) and forget the connection."""
        client, self.client, self.uidvalidity = self.client, None, None
        if client is None:
            return
        try:
            if client.get_state() not in ("LOGOUT", "NONAUTH"):
                await asyncio.wait_for(client.logout(), 5)
        except Exception:  # noqa: BLE001 - the connection is going away anyway
            pass
        try:
            if client.protocol is not None and client.protocol.transport is not None:
                client.protocol.transport.close()
        except Exception:  # noqa: BLE001
            pass

    def drop(self) -> None:
        """Forget the connection at once, without logging out: a command was abandoned
        half way (its fetch cancelled), so what the server sends next is unknown."""
        client, self.client, self.uidvalidity = self.client, None, None
        try:
            if client is not None and client.protocol is not None and client.protocol.transport is not None:
                client.protocol.transport.close()
        except Exception:  # noqa: BLE001
            pass

    def _client(self) -> aioimaplib.IMAP4:
        if self.client is None:
            raise TransientError("IMAP: not connected")
        return self.client

    async def _call(self, awaitable: Any, what: str) -> Any:
        try:
            response = await asyncio.wait_for(awaitable, self.account.timeout * 2)
        except (OSError, TimeoutError, asyncio.TimeoutError, aioimaplib.Abort, aioimaplib.CommandTimeout) as exc:
            await self.close()
            raise TransientError(self._error(what, exc)) from None
        except asyncio.CancelledError:
            self.drop()
            raise
        if response.result != "OK":
            await self.close()
            raise TransientError(f"IMAP {what}: {response.result} {self._text(response)}")
        return response

    def _error(self, what: str, exc: BaseException) -> str:
        text = f"IMAP {self.account.host}:{self.account.port} {what}: {type(exc).__name__}: {exc}"
        return redact(text, [self.account.password])

    def _text(self, response: Any) -> str:
        text = " ".join(bytes(line).decode("utf-8", "replace") for line in response.lines[-2:])
        return redact(text, [self.account.password])[:500]


def imap_date(day: date) -> str:
    """A date as IMAP's ``SEARCH SINCE`` wants it (``1-Jan-2026``)."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def _quote(folder: str) -> str:
    if folder.isalnum():
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uid_set(uids: list[int]) -> str:
    """``1:3,7`` for [1, 2, 3, 7]."""
    ranges: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        ranges.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = uid
    ranges.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(ranges)
