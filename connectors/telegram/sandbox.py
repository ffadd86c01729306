"""A loopback Telegram Bot API server, for tests and local demos.

It speaks the wire format of the official Bot API page, https://core.telegram.org/bots/api
(sections *Making requests*, *getUpdates*, *Update*, *Message*, *User*, *Chat*,
*PhotoSize*, *Document*, *Voice*, *getFile*, *File*, *sendMessage*, *sendPhoto*,
*sendDocument*, *ResponseParameters*); the payloads it builds follow the field lists and
examples there:

* ``getUpdates``: ``offset`` confirms every update below it, a negative offset keeps only
  the last ``-offset`` updates, ``limit`` (1-100), ``timeout`` long-polls,
  ``allowed_updates`` filters and is remembered between calls; a second poller makes the
  first answer 409 (*Conflict: terminated by other getUpdates request*), as Telegram does.
* ``getFile`` and ``/file/bot<token>/<file_path>`` serve the files of injected messages.
* ``sendMessage``, ``sendPhoto``, ``sendDocument`` answer the sent ``Message``; unknown chats
  answer 400 *chat not found*, blocked ones 403 *bot was blocked by the user*.
* Errors are ``{"ok": false, "error_code": …, "description": …}``, with
  ``parameters.retry_after`` on 429; a wrong token answers 401 *Unauthorized*.

Tests inject updates (:meth:`TelegramSandbox.user_writes`, :meth:`~TelegramSandbox.user_edits`,
:meth:`~TelegramSandbox.push_update`), queue faults (:meth:`~TelegramSandbox.fail_next`), and
read what the bot did (:attr:`~TelegramSandbox.calls`, :attr:`~TelegramSandbox.sent`).

The server runs on 127.0.0.1 in a thread of its own, so it keeps answering while the
caller's event loop is blocked. Run ``python -m connectors.telegram.sandbox`` to start
one by hand; ``POST /sandbox/write {"user_id": 1, "first_name": "Ann", "text": "hi"}``
then plays a customer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.base.sandbox import LoopbackServer, form_parts

BOT_ID = 7000000001
BOT_USERNAME = "postroom_sandbox_bot"
UPDATE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post", "callback_query")


@dataclass
class _User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                body[key] = getattr(self, key)
        return body

    def chat(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "first_name": self.first_name, "type": "private"}
        for key in ("last_name", "username"):
            if getattr(self, key):
                body[key] = getattr(self, key)
        return body


class TelegramSandbox(LoopbackServer):
    """A fake Bot API for one bot token; start it, point an inbox's ``api_base_url`` at it.

    Calls are recorded with the Bot API method as ``endpoint`` and its parameters as ``body``.
    """

    name = "telegram-sandbox"

    def __init__(self, token: str = "123456:SANDBOX-token") -> None:
        super().__init__()
        self.token = token
        #: Messages the bot sent, as the Bot API returned them (with ``_files``: uploads).
        self.sent: list[dict[str, Any]] = []
        self.conflicts = 0
        self._updates: list[dict[str, Any]] = []
        self._confirmed_below = 0
        self._next_update_id = itertools.count(400_000_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._users: dict[int, _User] = {}
        self._blocked: set[int] = set()
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, data)
        self._allowed: set[str] | None = None
        self._poll_generation = 0

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/bot{token}/{method}", self._method, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
            Route("/sandbox/write", self._inject, methods=["POST"]),
        ]

    def __enter__(self) -> TelegramSandbox:
        return self.start()  # type: ignore[return-value]

    # -- what tests inject -------------------------------------------------------------
    def user(self, user_id: int, first_name: str, *, last_name: str | None = None,
             username: str | None = None, language_code: str | None = None) -> int:
        """Make a Telegram user known (their private chat with the bot has the same id)."""
        with self.lock:
            self._users[user_id] = _User(user_id, first_name, last_name, username, language_code)
        return user_id

    def user_writes(self, user_id: int, text: str | None = None, *, photo: bytes | None = None,
                    document: tuple[str, str, bytes] | None = None, voice: bytes | None = None,
                    date: int | None = None) -> dict[str, Any]:
        """A private message from a user to the bot; returns the update it became.

        ``document`` is ``(file name, MIME type, bytes)``. With a file, ``text`` is the caption.
        """
        with self.lock:
            user = self._users.setdefault(user_id, _User(user_id, f"User {user_id}"))
            message: dict[str, Any] = {
                "message_id": self._next_message_id(user_id),
                "from": user.json(),
                "chat": user.chat(),
                "date": date or int(time.time()),
            }
            media = photo is not None or document is not None or voice is not None
            if photo is not None:
                message["photo"] = self._photo_sizes(photo)
            if document is not None:
                name, mime, data = document
                file_id, unique = self._add_file(data, f"documents/{name}")
                message["document"] = {"file_name": name, "mime_type": mime, "file_id": file_id,
                                       "file_unique_id": unique, "file_size": len(data)}
            if voice is not None:
                file_id, unique = self._add_file(voice, f"voice/file_{len(self._files)}.oga")
                message["voice"] = {"duration": 2, "mime_type": "audio/ogg", "file_id": file_id,
                                    "file_unique_id": unique, "file_size": len(voice)}
            if text is not None:
                message["caption" if media else "text"] = text
            return self._push({"message": message})

    def user_edits(self, update: dict[str, Any], text: str) -> dict[str, Any]:
        """The user edits the message of an earlier update; returns the new update."""
        with self.lock:
            original = dict(update["message"])
            key = "text" if "text" in original else "caption"
            original[key] = text
            original["edit_date"] = int(time.time())
            return self._push({"edited_message": original})

    def group_message(self, chat_id: int, user_id: int, text: str) -> dict[str, Any]:
        """A message in a group the bot is in (Postroom skips these)."""
        with self.lock:
            user = self._users.setdefault(user_id, _User(user_id, f"User {user_id}"))
            return self._push({"message": {
                "message_id": self._next_message_id(chat_id), "from": user.json(),
                "chat": {"id": chat_id, "title": "A group", "type": "group"},
                "date": int(time.time()), "text": text,
            }})

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update (``update_id`` is filled in when missing)."""
        with self.lock:
            return self._push(dict(update))

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them answer 403."""
        with self.lock:
            self._blocked.add(user_id)

    def fail_next(self, endpoint: str, status: int, body: dict[str, Any] | str, *,
                  headers: dict[str, str] | None = None, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``times`` calls of a Bot API method with an error; ``body`` may be
        just the ``description`` (the Bot API's error object is built around it)."""
        if isinstance(body, str):
            body = _error(status, body, retry_after)[1]
        super().fail_next(endpoint, status, body, headers=headers, times=times)

    def pending_updates(self) -> int:
        """Updates not yet confirmed by a higher offset."""
        with self.lock:
            return sum(1 for u in self._updates if u["update_id"] >= self._confirmed_below)

    # -- internals (called with the lock held) -----------------------------------------
    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        update.setdefault("update_id", next(self._next_update_id))
        self._updates.append(update)
        return update

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _add_file(self, data: bytes, path: str) -> tuple[str, str]:
        file_id = "AgAC" + uuid.uuid4().hex
        self._files[file_id] = (path, data)
        return file_id, "AQAD" + file_id[-10:]

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        small_id, small_unique = self._add_file(data[:64], f"photos/file_{len(self._files)}_s.jpg")
        big_id, big_unique = self._add_file(data, f"photos/file_{len(self._files)}.jpg")
        return [
            {"file_id": small_id, "file_unique_id": small_unique, "file_size": len(data[:64]), "width": 90, "height": 67},
            {"file_id": big_id, "file_unique_id": big_unique, "file_size": len(data), "width": 1280, "height": 960},
        ]

    # -- HTTP --------------------------------------------------------------------------
    async def _method(self, request: Request) -> Response:
        method = request.path_params["method"]
        params, uploads = await _params(request)
        status, body = await self._answer(request.path_params["token"], method, params, uploads)
        self.record(method, params, request, status)
        return JSONResponse(body, status_code=status)

    async def _inject(self, request: Request) -> Response:
        """``POST /sandbox/write {"user_id", "first_name", "text"}``: a customer writes (manual use)."""
        body = await request.json()
        user_id = int(body["user_id"])
        self.user(user_id, str(body.get("first_name") or f"User {user_id}"))
        return JSONResponse(self.user_writes(user_id, str(body.get("text") or "")))

    async def _answer(self, token: str, method: str, params: dict[str, Any],
                      uploads: dict[str, tuple[str, bytes, str]]) -> tuple[int, dict[str, Any]]:
        if token != self.token:
            return _error(401, "Unauthorized")
        fault = self.take_fault(method)
        if fault is not None:
            return fault.status, fault.body
        handler = {
            "getMe": self._get_me, "getUpdates": self._get_updates, "getFile": self._get_file,
            "sendMessage": self._send, "sendPhoto": self._send, "sendDocument": self._send,
            "deleteWebhook": self._delete_webhook,
        }.get(method)
        if handler is None:
            return _error(404, "Not Found")
        return await handler(method, params, uploads)

    async def _get_me(self, *_: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": {"id": BOT_ID, "is_bot": True, "first_name": "Postroom sandbox",
                                             "username": BOT_USERNAME, "can_join_groups": True}}

    async def _delete_webhook(self, *_: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": True, "description": "Webhook is already deleted"}

    async def _get_updates(self, _method: str, params: dict[str, Any], _uploads: Any) -> tuple[int, dict[str, Any]]:
        offset = _int(params.get("offset"))
        limit = min(max(_int(params.get("limit")) or 100, 1), 100)
        timeout = max(_int(params.get("timeout")) or 0, 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        with self.lock:
            if isinstance(allowed, list):
                self._allowed = set(allowed) or None
            self._poll_generation += 1
            generation = self._poll_generation
            if offset is not None and offset < 0:
                keep = self._updates[offset:]
                self._confirmed_below = keep[0]["update_id"] if keep else self._confirmed_below
            elif offset is not None:
                self._confirmed_below = max(self._confirmed_below, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= self._confirmed_below]
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if generation != self._poll_generation:
                    self.conflicts += 1
                    return _error(409, "Conflict: terminated by other getUpdates request; "
                                       "make sure that only one bot instance is running")
                ready = [u for u in self._updates if self._allowed is None or _kind(u) in self._allowed][:limit]
            if ready or time.monotonic() >= deadline:
                return 200, {"ok": True, "result": ready}
            await asyncio.sleep(0.02)

    async def _get_file(self, _method: str, params: dict[str, Any], _uploads: Any) -> tuple[int, dict[str, Any]]:
        file_id = str(params.get("file_id") or "")
        with self.lock:
            found = self._files.get(file_id)
        if found is None:
            return _error(400, "Bad Request: invalid file_id")
        path, data = found
        return 200, {"ok": True, "result": {"file_id": file_id, "file_unique_id": "AQAD" + file_id[-10:],
                                             "file_size": len(data), "file_path": path}}

    async def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        with self.lock:
            found = next((data for path, data in self._files.values() if path == request.path_params["path"]), None)
        if found is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        return Response(found, media_type="application/octet-stream")

    async def _send(self, method: str, params: dict[str, Any],
                    uploads: dict[str, tuple[str, bytes, str]]) -> tuple[int, dict[str, Any]]:
        chat_id = _int(params.get("chat_id"))
        text = params.get("text")
        with self.lock:
            user = self._users.get(chat_id or 0)
            if user is None:
                return _error(400, "Bad Request: chat not found")
            if user.id in self._blocked:
                return _error(403, "Forbidden: bot was blocked by the user")
            if method == "sendMessage" and not text:
                return _error(400, "Bad Request: message text is empty")
            if method == "sendMessage" and len(text) > 4096:
                return _error(400, "Bad Request: message is too long")
            message: dict[str, Any] = {
                "message_id": self._next_message_id(user.id),
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Postroom sandbox", "username": BOT_USERNAME},
                "chat": user.chat(),
                "date": int(time.time()),
            }
            if text:
                message["text"] = text
            if params.get("caption"):
                message["caption"] = params["caption"]
            reply = params.get("reply_parameters")
            if isinstance(reply, str):
                reply = json.loads(reply)
            if reply:
                message["reply_to_message"] = {"message_id": reply.get("message_id"), "chat": user.chat()}
            if method == "sendPhoto":
                name, data, _ = uploads["photo"]
                message["photo"] = self._photo_sizes(data)
            elif method == "sendDocument":
                name, data, mime = uploads["document"]
                file_id, unique = self._add_file(data, f"documents/{name}")
                message["document"] = {"file_name": name, "mime_type": mime, "file_id": file_id,
                                       "file_unique_id": unique, "file_size": len(data)}
            self.sent.append({**message, "_files": {k: (v[0], v[2], len(v[1])) for k, v in uploads.items()}})
        return 200, {"ok": True, "result": message}


def _error(code: int, description: str, retry_after: int | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return code, body


async def _params(request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes, str]]]:
    """Parameters from the query string, a JSON body or a form (the four ways of the API)."""
    params: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, tuple[str, bytes, str]] = {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl((await request.body()).decode()))
    elif content_type.startswith("multipart/form-data"):
        fields, uploads = await form_parts(request)
        params.update(fields)
    return params, uploads


def _kind(update: dict[str, Any]) -> str:
    return next((k for k in UPDATE_KINDS if k in update), "unknown")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


if __name__ == "__main__":  # pragma: no cover - manual use
    sandbox = TelegramSandbox().start()
    print(f"Telegram sandbox on {sandbox.base_url}, token {sandbox.token}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sandbox.stop()
