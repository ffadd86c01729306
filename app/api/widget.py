"""The live-chat widget: the loader script, the chat frame, and the visitor's API.

A site owner pastes the inbox's ``web_widget_script`` (``<script src="…/widget/sdk.js"
data-website-token="…">``); the script adds a chat bubble and an iframe with
``/widget/frame``. The frame talks to the endpoints below on Postroom's own origin.

Visitors are created when they first write (not on every page view): ``POST
/widget/api/visitors`` makes a contact and its identity on the inbox (a random
``source_id``) and answers the identity's ``pubsub_token``, the visitor's credential,
kept by the frame in ``localStorage`` and sent as ``X-Widget-Token`` (``?token=`` on the
websocket). A visitor sees its own conversations only, never private notes or activity
lines, and its messages enter through :func:`app.tickets.ingest.ingest` with the
client's idempotency key, so a retried post is stored once.

Limits (per client address, in-memory token buckets, see :mod:`app.api.ratelimit`;
``POSTROOM_WIDGET_*`` variables change them): visitor creation, message posts, reads and
stream connections each have their own bucket; bodies are capped at
``max_body_bytes`` (413) and messages at ``max_message_chars`` (422). A message with
files (``multipart/form-data`` with ``attachments[]``) also takes from the ``upload``
bucket, and its files share the agents' limit (``POSTROOM_MAX_UPLOAD_BYTES``, 413).

Files are fetched with the visitor's token from ``/widget/api/attachments/{id}``, which
serves only files of that visitor's own, non-private messages (404 for any other).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocketDisconnect

from app.api.deps import RuntimeDep
from app.api.ratelimit import Limit, TokenBuckets, client_address
from app.api.schemas import Body
from app.api.uploads import Upload, is_multipart, read_multipart, safe_content_type
from app.errors import Invalid, NotFound, TooLarge, Unauthorized
from app.models import Attachment, Contact, ContactInbox, Conversation, Inbox, Message, utcnow
from app.realtime.hub import Hub
from app.realtime.visitor import VisitorSubscriber, visitor_message
from app.runtime import Runtime
from app.tickets import contacts as contact_service
from app.tickets.ingest import ingest
from app.tickets.views import present_messages
from connectors.base import InboundAttachment, InboundMessage, SenderIdentity

router = APIRouter(tags=["live-chat widget"])
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429
HISTORY_LIMIT = 200
#: A visitor counts as connected (no e-mail copies of replies, app.tickets.continuity)
#: until this long after their socket last renewed it; an open socket renews it every
#: ONLINE_RENEW_SECONDS, so a process that dies stops renewing and the visitor expires.
ONLINE_SECONDS = 75.0
ONLINE_RENEW_SECONDS = 30.0
TOKEN_HEADER = "x-widget-token"


class WidgetSettings(BaseSettings):
    """``POSTROOM_WIDGET_*``: the public endpoints' limits (per client address)."""

    model_config = SettingsConfigDict(env_prefix="POSTROOM_WIDGET_", extra="ignore")

    visitor_burst: float = 10
    visitor_per_minute: float = 10
    message_burst: float = 20
    message_per_minute: float = 60
    upload_burst: float = 5
    upload_per_minute: float = 10
    read_burst: float = 120
    read_per_minute: float = 600
    stream_burst: float = 20
    stream_per_minute: float = 60
    max_streams_per_address: int = 20
    max_body_bytes: int = 16 * 1024
    max_message_chars: int = 5000
    stream_idle_timeout_seconds: float = 300.0


class WidgetGuard:
    """The process's widget limits: token buckets and open-stream counts per address."""

    def __init__(self, settings: WidgetSettings | None = None) -> None:
        self.settings = s = settings or WidgetSettings()
        self.buckets = TokenBuckets({
            "visitor": Limit(s.visitor_burst, s.visitor_per_minute / 60),
            "message": Limit(s.message_burst, s.message_per_minute / 60),
            "upload": Limit(s.upload_burst, s.upload_per_minute / 60),
            "read": Limit(s.read_burst, s.read_per_minute / 60),
            "stream": Limit(s.stream_burst, s.stream_per_minute / 60),
        })
        self.streams: dict[str, int] = {}
        #: Open sockets per visitor identity (contact_inbox id) in this process.
        self.visitors: dict[int, int] = {}


