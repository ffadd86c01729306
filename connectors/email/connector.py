"""The e-mail channel: IMAP in (IDLE or polling), SMTP out.

Settings (Chatwoot's email channel attributes): ``email`` (the inbox's address),
``imap_enabled``, ``imap_address``, ``imap_port`` (993), ``imap_login`` (default: the
address), ``imap_enable_ssl`` (true), ``imap_folder`` (INBOX), ``imap_sync_days`` (7: how
far back the first sync reaches), ``imap_mark_seen`` (false), ``imap_idle`` (true),
``imap_poll_seconds`` (60, without IDLE), ``smtp_enabled``, ``smtp_address``,
``smtp_port`` (587), ``smtp_login``, ``smtp_enable_ssl_tls`` (implicit TLS),
``smtp_enable_starttls_auto`` (true), ``max_part_bytes``, ``imap_batch`` (200 mails per
fetch and transaction). Secrets: ``imap_password``,
``smtp_password``.

The cursor is ``{"uidvalidity": …, "last_uid": …}``: the runner saves it in the same
transaction as the messages it covers. When the folder's UIDVALIDITY changes (the folder
was recreated or the server rebuilt its index), UIDs mean nothing any more: the sync
window is fetched again, and ``UNIQUE(inbox_id, source_id)`` (the Message-ID) makes the
mail already stored a no-op. Mail is never deleted or moved.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import (
    ConnectorConfig,
    Cursor,
    InboundMessage,
    NotConfigured,
    OutboundMessage,
    PermanentSendError,
    PullConnector,
    Quarantined,
)
from connectors.email import parser_pool
from connectors.email.imap import ImapAccount, ImapSession, imap_date
from connectors.email.parse import DEFAULT_MAX_PART_BYTES, MailParseError, ParsedMail, parse_mail
from connectors.email.relay import apply_relay, is_relay_address, relay_for
from connectors.email.smtp import SmtpAccount, send_reply

#: Mails taken per fetch (one ingest transaction).
BATCH = 200
#: Longest a single mail may take to parse before it is quarantined.
PARSE_TIMEOUT = 20.0
DEFAULT_SYNC_DAYS = 7
DEFAULT_IDLE_SECONDS = 25 * 60


@dataclass
class QuarantinedMail(Quarantined):
    """A mail that could not be parsed, with where it was in the mailbox."""

    source_ref: str | None = None


def _bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def parse_many(raws: list[bytes], inbox_id: int, max_part_bytes: int,
               own_domains: frozenset[str]) -> list[ParsedMail | MailParseError]:
    """Each mail parsed, or the :class:`MailParseError` that quarantines it (runs in a
    parser worker process, see :mod:`connectors.email.parser_pool`)."""
    out: list[ParsedMail | MailParseError] = []
    for raw in raws:
        try:
            out.append(parse_mail(raw, inbox_id=inbox_id, max_part_bytes=max_part_bytes, own_domains=own_domains))
        except MailParseError as exc:
            out.append(exc)
        except Exception as exc:  # noqa: BLE001 - a parser bug quarantines one mail, no more
            out.append(MailParseError(f"{type(exc).__name__}: {exc}"))
    return out


#: Mails up to this size are parsed together in one call to a worker (a call per mail
#: cost more than parsing a small one); larger ones one by one, each with its limit.
SMALL_MAIL = 256 * 1024


async def parse_batch(raws: list[bytes], *, inbox_id: int, max_part_bytes: int,
                      own_domains: frozenset[str]) -> list[ParsedMail | MailParseError]:
    """Each mail parsed (a ``ParsedMail``) or the :class:`MailParseError` that quarantines it.

    Small mails are parsed in one call limited to ``PARSE_TIMEOUT`` plus a little per
    mail; when that limit passes (the worker is killed) or the worker dies, they are
    parsed again one by one, so only a mail that itself takes too long or kills its
    worker is quarantined.
    """
    results: list[ParsedMail | MailParseError | None] = [None] * len(raws)
    small = [i for i, raw in enumerate(raws) if len(raw) <= SMALL_MAIL]
    in_batch = set(small)
    alone = [i for i in range(len(raws)) if i not in in_batch]
    if small:
        try:
            together = await parser_pool.POOL.run(PARSE_TIMEOUT + 0.05 * len(small), parse_many,
                                                  [raws[i] for i in small], inbox_id, max_part_bytes, own_domains)
            for i, result in zip(small, together, strict=True):
                results[i] = result
        except parser_pool.ParserGone:
            alone = list(range(len(raws)))
    for i in alone:
        try:
            (results[i],) = await parser_pool.POOL.run(PARSE_TIMEOUT, parse_many, [raws[i]], inbox_id,
                                                       max_part_bytes, own_domains)
        except parser_pool.ParserGone as exc:
            results[i] = MailParseError(str(exc))
    return results  # type: ignore[return-value]  (every slot is filled)


async def parse_one(raw: bytes, *, inbox_id: int, max_part_bytes: int, own_domains: frozenset[str]) -> ParsedMail:
    """One mail parsed by a worker (see :func:`parse_batch`); raises :class:`MailParseError`."""
    (result,) = await parse_batch([raw], inbox_id=inbox_id, max_part_bytes=max_part_bytes, own_domains=own_domains)
    if isinstance(result, MailParseError):
        raise result
    return result


class EmailConnector(PullConnector):
    """One mailbox folder over IMAP, replies over the inbox's SMTP server."""

    channel_type = "email"

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        settings = config.settings
        self.address = str(settings.get("email") or "").strip().lower()
        if "@" not in self.address:
            raise NotConfigured("email (the inbox's address) is not set")
        self.domain = self.address.rpartition("@")[2]
        self.max_part_bytes = int(settings.get("max_part_bytes") or DEFAULT_MAX_PART_BYTES)
        self.imap_enabled = _bool(settings.get("imap_enabled"), bool(settings.get("imap_address")))
        self.imap: ImapSession | None = None
        if self.imap_enabled:
            if not settings.get("imap_address"):
                raise NotConfigured("imap_address is not set")
            ssl_on = _bool(settings.get("imap_enable_ssl"), True)
            self.imap = ImapSession(ImapAccount(
                host=str(settings["imap_address"]),
                port=int(settings.get("imap_port") or (993 if ssl_on else 143)),
                login=str(settings.get("imap_login") or self.address),
                password=config.secret("imap_password"),
                ssl=ssl_on,
                folder=str(settings.get("imap_folder") or "INBOX"),
                timeout=float(settings.get("imap_timeout") or 30.0),
            ))
        self.sync_days = float(settings.get("imap_sync_days") or DEFAULT_SYNC_DAYS)
        self.mark_seen = _bool(settings.get("imap_mark_seen"), False)
        self.use_idle = _bool(settings.get("imap_idle"), True)
        self.idle_seconds = float(settings.get("imap_idle_seconds") or DEFAULT_IDLE_SECONDS)
        self.poll_seconds = float(settings.get("imap_poll_seconds") or 60.0)
        self.batch = max(1, int(settings.get("imap_batch") or BATCH))
        self.smtp = SmtpAccount.from_settings(settings, config.secrets, self.address)
        self._quarantined: list[Quarantined] = []
        #: The cursor the last fetch returned when it left mail in the folder for the next.
        self._backlog_at: Cursor | None = None

    @property
    def fetch_timeout(self) -> float:
        """An IDLE wait, plus room to fetch and parse a batch."""
        return max(self.idle_seconds, self.poll_seconds) + 300.0

    async def aclose(self) -> None:
        """Log out of IMAP."""
        if self.imap is not None:
            await self.imap.close()

    def fetch_ahead(self, cursor: Cursor) -> bool:
        """While a backlog is synced, the next batch is fetched and parsed while this one
        is stored (the fetch depends on the cursor alone; an abandoned one drops its
        connection, see :meth:`ImapSession.drop`)."""
        return self._backlog_at is not None and cursor == self._backlog_at

    def drain_quarantined(self) -> list[Quarantined]:
        """Mails the last fetch could not parse (stored with its cursor by the runner)."""
        items, self._quarantined = self._quarantined, []
        return items

    async def fetch(self, cursor: Cursor) -> tuple[list[InboundMessage], Cursor]:
        """New mail after the cursor; waits (IDLE or a poll interval) when there is none."""
        if self.imap is None:
            await asyncio.sleep(self.poll_seconds)  # SMTP-in only: nothing to pull
            return [], dict(cursor)
        self._backlog_at = None
        uids, cursor = await self._pending(cursor)
        if not uids:
            if self.use_idle and self.imap.can_idle:
                if not await self.imap.idle(self.idle_seconds):
                    return [], cursor
            else:
                await asyncio.sleep(self.poll_seconds)
                return [], cursor
            uids, cursor = await self._pending(cursor)
        messages, cursor = await self._take(uids[:self.batch], cursor)
        if len(uids) > self.batch:
            self._backlog_at = cursor
        return messages, cursor

    async def _pending(self, cursor: Cursor) -> tuple[list[int], Cursor]:
        """UIDs still to fetch, and the cursor (reset when UIDVALIDITY changed)."""
        assert self.imap is not None
        uidvalidity = await self.imap.open()
        if cursor.get("uidvalidity") != uidvalidity:
            # First sync, or the server renumbered the folder: take the sync window again;
            # ingest's unique index turns mail stored before into no-ops.
            since = (datetime.now(UTC) - timedelta(days=self.sync_days)).date()
            uids = await self.imap.search(f"SINCE {imap_date(since)}")
            resync = {"uidvalidity": uidvalidity, "last_uid": 0}
            if cursor.get("uidvalidity") is not None:
                resync["resynced_from"] = cursor.get("uidvalidity")
            return uids, resync
        last = int(cursor.get("last_uid") or 0)
        uids = [u for u in await self.imap.search(f"UID {last + 1}:*") if u > last]
        return uids, dict(cursor)

    async def _take(self, uids: list[int], cursor: Cursor) -> tuple[list[InboundMessage], Cursor]:
        assert self.imap is not None
        if not uids:
            return [], cursor
        fetched = await self.imap.fetch(uids)
        uidvalidity = cursor["uidvalidity"]
        messages: list[InboundMessage] = []
        own = frozenset({self.domain})
        results = await parse_batch([raw for _, raw in fetched], inbox_id=self.config.inbox_id,
                                    max_part_bytes=self.max_part_bytes, own_domains=own)
        for (uid, raw), parsed in zip(fetched, results, strict=True):
            if isinstance(parsed, MailParseError):
                self._quarantined.append(QuarantinedMail(str(parsed), raw, source_ref=f"imap:{uidvalidity}:{uid}"))
                continue
            if parsed.own:
                continue  # a copy of a reply Postroom sent (BCC, a synced Sent folder)
            parsed.message.metadata["imap_uid"] = f"{uidvalidity}:{uid}"
            messages.append(self.received(parsed.message))
        if self.mark_seen:
            await self.imap.mark_seen([uid for uid, _ in fetched])
        # UIDs that vanished between SEARCH and FETCH (deleted meanwhile) are passed too.
        return messages, {**cursor, "uidvalidity": uidvalidity, "last_uid": max(uids)}

    def received(self, message: InboundMessage) -> InboundMessage:
        """A parsed mail as this channel stores it (the relay channels add to it)."""
        return message

    async def send(self, message: OutboundMessage) -> str:
        """Send the reply through the inbox's SMTP server; returns its Message-ID."""
        if self.smtp is None:
            raise NotConfigured("smtp_address is not set")
        return await send_reply(self.smtp, message, from_address=self.address, domain=self.domain,
                                from_name=self.config.settings.get("from_name"))


class RelayConnector(EmailConnector):
    """A marketplace that relays buyer mail (``connectors.email.relay``): a mailbox, with
    order ids taken from relay mail and the marketplace's notices never answered."""

    marketplace: str = ""

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self.relay = relay_for(self.marketplace, config.settings)

    def received(self, message: InboundMessage) -> InboundMessage:
        """Relay mail gets marketplace and order id; notices become automatic."""
        return apply_relay(self.relay, message)

    async def send(self, message: OutboundMessage) -> str:
        """Only to a buyer's relay alias (the marketplace rejects other mail; notices are
        not answered)."""
        if not is_relay_address(self.relay, message.recipient_source_id):
            raise PermanentSendError(
                "not_relay", f"{message.recipient_source_id} is not a {self.marketplace} buyer's relay address: "
                "marketplace notices are not answered")
        return await super().send(message)


class AmazonRelayConnector(RelayConnector):
    """Amazon buyer-seller messaging through the e-mail relay."""

    channel_type = "amazon"
    marketplace = "amazon"


class WalmartRelayConnector(RelayConnector):
    """Walmart customer messages through the e-mail relay."""

    channel_type = "walmart"
    marketplace = "walmart"
