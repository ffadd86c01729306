"""Sends the queued e-mail copies of live-chat replies (:mod:`app.tickets.continuity`).

A background loop in every serving process, woken when a transaction that queued a
copy commits (the hub's ``continuity`` topic, in any process) and every ``POLL_SECONDS``. Each copy is claimed before its SMTP call with a
compare-and-set (``pending`` → ``sending``), so among several processes exactly one
sends it, and a process that dies mid-send leaves it ``sending``: a copy goes out at
most once. A transient SMTP error (4xx, network) returns it to ``pending`` with backoff,
up to ``MAX_ATTEMPTS``; a refusal (5xx, login) ends it ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select, update

from app.auth.secrets_box import SecretsBox
from app.db import Database
from app.models import ContinuityEmail, Conversation, Inbox, utcnow
from app.runner.backoff import retry_delay
from app.storage import FileStore
from app.tickets import continuity
from app.waits import wake_or_timeout
from connectors.base import ConnectorError, TransientError, redact
from connectors.email.smtp import SmtpAccount, send_reply

log = logging.getLogger("postroom.continuity")

POLL_SECONDS = 5.0
BATCH = 20
MAX_ATTEMPTS = 6
RETRY_SCHEDULE = (30.0, 120.0, 600.0, 1800.0, 3600.0)


class ContinuityMailer:
    """The process's sender of e-mail copies."""

    def __init__(self, db: Database, store: FileStore, box: SecretsBox, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.db, self.store, self.box = db, store, box
        self.poll_seconds = poll_seconds
        #: Set when a copy may be waiting (the hub's ``continuity`` topic).
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self._run(), name="postroom-continuity")

    async def stop(self) -> None:
        """Stop the loop (a copy being sent is abandoned as ``sending``: never sent twice)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await wake_or_timeout(self.wake, self.poll_seconds)
            self.wake.clear()
            try:
                while await self.send_due() == BATCH:
                    pass
            except Exception:  # noqa: BLE001 - the database is away: the next pass retries
                log.exception("sending e-mail copies failed")

    async def send_due(self) -> int:
        """Send the copies that are due; returns how many were looked at."""
        async with self.db.read_session() as session:
            ids = list(await session.scalars(
                select(ContinuityEmail.id)
                .where(ContinuityEmail.status == "pending", ContinuityEmail.next_attempt_at <= utcnow())
                .order_by(ContinuityEmail.next_attempt_at, ContinuityEmail.id).limit(BATCH)))
        for row_id in ids:
            if await self._claim(row_id):
                await self._send(row_id)
        return len(ids)

    async def _claim(self, row_id: int) -> bool:
        async with self.db.write_session() as session:
            result = await session.execute(
                update(ContinuityEmail)
                .where(ContinuityEmail.id == row_id, ContinuityEmail.status == "pending")
                .values(status="sending", attempts=ContinuityEmail.attempts + 1))
            return result.rowcount == 1

    async def _send(self, row_id: int) -> None:
        secrets: list[str | None] = []
        try:
            async with self.db.read_session() as session:
                row = await session.get(ContinuityEmail, row_id)
                assert row is not None
                conversation = await session.get(Conversation, row.conversation_id)
                widget = await session.get(Inbox, conversation.inbox_id) if conversation else None
                email_inbox = await continuity.sending_inbox(session, widget) if widget else None
                if email_inbox is None:
                    await self._finish(row_id, "failed", error="no e-mail inbox with an SMTP server for this account")
                    return
                settings = dict(email_inbox.settings or {})
                vault = self.box.open(email_inbox.credentials_encrypted) if email_inbox.credentials_encrypted else {}
                secrets = [str(v) for v in vault.values() if v]
                address = str(settings.get("email") or "").strip().lower()
                account = SmtpAccount.from_settings(settings, vault, address)
                if account is None or "@" not in address:
                    await self._finish(row_id, "failed", error=f"inbox {email_inbox.id} has no SMTP server or address")
                    return
                outbound = await continuity.outbound_copy(session, self.store, row, email_inbox)
                attempts = row.attempts
            mail_id = await send_reply(account, outbound, from_address=address, domain=address.rpartition("@")[2],
                                       from_name=outbound.metadata.get("from_name"))
        except TransientError as exc:
            if attempts >= MAX_ATTEMPTS:
                await self._finish(row_id, "failed", error=redact(str(exc), secrets))
            else:
                delay = retry_delay(attempts, RETRY_SCHEDULE)
                await self._finish(row_id, "pending", error=redact(str(exc), secrets), retry_in=delay)
            return
        except ConnectorError as exc:  # refused for good: a 5xx, a bad login, a file without bytes
            await self._finish(row_id, "failed", error=redact(str(exc), secrets))
            return
        await self._finish(row_id, "sent", mail_id=mail_id, inbox_id=email_inbox.id)

    async def _finish(self, row_id: int, status: str, *, error: str | None = None, mail_id: str | None = None,
                      inbox_id: int | None = None, retry_in: float | None = None) -> None:
        values: dict[str, object] = {"status": status, "last_error": error}
        if status == "sent":
            values.update(mail_message_id=mail_id, email_inbox_id=inbox_id, sent_at=utcnow())
        if retry_in is not None:
            values["next_attempt_at"] = utcnow() + timedelta(seconds=retry_in)
        async with self.db.write_session() as session:
            await session.execute(update(ContinuityEmail).where(ContinuityEmail.id == row_id).values(**values))
        if status != "sent":
            log.warning("e-mail copy %s", status, extra={"continuity_email_id": row_id, "error": error})
