"""Sending deliveries: leased rows, signed requests, retries with backoff, per-conversation order.

A pass claims due deliveries whose conversation has no earlier delivery still pending
(so one conversation's events arrive in order, even across retries), leases them for a
minute (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the work
and none sends a delivery another holds), sends them concurrently, and records the
pass's attempts in one transaction (one commit per pass, not per delivery: on SQLite
every write transaction waits for the one writer). 2xx is delivered; network errors, 5xx and 429 are retried on the
``POSTROOM_WEBHOOK_BACKOFF`` schedule with jitter (429's ``Retry-After`` honoured) until
``POSTROOM_WEBHOOK_GIVE_UP_SECONDS``; other answers fail for good. A webhook failing for
that long is disabled, and a ``webhook.disabled`` event says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta


import httpx
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.auth.secrets_box import SecretsBox
from app.config import Settings
from app.db import Database
from app.events.log import append_event
from app.models import AgentBot, Conversation, Webhook, WebhookAttempt, WebhookDelivery, utcnow
from app.webhooks.fanout import fan_out
from app.webhooks.safety import UnsafeURL, resolve_target
from app.webhooks.signing import sign_headers

log = logging.getLogger("postroom.webhooks")

CLAIM_BATCH = 100
LEASE = timedelta(seconds=60)
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_BYTES = 512
POLL_SECONDS = 0.25


@dataclass
class Outcome:
    """What one attempt came to."""

    delivered: bool
    retry: bool
    status_code: int | None
    error: str | None
    excerpt: str | None
    latency_ms: float
    retry_after: float | None = None


class WebhookWorker:
    """Fans events out to deliveries and sends them, in this process."""

    def __init__(self, db: Database, box: SecretsBox, settings: Settings) -> None:
        self.db = db
        self.box = box
        self.settings = settings
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
            headers={"user-agent": "Postroom-Webhooks/1", "content-type": "application/json"},
        )

    async def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self._run(), name="postroom-webhooks")

    async def stop(self) -> None:
        """Stop the loop and close connections."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()

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
                try:
                    await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                except TimeoutError:
                    pass
                self.wake.clear()

    async def run_once(self) -> bool:
        """One pass: fan out new events, send what is due. True when it did work."""
        fanned = 0
        while (read := await fan_out(self.db)) > 0:
            fanned += read
        claimed = await self._claim()
        if claimed:
            outcomes = await asyncio.gather(*(self._deliver(d, w) for d, w in claimed))
            await self._record_all([(d.id, w.id, outcome) for (d, w), outcome in zip(claimed, outcomes)])
        return bool(fanned or claimed)

    async def _claim(self) -> list[tuple[WebhookDelivery, Webhook]]:
        now = utcnow()
        earlier = aliased(WebhookDelivery)
        async with self.db.write_session() as session:
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
            if session.bind.dialect.name == "postgresql":
                query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
            ids = list(await session.scalars(query))
            if not ids:
                return []
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(lease_until=now + LEASE)
            )
            rows = (await session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.id.in_(ids))
                .order_by(WebhookDelivery.id)
            )).all()
            return [(d, w) for d, w in rows]

    def _secrets(self, webhook: Webhook) -> list[str]:
        secrets_ = [self.box.open(webhook.secret_encrypted)["secret"]]
        if webhook.previous_secret_encrypted and webhook.previous_secret_until and webhook.previous_secret_until > utcnow():
            secrets_.append(self.box.open(webhook.previous_secret_encrypted)["secret"])
        return secrets_

    async def _deliver(self, delivery: WebhookDelivery, webhook: Webhook) -> Outcome:
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = sign_headers(self._secrets(webhook), f"msg_{delivery.id}", body)
        try:
            return await self._send(webhook.url, body, headers)
        except Exception as exc:  # noqa: BLE001 - one bad delivery must not lose the pass's records
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
            return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:500], None, 0.0)

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()
        try:
            target = await resolve_target(url, allow_private=self.settings.webhook_allow_private)
        except UnsafeURL as exc:
            return Outcome(False, False, None, f"refused: {exc}", None, 0.0)
        request_headers = {**headers, "host": _host_header(url)}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with self._client.stream("POST", target.url, content=body, headers=request_headers,
                                           extensions=extensions) as response:
                received = b""
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) >= MAX_RESPONSE_BYTES:
                        break
        except httpx.HTTPError as exc:
            return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:500], None,
                           (time.perf_counter() - started) * 1000)
        latency = (time.perf_counter() - started) * 1000
        excerpt = received[:EXCERPT_BYTES].decode("utf-8", "replace")
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(True, False, code, None, excerpt, latency)
        if code == 429 or code >= 500:
            return Outcome(False, True, code, f"HTTP {code}", excerpt, latency, _retry_after(response))
        note = "redirects are not followed" if 300 <= code < 400 else f"HTTP {code}"
        return Outcome(False, False, code, note, excerpt, latency)

    def _next_delay(self, attempts: int, retry_after: float | None) -> float:
        schedule = self.settings.webhook_backoff_seconds
        base = schedule[min(attempts - 1, len(schedule) - 1)]
        delay = base * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    async def _record_all(self, attempts: list[tuple[int, int, Outcome]]) -> None:
        """Record a pass's attempts in one transaction, in delivery order."""
        now = utcnow()
        async with self.db.write_session() as session:
            deliveries = {d.id: d for d in await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.id.in_({a[0] for a in attempts})))}
            webhooks = {w.id: w for w in await session.scalars(
                select(Webhook).where(Webhook.id.in_({a[1] for a in attempts})))}
            for delivery_id, webhook_id, outcome in attempts:
                delivery, webhook = deliveries.get(delivery_id), webhooks.get(webhook_id)
                if delivery is not None and webhook is not None:
                    await self._record(session, delivery, webhook, outcome, now)

    async def _record(self, session: AsyncSession, delivery: WebhookDelivery, webhook: Webhook,
                      outcome: Outcome, now: datetime) -> None:
        delivery.attempts += 1
        delivery.lease_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.last_response = outcome.excerpt
        delivery.last_latency_ms = round(outcome.latency_ms, 2)
        session.add(WebhookAttempt(
            delivery_id=delivery.id, status_code=outcome.status_code, error=outcome.error,
            response_excerpt=outcome.excerpt, latency_ms=round(outcome.latency_ms, 2), created_at=now,
        ))
        if outcome.delivered:
            delivery.status = "delivered"
            delivery.delivered_at = now
            webhook.failing_since = None
            return
        webhook.failing_since = webhook.failing_since or now
        give_up = timedelta(seconds=self.settings.webhook_give_up_seconds)
        if outcome.retry and now - delivery.created_at < give_up:
            delivery.next_attempt_at = now + timedelta(seconds=self._next_delay(delivery.attempts, outcome.retry_after))
        else:
            delivery.status = "dead" if outcome.retry else "failed"
        if webhook.webhook_type == "agent_bot" and (
            delivery.attempts >= self.settings.bot_handoff_after_attempts or delivery.status != "pending"
        ):
            await _hand_over(session, webhook, delivery)
        if now - webhook.failing_since >= give_up and webhook.active:
            webhook.active = False
            webhook.disabled_reason = f"failing since {webhook.failing_since.isoformat()}: {outcome.error}"
            append_event(session, account_id=webhook.account_id, event_type="webhook.disabled",
                         payload={"id": webhook.id, "url": webhook.url, "reason": webhook.disabled_reason})


async def _hand_over(session: AsyncSession, webhook: Webhook, delivery: WebhookDelivery) -> None:
    """A bot that does not answer hands its pending conversation to people."""
    from app.tickets.conversations import emit
    from app.tickets.replies import add_activity

    if delivery.conversation_id is None:
        return
    conversation = await session.get(Conversation, delivery.conversation_id)
    if conversation is None or conversation.status != "pending":
        return
    bot = await session.get(AgentBot, webhook.agent_bot_id) if webhook.agent_bot_id else None
    conversation.status = "open"
    await add_activity(session, conversation, f"{bot.name if bot else 'The bot'} did not answer; handed over to the team")
    await emit(session, conversation, "conversation.status_changed",
               {"status": {"previous_value": "pending", "current_value": "open"}})


def _host_header(url: str) -> str:
    return httpx.URL(url).netloc.decode()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
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


__all__ = ["WebhookWorker", "Outcome"]
