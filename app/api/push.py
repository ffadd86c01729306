"""Push channels' webhooks, and the WhatsApp templates of an inbox.

``GET /webhooks/<channel>/<inbox identifier>`` answers a subscription handshake (Meta's
``hub.challenge``); ``POST`` receives events. The order is the one every push channel
shares (``connectors/base/push.py``): the raw body's signature is checked first, in
constant time, and a failure stores nothing (401 without a signature, 403 with a wrong
one); then the body is parsed, files the platform names by id only are fetched for
messages not stored before (``connectors/base/media.py``), and messages, receipts,
contact events and quarantined events are stored through ``app.tickets.ingest``
(redeliveries are no-ops), with the batches of concurrent calls sharing transactions
(``app.tickets.group_commit``), and the platform gets its 200 once its events are
committed.

Inboxes and their connectors are cached per process for a few seconds, so a busy
webhook costs one transaction, not an inbox lookup and a decryption per call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select

from app.api.deps import PrincipalDep, RuntimeDep, SessionDep
from app.errors import Invalid, NotFound
from app.models import ContactInbox, Inbox, Message
from app.runtime import Runtime
from app.tickets import inboxes as inbox_service
from app.tickets.group_commit import GroupCommitter
from connectors.base import (
    ConnectorConfig,
    ConnectorError,
    HandshakeRefused,
    PushConnector,
    SenderIdentity,
    SignatureInvalid,
    WebhookBatch,
    WebhookRequest,
)
from connectors.base.media import fetch_media, waiting
from connectors.registry import push_connector_for

log = logging.getLogger("postroom.webhooks_in")

router = APIRouter(tags=["channel webhooks"])
#: How long a process reuses an inbox's connector before re-reading its settings.
CACHE_SECONDS = 5.0
#: Profiles fetched for new senders of one call, at most (the rest keep their ids).
MAX_PROFILES = 20
#: Senders remembered per inbox as already known (no profile lookup for their calls).
KNOWN_SENDERS = 10_000


@dataclass
class _Target:
    inbox_id: int
    account_id: int
    connector: PushConnector | None
    problem: str | None
    fingerprint: str
    checked_at: float
    #: Source ids of senders that are contacts of the inbox already (bounded, oldest out).
    known_senders: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def remember_senders(self, source_ids: set[str]) -> None:
        """Note senders as known contacts of the inbox."""
        for source_id in source_ids:
            self.known_senders[source_id] = None
            self.known_senders.move_to_end(source_id)
        while len(self.known_senders) > KNOWN_SENDERS:
            self.known_senders.popitem(last=False)


def _cache(request: Request) -> dict[tuple[str, str], _Target]:
    state = request.app.state
    if getattr(state, "push_targets", None) is None:
        state.push_targets = {}
    return state.push_targets


async def _target(request: Request, runtime: Runtime, channel: str, identifier: str) -> _Target:
    """The inbox behind a webhook URL, with its connector; NotFound for unknown ones."""
    cls = push_connector_for(channel)
    if cls is None:
        raise NotFound("Inbox")
    cache = _cache(request)
    key = (channel, identifier)
    cached = cache.get(key)
    now = time.monotonic()
    if cached is not None and now - cached.checked_at < CACHE_SECONDS:
        return cached
    if cached is not None:
        # One call re-reads the inbox; the calls arriving meanwhile keep the cached one
        # (under load, every in-flight call re-reading at once took a pool connection each).
        cached.checked_at = now
    async with runtime.db.read_session() as session:
        inbox = await session.scalar(select(Inbox).where(Inbox.identifier == identifier, Inbox.channel_type == channel))
    if inbox is None:
        cache.pop(key, None)
        raise NotFound("Inbox")
    fingerprint = json.dumps([inbox.settings, inbox.credentials_encrypted], sort_keys=True, default=str)
    if cached is not None and cached.fingerprint == fingerprint:
        cached.checked_at = now
        return cached
    if cached is not None and cached.connector is not None:
        await cached.connector.aclose()
    try:
        secrets = runtime.box.open(inbox.credentials_encrypted) if inbox.credentials_encrypted else {}
        connector: PushConnector | None = cls(ConnectorConfig(inbox_id=inbox.id, settings=dict(inbox.settings or {}),
                                                              secrets=secrets))
        problem = None
    except ConnectorError as exc:
        connector, problem = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - unreadable credentials: refuse, never crash
        connector, problem = None, f"{type(exc).__name__}"
    target = _Target(inbox.id, inbox.account_id, connector, problem, fingerprint, now)
    cache[key] = target
    return target


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


@router.get("/webhooks/{channel}/{identifier}", summary="A push channel's subscription handshake (Meta's hub.challenge)")
async def handshake(channel: str, identifier: str, request: Request, runtime: RuntimeDep) -> Response:
    target = await _target(request, runtime, channel, identifier)
    if target.connector is None:
        return _refused(403, f"the inbox is not configured: {target.problem}")
    try:
        return PlainTextResponse(target.connector.handshake(dict(request.query_params)))
    except HandshakeRefused as exc:
        return _refused(403, str(exc))


@router.post("/webhooks/{channel}/{identifier}", summary="Receive a push channel's signed webhook call")
async def receive(channel: str, identifier: str, request: Request, runtime: RuntimeDep) -> Response:
    raw = await request.body()
    target = await _target(request, runtime, channel, identifier)
    if target.connector is None:
        return _refused(403, f"the inbox is not configured: {target.problem}")
    call = WebhookRequest(body=raw, headers={k.lower(): v for k, v in request.headers.items()},
                          query=dict(request.query_params), url=str(request.url))
    try:
        target.connector.verify(call)
    except SignatureInvalid as exc:
        log.warning("webhook signature refused", extra={"inbox_id": target.inbox_id})
        return _refused(exc.status_code, str(exc))
    batch = target.connector.parse(call)
    await target.connector.complete(batch)
    await _complete_profiles(runtime, target, batch)
    await _fetch_media(runtime, target, batch)
    results = await _store(request, runtime, target, batch)
    target.remember_senders({m.sender.source_id for m in batch.messages})
    created = sum(1 for r in results if r.status == "created")
    if target.connector.empty_acknowledgement:
        return Response(status_code=200)
    return JSONResponse({
        "received": len(batch.messages), "stored": created, "duplicates": len(results) - created,
        "receipts": len(batch.receipts), "contact_events": len(batch.contacts),
        "quarantined": len(batch.quarantined), "skipped": batch.skipped,
    })


async def _store(request: Request, runtime: Runtime, target: _Target, batch: WebhookBatch) -> list[Any]:
    """Everything the call brought, committed (with other calls' batches: group commit)."""
    if not (batch.messages or batch.receipts or batch.contacts or batch.quarantined):
        return []
    state = request.app.state
    committer = getattr(state, "push_committer", None)
    if committer is None or committer.loop is not asyncio.get_running_loop():
        committer = state.push_committer = GroupCommitter(runtime)
    return await committer.store(target.inbox_id, batch)


async def _complete_profiles(runtime: Runtime, target: _Target, batch: WebhookBatch) -> None:
    """Ask the platform who new senders are (name, picture), before they become contacts."""
    connector = target.connector
    assert connector is not None
    senders = {m.sender.source_id for m in batch.messages if not m.sender.name}
    senders |= {e.sender.source_id for e in batch.contacts if e.kind == "follow" and not e.sender.name}
    if not connector.fetches_profiles:
        return
    senders = {s for s in senders if s not in target.known_senders}
    if not senders:
        return
    async with runtime.db.read_session() as session:
        known = set(await session.scalars(select(ContactInbox.source_id).where(
            ContactInbox.inbox_id == target.inbox_id, ContactInbox.source_id.in_(sorted(senders)))))
    target.remember_senders(known)
    wanted = sorted(senders - known)[:MAX_PROFILES]
    if not wanted:
        return
    found = await asyncio.gather(*(connector.profile(s) for s in wanted))
    profiles = {p.source_id: p for p in found if p is not None}
    for message in batch.messages:
        if message.sender.source_id in profiles:
            message.sender = _merged(message.sender, profiles[message.sender.source_id])
    for event in batch.contacts:
        if event.sender.source_id in profiles:
            event.sender = _merged(event.sender, profiles[event.sender.source_id])


async def _fetch_media(runtime: Runtime, target: _Target, batch: WebhookBatch) -> None:
    """Fetch the files the platform named by id only, for messages not stored before (a
    redelivery downloads nothing); a file that cannot be fetched is noted on its message."""
    connector = target.connector
    assert connector is not None
    pending = [m for m in batch.messages if waiting(m)]
    if not pending:
        return
    async with runtime.db.read_session() as session:
        known = set(await session.scalars(select(Message.source_id).where(
            Message.inbox_id == target.inbox_id, Message.source_id.in_(sorted({m.source_id for m in pending})))))
    fresh = [m for m in pending if m.source_id not in known]
    missed = await fetch_media(connector.download_media, fresh, platform=connector.platform_name)
    if missed:
        log.warning("files not fetched", extra={"inbox_id": target.inbox_id, "count": missed})


def _merged(sender: SenderIdentity, profile: SenderIdentity) -> SenderIdentity:
    return sender.model_copy(update={
        "name": sender.name or profile.name, "avatar_url": sender.avatar_url or profile.avatar_url,
        "attributes": {**profile.attributes, **sender.attributes}})


@router.get("/api/v1/accounts/{account_id}/inboxes/{inbox_id}/message_templates", tags=["inboxes"],
            summary="A WhatsApp inbox's message templates, as the platform lists them")
async def message_templates(account_id: int, inbox_id: int, principal: PrincipalDep, session: SessionDep,
                            runtime: RuntimeDep) -> dict[str, Any]:
    inbox = await inbox_service.get_inbox(session, principal.account_id, inbox_id)
    if not principal.can_see_inbox(inbox.id):
        raise NotFound("Inbox")
    cls = push_connector_for(inbox.channel_type)
    if cls is None or not hasattr(cls, "templates"):
        raise Invalid("only WhatsApp inboxes have message templates", field="inbox_id")
    secrets = runtime.box.open(inbox.credentials_encrypted) if inbox.credentials_encrypted else {}
    try:
        connector = cls(ConnectorConfig(inbox_id=inbox.id, settings=dict(inbox.settings or {}), secrets=secrets))
    except ConnectorError as exc:
        raise Invalid(f"the inbox is not configured: {exc}", field="channel") from None
    try:
        templates = await connector.templates()  # type: ignore[attr-defined]
    except ConnectorError as exc:
        raise Invalid(f"WhatsApp refused to list the templates: {exc}", field="channel") from None
    finally:
        await connector.aclose()
    return {"payload": templates}
