"""SMTP in: an ``aiosmtpd`` receiver so a domain can forward support mail to Postroom.

``postroom serve`` starts it when ``POSTROOM_SMTP_LISTEN`` is set (``host:port``). Each
e-mail inbox receives at its own address: ``<inbox_identifier>@<your domain>``, its
``forward_to_email`` setting and its own ``email`` address, each also with a
``+t<token>`` reply token. Recipients
that name no inbox are refused at ``RCPT`` (550), so the sending server bounces them
instead of Postroom dropping them.

An accepted mail goes through the same parser and ingest path as IMAP mail; a mail that
cannot be parsed is quarantined with its reason and still answered ``250``: it is kept,
and a retry would not read any better.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from app.db import Database
from app.models import Inbox
from app.storage import FileStore
from app.tickets.ingest import ingest_messages
from app.tickets.quarantine import store_quarantined
from connectors.email.connector import QuarantinedMail, parse_one
from connectors.email.parse import DEFAULT_MAX_PART_BYTES, MailParseError
from connectors.email.relay import RELAYS, apply_relay, relay_for

log = logging.getLogger("postroom.smtp_in")

#: Largest mail accepted (SIZE); larger ones are refused with 552 before DATA is sent.
DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:2525`` for IPv6) -> (host, port)."""
    host, _, port = value.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"POSTROOM_SMTP_LISTEN must be host:port, not {value!r}")
    return host.strip("[]"), int(port)


#: Inbox channel types that receive mail (the marketplace relays are mailboxes too).
MAIL_CHANNELS = ("email", "amazon", "walmart")


@dataclass(frozen=True)
class _Target:
    inbox_id: int
    max_part_bytes: int
    domain: str
    channel_type: str
    settings: dict[str, Any]


class InboxResolver:
    """Recipient address -> e-mail inbox (by inbox identifier or by the inbox's address)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def resolve(self, address: str) -> _Target | None:
        """The inbox receiving at ``address``, or None."""
        local, at, _ = address.strip().strip("<>").lower().rpartition("@")
        if not at or not local:
            return None
        base = local.split("+", 1)[0]
        plain = f"{base}@{address.rpartition('@')[2].lower()}"
        async with self.db.read_session() as session:
            rows = await session.scalars(select(Inbox).where(Inbox.channel_type.in_(MAIL_CHANNELS)))
            for inbox in rows:
                settings = inbox.settings or {}
                own = {str(settings.get(k) or "").lower() for k in ("email", "forward_to_email")}
                if inbox.identifier.lower() == base or plain in own:
                    email = str(settings.get("email") or plain)
                    return _Target(inbox.id, int(settings.get("max_part_bytes") or DEFAULT_MAX_PART_BYTES),
                                   email.rpartition("@")[2], inbox.channel_type, dict(settings))
        return None


class MailHandler:
    """aiosmtpd handler: accepts recipients that name an inbox and ingests the mail."""

    def __init__(self, db: Database, store: FileStore, *, reopen_window_days: int = 30) -> None:
        self.db = db
        self.store = store
        self.resolver = InboxResolver(db)
        self.reopen_window_days = reopen_window_days

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        """Accept only addresses of e-mail inboxes."""
        if await self.resolver.resolve(address) is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Parse and ingest once per receiving inbox; quarantine what cannot be read."""
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        targets: dict[int, _Target] = {}
        for address in envelope.rcpt_tos:
            target = await self.resolver.resolve(address)
            if target is not None:
                targets.setdefault(target.inbox_id, target)
        try:
            for target in targets.values():
                await self._deliver(target, raw)
        except Exception:  # noqa: BLE001 - the database is away: let the sender retry
            log.exception("storing received mail failed")
            return "451 4.3.0 Temporary failure, please retry"
        return "250 Message accepted"

    async def _deliver(self, target: _Target, raw: bytes) -> None:
        try:
            parsed = await parse_one(raw, inbox_id=target.inbox_id, max_part_bytes=target.max_part_bytes,
                                     own_domains=frozenset({target.domain}))
        except MailParseError as exc:
            ref = "smtp:" + hashlib.sha256(raw).hexdigest()
            async with self.db.write_session() as session:
                await store_quarantined(session, self.store, target.inbox_id,
                                        [QuarantinedMail(str(exc), raw, source_ref=ref)])
            return
        if parsed.own:
            return
        message = parsed.message
        if target.channel_type in RELAYS:
            message = apply_relay(relay_for(target.channel_type, target.settings), message)
        await ingest_messages(self.db, [message], store=self.store, reopen_window_days=self.reopen_window_days)


class SmtpReceiver:
    """The receiver's lifecycle (a thread of aiosmtpd's controller, handler calls on our loop)."""

    def __init__(self, db: Database, store: FileStore, listen: str, *, reopen_window_days: int = 30,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.host, self.port = parse_listen(listen)
        self.handler = MailHandler(db, store, reopen_window_days=reopen_window_days)
        self.max_message_bytes = max_message_bytes
        self.controller: Controller | None = None

    async def start(self) -> None:
        """Listen on ``host:port``."""
        loop = asyncio.get_running_loop()
        handler = _OnLoop(self.handler, loop)
        self.controller = Controller(handler, hostname=self.host, port=self.port,
                                     data_size_limit=self.max_message_bytes, ready_timeout=10)
        await asyncio.to_thread(self.controller.start)
        log.info("SMTP receiver listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self.controller is not None:
            await asyncio.to_thread(self.controller.stop)
            self.controller = None


class _OnLoop:
    """Runs the handler's coroutines on the application's event loop (the database's),
    not on the controller's own thread loop."""

    def __init__(self, handler: MailHandler, loop: asyncio.AbstractEventLoop) -> None:
        self.handler = handler
        self.loop = loop

    async def handle_RCPT(self, *args: Any) -> str:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.handler.handle_RCPT(*args), self.loop))

    async def handle_DATA(self, *args: Any) -> str:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.handler.handle_DATA(*args), self.loop))