def guard_of(app: Any) -> WidgetGuard:
    """The app's guard, made on first use (tests may put their own on ``app.state``)."""
    guard = getattr(app.state, "widget_guard", None)
    if guard is None:
        guard = app.state.widget_guard = WidgetGuard()
    return guard


EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class NewVisitor(Body):
    website_token: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=120)
    #: From the optional pre-chat form.
    email: str | None = Field(default=None, max_length=320)
    page_url: str | None = Field(default=None, max_length=2000)
    locale: str | None = Field(default=None, max_length=35)


class VisitorUpdate(Body):
    """What a visitor may say about themselves: a name, and where replies may also go."""

    name: str | None = Field(default=None, max_length=120)
    email: str | None = Field(default=None, max_length=320)


class VisitorMessage(Body):
    content: str = Field(min_length=1)
    echo_id: str | None = Field(default=None, max_length=100)


# -- static entry points ----------------------------------------------------------------

@router.get("/widget/sdk.js", include_in_schema=False)
async def sdk() -> FileResponse:
    """The loader a site embeds; it adds the bubble and the chat frame."""
    return FileResponse(WEB_DIR / "widget" / "sdk.js", media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/widget/frame", include_in_schema=False)
async def frame() -> FileResponse:
    """The chat window, loaded by the SDK in an iframe on any site."""
    return FileResponse(WEB_DIR / "widget" / "frame.html", media_type="text/html", headers={
        "Cache-Control": "no-cache",
        "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
                                   "style-src 'self'; frame-ancestors *; base-uri 'none'; form-action 'none'",
        "Referrer-Policy": "no-referrer",
    })


# -- helpers --------------------------------------------------------------------------------

async def _widget_inbox(session: AsyncSession, website_token: str) -> Inbox:
    inbox = await session.scalar(
        select(Inbox).where(Inbox.identifier == website_token, Inbox.channel_type == "web_widget"))
    if inbox is None:
        raise NotFound("Inbox")
    return inbox


async def _visitor(session: AsyncSession, token: str | None) -> tuple[ContactInbox, Contact, Inbox]:
    """The visitor behind a token (a web-widget identity's pubsub token); 401 otherwise."""
    if not token or len(token) > 64:
        raise Unauthorized("missing or unknown visitor token")
    row = (await session.execute(
        select(ContactInbox, Contact, Inbox)
        .join(Contact, Contact.id == ContactInbox.contact_id)
        .join(Inbox, Inbox.id == ContactInbox.inbox_id)
        .where(ContactInbox.pubsub_token == token, Inbox.channel_type == "web_widget")
    )).first()
    if row is None:
        raise Unauthorized("missing or unknown visitor token")
    return row[0], row[1], row[2]


async def _json_body(request: Request, guard: WidgetGuard, model: type[BaseModel]) -> Any:
    limit = guard.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body larger than {limit} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise TooLarge(f"body larger than {limit} bytes")
    try:
        document = json.loads(raw or b"{}")
    except ValueError as exc:
        raise Invalid(f"body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Invalid(first.get("msg", "invalid"), field=".".join(str(p) for p in first.get("loc", ()))) from exc


def _inbox_config(inbox: Inbox) -> dict[str, Any]:
    settings = inbox.settings or {}
    pre_chat = settings.get("pre_chat_form_options") or {}
    return {
        "name": inbox.name,
        "website_token": inbox.identifier,
        "widget_color": settings.get("widget_color") or "#1f5fbf",
        "welcome_title": settings.get("welcome_title"),
        "welcome_tagline": settings.get("welcome_tagline"),
        "greeting_message": inbox.greeting_message if inbox.greeting_enabled else None,
        # Chatwoot's names: an optional form before the first message …
        "pre_chat_form_enabled": bool(settings.get("pre_chat_form_enabled", False)),
        "pre_chat_message": pre_chat.get("pre_chat_message"),
        "pre_chat_require_email": bool(pre_chat.get("require_email", False)),
        # … and, when no agent answers, asking for an address replies may also go to.
        "continuity_via_email": bool(settings.get("continuity_via_email", True)),
        "email_collect_after_seconds": float(settings.get("email_collect_after_seconds", 60)),
    }


def _email(value: str | None) -> str | None:
    """A visitor's e-mail address, trimmed and lower-cased; Invalid when it is not one."""
    if value is None or not value.strip():
        return None
    email = value.strip().lower()
    if not EMAIL.match(email):
        raise Invalid("that is not an e-mail address", field="email")
    return email


async def _remember_email(session: AsyncSession, contact: Contact, email: str) -> bool:
    """Give the visitor's contact this e-mail, so replies can also go there.

    A visitor cannot claim an address another contact of the account already has (that
    would join an unverified visitor to a known customer): the address is then kept in
    ``additional_attributes.unverified_email`` for an agent to merge. True when set.
    """
    taken = await session.scalar(select(Contact.id).where(
        Contact.account_id == contact.account_id, Contact.email == email, Contact.id != contact.id))
    changes: dict[str, Any] = {"additional_attributes": {"continuity_via_email": True}}
    if taken is None:
        changes["email"] = email
    else:
        changes["additional_attributes"]["unverified_email"] = email
    await contact_service.update_contact(session, contact, changes)
    return taken is None


def _visitor_json(contact_inbox: ContactInbox, contact: Contact, inbox: Inbox) -> dict[str, Any]:
    return {
        "token": contact_inbox.pubsub_token,
        "source_id": contact_inbox.source_id,
        "contact": {"id": contact.id, "name": contact.name, "email": contact.email},
        "inbox": _inbox_config(inbox),
    }


async def _conversations(session: AsyncSession, contact_inbox: ContactInbox) -> list[Conversation]:
    return list(await session.scalars(
        select(Conversation).where(Conversation.contact_inbox_id == contact_inbox.id).order_by(Conversation.id)))


# -- the visitor's API ----------------------------------------------------------------------

@router.get("/widget/api/config", summary="The widget's look and greeting, by website token")
async def widget_config(request: Request, runtime: RuntimeDep, website_token: str = Query(max_length=64)) -> dict[str, Any]:
    guard_of(request.app).buckets.check("read", request)
    async with runtime.db.read_session() as session:
        config = _inbox_config(await _widget_inbox(session, website_token))
    return {**config, "max_upload_bytes": runtime.settings.max_upload_bytes}


@router.post("/widget/api/visitors", summary="Start a visitor session (a contact on the widget inbox)")
async def create_visitor(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    guard = guard_of(request.app)
    guard.buckets.check("visitor", request)
    body: NewVisitor = await _json_body(request, guard, NewVisitor)
    email = _email(body.email)
    source_id = str(uuid.uuid4())
    async with runtime.db.write_session() as session:
        inbox = await _widget_inbox(session, body.website_token)
        attributes: dict[str, Any] = {"source": "web_widget"}
        if body.page_url:
            attributes["initiated_at"] = {"url": body.page_url[:2000]}
        if body.locale:
            attributes["browser_language"] = body.locale
        contact = Contact(account_id=inbox.account_id, name=(body.name or "").strip() or f"Visitor {source_id[:4]}",
                          additional_attributes=attributes, custom_attributes={})
        session.add(contact)
        await session.flush()
        contact_inbox = ContactInbox(contact_id=contact.id, inbox_id=inbox.id, source_id=source_id)
        session.add(contact_inbox)
        await session.flush()
        if email:
            await _remember_email(session, contact, email)
        return _visitor_json(contact_inbox, contact, inbox)


@router.patch("/widget/api/visitor", summary="The visitor's name or e-mail (replies then also go by e-mail)")
async def update_visitor(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    guard = guard_of(request.app)
    guard.buckets.check("message", request)
    body: VisitorUpdate = await _json_body(request, guard, VisitorUpdate)
    email = _email(body.email)
    async with runtime.db.write_session() as session:
        contact_inbox, contact, inbox = await _visitor(session, request.headers.get(TOKEN_HEADER))
        if body.name and body.name.strip():
            await contact_service.update_contact(session, contact, {"name": body.name.strip()})
        saved = await _remember_email(session, contact, email) if email else False
        return {**_visitor_json(contact_inbox, contact, inbox), "email_saved": saved}


@router.get("/widget/api/visitor", summary="Restore a visitor session from its token")
async def get_visitor(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    guard_of(request.app).buckets.check("read", request)
    async with runtime.db.read_session() as session:
        contact_inbox, contact, inbox = await _visitor(session, request.headers.get(TOKEN_HEADER))
        body = _visitor_json(contact_inbox, contact, inbox)
        conversations = await _conversations(session, contact_inbox)
        body["conversation"] = ({"id": conversations[-1].display_id, "status": conversations[-1].status}
                                if conversations else None)
        return body


@router.get("/widget/api/messages", summary="The visitor's messages, oldest first (`after` a message id)")
async def list_messages(request: Request, runtime: RuntimeDep, after: int | None = None) -> dict[str, Any]:
    guard_of(request.app).buckets.check("read", request)
    async with runtime.db.read_session() as session:
        contact_inbox, _, _ = await _visitor(session, request.headers.get(TOKEN_HEADER))
        conversations = await _conversations(session, contact_inbox)
        display_ids = {c.id: c.display_id for c in conversations}
        rows: list[Message] = []
        if conversations:
            query = select(Message).where(
                Message.conversation_id.in_(list(display_ids)), Message.private.is_(False),
                Message.message_type.in_(("incoming", "outgoing", "template")))
            if after is not None:
                rows = list(await session.scalars(query.where(Message.id > after).order_by(Message.id).limit(HISTORY_LIMIT)))
            else:
                rows = list(await session.scalars(query.order_by(Message.id.desc()).limit(HISTORY_LIMIT)))
                rows.reverse()
        payload = [m for m in (visitor_message(p) for p in await present_messages(session, rows, display_ids)) if m]
        latest = conversations[-1] if conversations else None
        return {
            "conversation": {"id": latest.display_id, "status": latest.status} if latest else None,
            "messages": payload,
        }


@router.post("/widget/api/messages", summary="Post the visitor's message (Idempotency-Key makes retries safe)")
async def create_message(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """JSON ``{content, echo_id?}``, or ``multipart/form-data`` with ``content``, ``echo_id``
    and ``attachments[]`` files (the agents' limits: at most 15, 413 past
    ``POSTROOM_MAX_UPLOAD_BYTES`` together)."""
    guard = guard_of(request.app)
    guard.buckets.check("message", request)
    uploads: list[Upload] = []
    if is_multipart(request):
        guard.buckets.check("upload", request)
        fields, uploads = await read_multipart(request, runtime.settings.max_upload_bytes, max_fields=10)
        echo_id = fields.get("echo_id") or None
        if echo_id is not None and len(echo_id) > 100:
            raise Invalid("echo_id is longer than 100 characters", field="echo_id")
        # Files alone are a message: the text may be empty here (checked below).
        body = VisitorMessage.model_construct(content=fields.get("content") or "", echo_id=echo_id)
    else:
        body = await _json_body(request, guard, VisitorMessage)
    if len(body.content) > guard.settings.max_message_chars:
        raise Invalid(f"content is longer than {guard.settings.max_message_chars} characters", field="content")
    if not body.content.strip() and not uploads:
        raise Invalid("content can't be blank", field="content")
    files = [InboundAttachment(file_name=(name or "file")[:255], content_type=safe_content_type(kind), data=data)
             for name, kind, data in uploads]
    key = (request.headers.get("idempotency-key") or body.echo_id or uuid.uuid4().hex)[:200]
    token = request.headers.get(TOKEN_HEADER)
    for attempt in range(3):
        try:
            async with runtime.db.write_session() as session:
                contact_inbox, contact, inbox = await _visitor(session, token)
                # Keys are per visitor: one visitor's key can never name another's message.
                result = await ingest(session, InboundMessage(
                    inbox_id=inbox.id, source_id=f"widget:{contact_inbox.source_id}:{key}",
                    sender=SenderIdentity(source_id=contact_inbox.source_id, name=contact.name),
                    text=body.content if body.content.strip() else None, attachments=files,
                    metadata={"echo_id": body.echo_id} if body.echo_id else {},
                ), store=runtime.store)
                message = await session.get(Message, result.message_id)
                owner = await session.get(Conversation, result.conversation_id)
                assert message is not None and owner is not None
                (payload,) = await present_messages(session, [message], {owner.id: owner.display_id})
                shown = visitor_message(payload)
                assert shown is not None
                return {**shown, "duplicate": result.status == "duplicate",
                        "conversation": {"id": owner.display_id, "status": owner.status}}
        except IntegrityError:  # a concurrent retry of the same key won: read its row
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@router.get("/widget/api/attachments/{attachment_id}", summary="A file of the visitor's conversation")
async def visitor_attachment(attachment_id: int, request: Request, runtime: RuntimeDep) -> Any:
    """The file, if it belongs to a message this visitor can see (their own conversations,
    never a private note); 404 for every other file, whoever it belongs to."""
    guard_of(request.app).buckets.check("read", request)
    async with runtime.db.read_session() as session:
        contact_inbox, _, _ = await _visitor(session, request.headers.get(TOKEN_HEADER))
        attachment = await session.scalar(
            select(Attachment)
            .join(Message, Message.id == Attachment.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Attachment.id == attachment_id,
                   Attachment.account_id == Conversation.account_id,
                   Conversation.contact_inbox_id == contact_inbox.id,
                   Message.private.is_(False),
                   Message.message_type.in_(("incoming", "outgoing", "template"))))
    if attachment is None:
        raise NotFound("Attachment")
    if attachment.storage_path:
        return FileResponse(
            runtime.store.path(attachment.storage_path),
            media_type=safe_content_type(attachment.content_type),
            filename=attachment.file_name or f"attachment-{attachment.id}",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600",
                     "Content-Security-Policy": "default-src 'none'; sandbox"},
        )
    if attachment.external_url and attachment.external_url.startswith("https://"):
        return RedirectResponse(attachment.external_url)
    raise NotFound("Attachment")


# -- the visitor's websocket ------------------------------------------------------------------

@router.websocket("/widget/api/stream")
async def visitor_stream(websocket: WebSocket) -> None:
    """Agents' replies (and status, typing) to this visitor's conversations, live.

    Sends ``{"event": "ready"}`` once registered: fetch ``/widget/api/messages?after=…``
    then, and every later message arrives here (de-duplicate by message id).
    Clients may send ``{"action": "typing", "on": true}`` and ``{"action": "ping"}``.
    """
    hub: Hub = websocket.app.state.hub
    runtime: Runtime = websocket.app.state.runtime
    guard = guard_of(websocket.app)
    address = client_address(websocket)
    log_end = await hub.log_end()  # before the accept: see Hub.join
    await websocket.accept()
    if guard.buckets.take("stream", address) or guard.streams.get(address, 0) >= guard.settings.max_streams_per_address:
        await websocket.close(code=CLOSE_TOO_MANY)
        return
    try:
        async with runtime.db.read_session() as session:
            contact_inbox, contact, inbox = await _visitor(session, websocket.query_params.get("token"))
    except Unauthorized:
        await websocket.close(code=CLOSE_UNAUTHORIZED)
        return
    subscriber = VisitorSubscriber(
        account_id=inbox.account_id, user_id=-contact_inbox.id, is_admin=False,
        inbox_ids=frozenset({inbox.id}), queue_size=200, source_id=contact_inbox.source_id,
    )
    guard.streams[address] = guard.streams.get(address, 0) + 1
    guard.visitors[contact_inbox.id] = guard.visitors.get(contact_inbox.id, 0) + 1
    hub.join(subscriber, log_end)  # first register, then read: no conversation falls between
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with runtime.db.read_session() as session:
            subscriber.conversation_ids.update(c.display_id for c in await _conversations(session, contact_inbox))
        await _mark_online(runtime, contact_inbox.id, online=True)
        await websocket.send_text(json.dumps({"event": "ready", "data": {}}))
        tasks = [
            asyncio.create_task(_pump(websocket, subscriber)),
            asyncio.create_task(_listen(websocket, hub, subscriber, contact, inbox,
                                        guard.settings.stream_idle_timeout_seconds)),
            asyncio.create_task(subscriber.overflowed.wait()),
            asyncio.create_task(_stay_online(runtime, contact_inbox.id)),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[2] in done:
            await websocket.close(code=4008)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        hub.unregister(subscriber)
        remaining = guard.streams.get(address, 1) - 1
        if remaining > 0:
            guard.streams[address] = remaining
        else:
            guard.streams.pop(address, None)
        sockets = guard.visitors.get(contact_inbox.id, 1) - 1
        if sockets > 0:
            guard.visitors[contact_inbox.id] = sockets
        else:
            guard.visitors.pop(contact_inbox.id, None)
            # The visitor's last socket here closed: replies from now on also go by e-mail.
            with contextlib.suppress(Exception):
                await _mark_online(runtime, contact_inbox.id, online=False)
        with contextlib.suppress(Exception):
            await websocket.close()


async def _mark_online(runtime: Runtime, contact_inbox_id: int, *, online: bool) -> None:
    """Record that the visitor is connected (for ONLINE_SECONDS), or no longer is."""
    until = utcnow() + timedelta(seconds=ONLINE_SECONDS) if online else None
    async with runtime.db.write_session() as session:
        await session.execute(update(ContactInbox).where(ContactInbox.id == contact_inbox_id).values(online_until=until))


async def _stay_online(runtime: Runtime, contact_inbox_id: int) -> None:
    """Renew the visitor's connected mark while the socket stays open."""
    while True:
        await asyncio.sleep(ONLINE_RENEW_SECONDS)
        try:
            await _mark_online(runtime, contact_inbox_id, online=True)
        except Exception:  # noqa: BLE001 - the database is away: try again at the next renewal
            continue


async def _pump(websocket: WebSocket, subscriber: VisitorSubscriber) -> None:
    while True:
        await websocket.send_text(await subscriber.queue.get())


async def _listen(websocket: WebSocket, hub: Hub, subscriber: VisitorSubscriber, contact: Contact,
                  inbox: Inbox, idle_timeout: float) -> None:
    while True:
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), idle_timeout)
        except TimeoutError:
            await websocket.close(code=1001)
            return
        if len(raw) > 1000:
            continue
        try:
            action = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(action, dict):
            continue
        if action.get("action") == "ping":
            await websocket.send_text('{"event":"pong","data":{}}')
        elif action.get("action") == "typing" and subscriber.conversation_ids:
            display_id = max(subscriber.conversation_ids)
            event = "conversation.typing_on" if action.get("on", True) else "conversation.typing_off"
            await hub.publish_ephemeral(inbox.account_id, inbox.id, event, {
                "conversation": {"id": display_id, "inbox_id": inbox.id},
                "user": {"id": contact.id, "type": "contact", "name": contact.name},
                "is_private": False,
            })
