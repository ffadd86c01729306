"""Sending deliveries: leased rows, signed requests, retries with backoff, per-conversation order.

A pass claims due deliveries whose conversation has no earlier delivery still pending
(so one conversation's events arrive in order, even across retries), leases them for a
minute (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the work
and none sends a delivery another holds), sends them concurrently
(:mod:`app.webhooks.sender`), and the next pass records their attempts in the
transaction that claims its own (one commit per pass, not per delivery: on SQLite every
write transaction waits for the one writer). Claims and records are Core statements
built once, on rows rather than ORM objects. 2xx is delivered; network errors, 5xx and
429 are retried on the ``POSTROOM_WEBHOOK_BACKOFF`` schedule with jitter (429's
``Retry-After`` honoured) until ``POSTROOM_WEBHOOK_GIVE_UP_SECONDS``; other answers fail
for good. A webhook failing for
that long is disabled, and a ``webhook.disabled`` event says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Text, and_, bindparam, cast, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.auth.secrets_box import SecretsBox
from app.config import Settings
from app.db import Database, queue_scan
from app.events.log import append_event
from app.models import AgentBot, Conversation, Webhook, WebhookAttempt, WebhookDelivery, utcnow
from app.models.base import UTCDateTime
from app.waits import wake_or_timeout
from app.webhooks.fanout import BATCH as FANOUT_BATCH
from app.webhooks.fanout import fan_out_in
from app.webhooks.sender import Outcome, Sender
from app.webhooks.signing import sign_headers

log = logging.getLogger("postroom.webhooks")

CLAIM_BATCH = 100
LEASE = timedelta(seconds=60)
POLL_SECONDS = 0.25
#: With no active webhook at all, passes are skipped; whether one exists is read again at
#: most this often (and at once when this process hears of a new or re-enabled one).
ACTIVE_CHECK_SECONDS = 1.0
_ANY_ACTIVE = select(Webhook.id).where(Webhook.active.is_(True)).limit(1)
_DELIVERIES = WebhookDelivery.__table__
_ATTEMPTS = WebhookAttempt.__table__
# Statements are built once: making and keying them each pass cost more than running them.
_LEASE = (
    update(_DELIVERIES).where(_DELIVERIES.c.id.in_(bindparam("ids", expanding=True)))
    .values(lease_until=bindparam("lease"))
    # The payload as the database's JSON text: signed and sent as it is, never parsed.
    .returning(_DELIVERIES.c.id, _DELIVERIES.c.webhook_id, _DELIVERIES.c.attempts, _DELIVERIES.c.created_at,
               _DELIVERIES.c.conversation_id, cast(_DELIVERIES.c.payload, Text))
)
_WEBHOOKS = select(Webhook).where(Webhook.id.in_(bindparam("ids", expanding=True)))
_RECORD = update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("_id"))
_LOG_ATTEMPTS = insert(_ATTEMPTS)


@functools.cache
def _due_query(dialect: str) -> Select[tuple[int]]:
    """Ids of due, unleased deliveries of active webhooks with nothing earlier pending in
    their conversation (``:now``); PostgreSQL skips rows another process has locked."""
    now = bindparam("now", type_=UTCDateTime())
    earlier = aliased(WebhookDelivery)
    query = (
        select(WebhookDelivery.id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.lease_until.is_(None)) | (WebhookDelivery.lease_until < now),
            Webhook.active.is_(True),
            ~select(earlier.id).where(
                and_(
                    earlier.webhook_id == WebhookDelivery.webhook_id,
                    earlier.ordering_key == WebhookDelivery.ordering_key,
                    earlier.status == "pending",
                    earlier.id < WebhookDelivery.id,
                )
            ).exists(),
        )
        .order_by(WebhookDelivery.id)
        .limit(CLAIM_BATCH)
    )
    if dialect == "postgresql":
        query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
    return query


@dataclass(slots=True)
class Claimed:
    """A leased delivery: what sending and recording it need (a row, not an ORM object)."""

    id: int
    webhook_id: int
    attempts: int
    created_at: datetime
    conversation_id: int | None
    body: bytes


@dataclass(slots=True)
class Batch:
    """A pass's leased deliveries, in id order, and their webhooks as they were when leased."""

    deliveries: list[Claimed]
    webhooks: dict[int, Webhook]


