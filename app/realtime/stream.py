"""``/api/v1/accounts/{account_id}/stream``: the agents' websocket.

Frames are ``{"seq": n, "event": "…", "data": {…}}`` (``seq`` is null for typing and
presence, which are not kept). Connect with ``?since=<last seq seen>`` to receive
everything missed first; when that is older than the log keeps, the first frame is
``{"event": "resync.required"}``. Close codes: 4401 bad or expired credentials,
4404 another account, 4008 too slow (resume with ``since``), 4429 too many streams.
Clients send ``{"action": "typing", "conversation_id": n, "on": true}`` and
``{"action": "heartbeat", "status": "online|busy"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response
from prometheus_client import generate_latest
from sqlalchemy import func, select
from starlette.websockets import WebSocketDisconnect

from app.api.deps import PrincipalDep, RuntimeDep
from app.auth import service as auth_service
from app.auth.tickets import TICKET_SECONDS, issue_ticket, read_ticket
from app.models import Conversation, Event, User
from app.realtime import metrics
from app.realtime.hub import Hub, Subscriber, encode_frame
from app.realtime.wire import direct_writer
from app.tickets.conversations import member_inbox_ids

router = APIRouter(tags=["realtime"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_FOREIGN_ACCOUNT = 4404
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY = 4429
REPLAY_BATCH = 1000


@router.post("/api/v1/accounts/{account_id}/stream/tickets", summary="A one-minute ticket for the stream (browsers)")
async def stream_ticket(account_id: int, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    ticket = issue_ticket(runtime.settings.secret_key_bytes(), principal.user.id, account_id)
    return {"ticket": ticket, "expires_in": TICKET_SECONDS}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def prometheus_metrics(request: Request) -> Response:
    hub: Hub | None = request.app.state.hub
    depths = hub.queue_depths() if hub else []
    metrics.QUEUE_DEPTH_MAX.set(max(depths, default=0))
    metrics.QUEUE_DEPTH_SUM.set(sum(depths))
    return Response(generate_latest(metrics.REGISTRY), media_type="text/plain; version=0.0.4")


async def _authenticate(websocket: WebSocket, account_id: int) -> tuple[User | None, frozenset[int], int]:
    """The user, the inboxes they are a member of, and a close code (0 when allowed)."""
    runtime = websocket.app.state.runtime
    async with runtime.db.read_session() as session:
        user = None
        ticket = websocket.query_params.get("ticket")
        token = websocket.headers.get("api_access_token")
        if ticket:
            found = read_ticket(runtime.settings.secret_key_bytes(), ticket)
            if found is not None:
                user = await session.get(User, found[0])
        elif token:
            user = await auth_service.user_for_token(session, token)
        if user is None:
            return None, frozenset(), CLOSE_UNAUTHORIZED
        if user.account_id != account_id:
            return None, frozenset(), CLOSE_FOREIGN_ACCOUNT
        return user, await member_inbox_ids(session, user), 0


@router.websocket("/api/v1/accounts/{account_id}/stream")
async def stream(websocket: WebSocket, account_id: int) -> None:
    """Replay from ``since``, then live events, to one agent."""
    hub: Hub = websocket.app.state.hub
    settings = websocket.app.state.runtime.settings
    log_end = await hub.log_end()  # before the accept: see Hub.join
    await websocket.accept()
    user, inbox_ids, refusal = await _authenticate(websocket, account_id)
    if refusal:
        await websocket.close(code=refusal)
        return
    assert user is not None
    if hub.connections_of(user.id) >= settings.stream_max_connections_per_user:
        await websocket.close(code=CLOSE_TOO_MANY)
        return
    subscriber = Subscriber(
        account_id=account_id, user_id=user.id, is_admin=user.role == "administrator",
        inbox_ids=inbox_ids, queue_size=settings.stream_queue_size,
    )
    seam = hub.join(subscriber, log_end)
    tasks: list[asyncio.Task[Any]] = []
    try:
        since = _since(websocket)
        if since is not None:
            await _replay(websocket, hub, subscriber, since, seam)
        # From here on the hub may write live frames itself (app/realtime/wire.py).
        subscriber.writer = direct_writer(websocket)
        await hub.presence.heartbeat(account_id, user.id)
        tasks = [
            asyncio.create_task(_pump(websocket, subscriber)),
            asyncio.create_task(_listen(websocket, hub, subscriber, settings.stream_idle_timeout_seconds)),
            asyncio.create_task(subscriber.overflowed.wait()),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[2] in done:
            metrics.SLOW_CLOSED.inc()
            await websocket.close(code=CLOSE_TOO_SLOW)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        hub.unregister(subscriber)
        if hub.connections_of(user.id) == 0:
            await hub.presence.left(account_id, user.id)
        with contextlib.suppress(Exception):
            await websocket.close()


def _since(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("since")
    if raw is None or raw == "":
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


async def _replay(websocket: WebSocket, hub: Hub, subscriber: Subscriber, since: int, seam: int) -> None:
    """Send ``since < seq <= seam`` from the log, in order, filtered by what the agent may see."""
    async with hub.db.read_session() as session:
        oldest = await session.scalar(select(func.min(Event.seq)))
    if since < seam and (oldest is None or oldest > since + 1):
        await websocket.send_text(json.dumps({"seq": None, "event": "resync.required", "data": {"oldest_seq": oldest}}))
        return
    cursor = since
    while cursor < seam:
        query = (
            select(Event.seq, Event.account_id, Event.inbox_id, Event.event_type, Event.payload)
            .where(Event.account_id == subscriber.account_id, Event.seq > cursor, Event.seq <= seam)
            .order_by(Event.seq)
            .limit(REPLAY_BATCH)
        )
        async with hub.db.read_session() as session:
            rows = (await session.execute(query)).all()
        if not rows:
            break
        for seq, account_id, inbox_id, event_type, payload in rows:
            if subscriber.may_see(account_id, inbox_id):
                await websocket.send_text(encode_frame(seq, event_type, payload))
        cursor = rows[-1][0]


async def _pump(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send what the hub queued (it queues only while the socket is backlogged or paused)."""
    while True:
        frame = await subscriber.queue.get()
        # Until this frame is out (backlog counts it), the hub must not write a later one directly.
        await websocket.send_text(frame)
        subscriber.sent()


async def _listen(websocket: WebSocket, hub: Hub, subscriber: Subscriber, idle_timeout: float) -> None:
    """Client actions: typing and heartbeats. Closing, or silence past the idle timeout, ends it."""
    while True:
        try:
            # asyncio.timeout, not wait_for: no extra task per connection while it waits.
            async with asyncio.timeout(idle_timeout):
                raw = await websocket.receive_text()
        except TimeoutError:
            await websocket.close(code=1001)
            return
        try:
            action = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(action, dict):
            continue
        if action.get("action") == "heartbeat":
            await hub.presence.heartbeat(subscriber.account_id, subscriber.user_id, str(action.get("status", "online")))
        elif action.get("action") == "typing":
            await _typing(hub, subscriber, action)


async def _typing(hub: Hub, subscriber: Subscriber, action: dict[str, Any]) -> None:
    try:
        display_id = int(action["conversation_id"])
    except (KeyError, TypeError, ValueError):
        return
    async with hub.db.read_session() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.account_id == subscriber.account_id, Conversation.display_id == display_id)
        )
    if conversation is None or not subscriber.may_see(conversation.account_id, conversation.inbox_id):
        return
    event = "conversation.typing_on" if action.get("on", True) else "conversation.typing_off"
    await hub.publish_ephemeral(
        subscriber.account_id, conversation.inbox_id, event,
        {"conversation": {"id": display_id, "inbox_id": conversation.inbox_id},
         "user": {"id": subscriber.user_id, "type": "user"}, "is_private": bool(action.get("is_private", False))},
    )