class WebhookWorker:
    """Fans events out to deliveries and sends them, in this process."""

    def __init__(self, db: Database, box: SecretsBox, settings: Settings) -> None:
        self.db = db
        self.box = box
        self.settings = settings
        self.wake = asyncio.Event()
        #: Set when a webhook is made or re-enabled (the hub's ``webhooks`` topic, any process).
        self.webhooks_changed = asyncio.Event()
        self._active_checked_at = float("-inf")
        self._any_active = True
        self._task: asyncio.Task[None] | None = None
        self._sender = Sender(timeout_seconds=settings.webhook_timeout_seconds,
                              allow_private=settings.webhook_allow_private)
        #: The last pass's deliveries and outcomes, recorded by the next pass.
        self._unrecorded: tuple[Batch, list[Outcome]] | None = None

    async def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self._run(), name="postroom-webhooks")

    async def stop(self) -> None:
        """Stop the loop and close connections."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - stopping anyway; the leases expire and they are resent
            log.exception("recording the last webhook attempts failed")
        await self._sender.close()

    async def _run(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep delivering; the next pass retries
                log.exception("webhook pass failed")
                busy = False
                await asyncio.sleep(1)
            if not busy:
                await wake_or_timeout(self.wake, POLL_SECONDS)
                self.wake.clear()

    async def run_once(self) -> bool:
        """One pass: record the last pass's attempts, fan out new events, send what is due.
        True when it did work (then the caller runs another pass at once).

        Recording, fan-out and claim share one write transaction (a backlog of events
        takes several): on SQLite each write transaction queues for the one writer. The
        sends are in none; their outcomes are recorded by the next pass, which follows at
        once, before the claim, so a conversation's next event is claimed only after its
        previous one is recorded.
        """
        if self._unrecorded is None and not await self._has_active_webhooks():
            # Nothing can be delivered. The fan-out cursor stays where it is, so the events
            # meanwhile are read once a webhook exists (and skipped if they predate it).
            return False
        fanned = 0
        recorded = self._unrecorded is not None
        while True:
            try:
                async with self.db.write_session() as session:
                    if self._unrecorded is not None:
                        await self._record_in(session, *self._unrecorded)
                    read = await fan_out_in(session)
                    fanned += read
                    batch = await self._claim(session) if read < FANOUT_BATCH else None
            finally:
                # Never retried: a record that cannot be written must not stop the worker;
                # its leases expire and those deliveries are sent again.
                self._unrecorded = None
            if batch is not None:
                break
        if batch.deliveries:
            secrets_ = {webhook_id: self._secrets(webhook) for webhook_id, webhook in batch.webhooks.items()}
            outcomes = await asyncio.gather(*(
                self._deliver(d, batch.webhooks[d.webhook_id], secrets_[d.webhook_id]) for d in batch.deliveries))
            self._unrecorded = (batch, outcomes)
        return bool(fanned or batch.deliveries or recorded)

    async def _has_active_webhooks(self) -> bool:
        """Whether any webhook is active (cached for :data:`ACTIVE_CHECK_SECONDS`): without
        one, a pass would take the write lock on every commit to find nothing to send."""
        now = time.monotonic()
        if self.webhooks_changed.is_set():
            self.webhooks_changed.clear()
            self._active_checked_at = float("-inf")
        if now - self._active_checked_at >= ACTIVE_CHECK_SECONDS:
            async with self.db.read_session() as session:
                self._any_active = await session.scalar(_ANY_ACTIVE) is not None
            self._active_checked_at = now
        return self._any_active

    async def flush(self) -> None:
        """Record the last pass's attempts now (on stop)."""
        if self._unrecorded is not None:
            unrecorded, self._unrecorded = self._unrecorded, None
            async with self.db.write_session() as session:
                await self._record_in(session, *unrecorded)

    async def _claim(self, session: AsyncSession) -> Batch:
        """Lease the next due deliveries whose conversation has nothing earlier pending."""
        now = utcnow()
        await queue_scan(session)
        ids = list(await session.scalars(_due_query(session.bind.dialect.name), {"now": now}))
        if not ids:
            return Batch([], {})
        rows = (await session.execute(_LEASE, {"ids": ids, "lease": now + LEASE})).all()
        deliveries = sorted((Claimed(id_, webhook_id, attempts, created_at, conversation_id, payload.encode())
                             for id_, webhook_id, attempts, created_at, conversation_id, payload in rows),
                            key=lambda c: c.id)
        webhooks = {w.id: w for w in await session.scalars(
            _WEBHOOKS, {"ids": list({c.webhook_id for c in deliveries})})}
        return Batch(deliveries, webhooks)

    def _secrets(self, webhook: Webhook) -> list[str]:
        secrets_ = [self.box.open(webhook.secret_encrypted)["secret"]]
        if webhook.previous_secret_encrypted and webhook.previous_secret_until and webhook.previous_secret_until > utcnow():
            secrets_.append(self.box.open(webhook.previous_secret_encrypted)["secret"])
        return secrets_

    async def _deliver(self, delivery: Claimed, webhook: Webhook, secrets_: list[str]) -> Outcome:
        headers = sign_headers(secrets_, f"msg_{delivery.id}", delivery.body)
        try:
            return await self._sender.send(webhook.url, delivery.body, headers)
        except Exception as exc:  # noqa: BLE001 - one bad delivery must not lose the pass's records
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
            return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:500], None, 0.0)

    def _next_delay(self, attempts: int, retry_after: float | None) -> float:
        schedule = self.settings.webhook_backoff_seconds
        base = schedule[min(attempts - 1, len(schedule) - 1)]
        delay = base * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    async def _record_in(self, session: AsyncSession, batch: Batch, outcomes: list[Outcome]) -> None:
        """Record a pass's attempts in the caller's write transaction, in delivery order.

        Deliveries and attempts are written with a few Core statements (an executemany
        each), not ORM objects; webhooks are loaded only when one of them changes (a
        failure, or a success ending a failing streak).
        """
        now = utcnow()
        changes: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        for delivery, outcome in zip(batch.deliveries, outcomes, strict=True):
            latency = round(outcome.latency_ms, 2)
            change: dict[str, Any] = {
                "_id": delivery.id, "attempts": delivery.attempts + 1, "lease_until": None,
                "last_status_code": outcome.status_code, "last_error": outcome.error,
                "last_response": outcome.excerpt, "last_latency_ms": latency,
            }
            if outcome.delivered:
                change.update(status="delivered", delivered_at=now)
            changes.append(change)
            attempts.append({"delivery_id": delivery.id, "status_code": outcome.status_code, "error": outcome.error,
                             "response_excerpt": outcome.excerpt, "latency_ms": latency, "created_at": now})
        failing = any(not o.delivered for o in outcomes) or any(
            w.failing_since is not None for w in batch.webhooks.values())
        if failing:
            webhooks = {w.id: w for w in await session.scalars(_WEBHOOKS, {"ids": list(batch.webhooks)})}
            for delivery, outcome, change in zip(batch.deliveries, outcomes, changes, strict=True):
                webhook = webhooks.get(delivery.webhook_id)
                if webhook is not None:
                    await self._settle(session, webhook, delivery, outcome, change, now)
        # One executemany per shape of change (delivered, retried, given up).
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in changes:
            shapes.setdefault(tuple(change), []).append(change)
        for rows in shapes.values():
            await session.execute(_RECORD, rows)
        await session.execute(_LOG_ATTEMPTS, attempts)

    async def _settle(self, session: AsyncSession, webhook: Webhook, delivery: Claimed, outcome: Outcome,
                      change: dict[str, Any], now: datetime) -> None:
        """Apply one attempt to its webhook: failing streak, retry or give up, bot hand-over, disabling."""
        if outcome.delivered:
            webhook.failing_since = None
            return
        webhook.failing_since = webhook.failing_since or now
        give_up = timedelta(seconds=self.settings.webhook_give_up_seconds)
        tries = change["attempts"]
        if outcome.retry and now - delivery.created_at < give_up:
            change["next_attempt_at"] = now + timedelta(seconds=self._next_delay(tries, outcome.retry_after))
        else:
            change["status"] = "dead" if outcome.retry else "failed"
        if webhook.webhook_type == "agent_bot" and (
            tries >= self.settings.bot_handoff_after_attempts or "status" in change
        ):
            await _hand_over(session, webhook, delivery.conversation_id)
        if now - webhook.failing_since >= give_up and webhook.active:
            webhook.active = False
            webhook.disabled_reason = f"failing since {webhook.failing_since.isoformat()}: {outcome.error}"
            append_event(session, account_id=webhook.account_id, event_type="webhook.disabled",
                         payload={"id": webhook.id, "url": webhook.url, "reason": webhook.disabled_reason})


async def _hand_over(session: AsyncSession, webhook: Webhook, conversation_id: int | None) -> None:
    """A bot that does not answer hands its pending conversation to people."""
    from app.tickets.conversations import emit
    from app.tickets.replies import add_activity

    if conversation_id is None:
        return
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.status != "pending":
        return
    bot = await session.get(AgentBot, webhook.agent_bot_id) if webhook.agent_bot_id else None
    conversation.status = "open"
    await add_activity(session, conversation, f"{bot.name if bot else 'The bot'} did not answer; handed over to the team")
    await emit(session, conversation, "conversation.status_changed",
               {"status": {"previous_value": "pending", "current_value": "open"}})


__all__ = ["WebhookWorker", "Outcome"]
