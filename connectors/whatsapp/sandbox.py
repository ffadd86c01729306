"""A loopback WhatsApp Cloud API, for tests, benchmarks and demos.

* **webhook calls**: :meth:`WhatsAppSandbox.user_writes` builds a ``messages`` change,
  :meth:`~WhatsAppSandbox.statuses` the ``statuses`` changes queued by sends;
  :meth:`~WhatsAppSandbox.deliver` posts them signed with ``X-Hub-Signature-256``
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages,
  .../messages/status/).
* ``POST /<version>/<phone-number-id>/messages``
  (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages): answers
  ``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id"}]}`` and
  queues ``sent`` and ``delivered`` statuses. As on the real platform, a free-form
  message more than 24 hours after the user's last message is *accepted* and then fails
  asynchronously: a ``failed`` status with error 131047 *Re-engagement message*
  (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
  Templates must exist and be ``APPROVED`` (else error 132001).
* ``GET /<version>/<waba-id>/message_templates`` lists the templates with cursor paging
  (https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates).
* ``GET /<version>/<media-id>`` (optional ``phone_number_id``: only that number's media)
  answers ``{"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}``; the
  ``url`` serves the bytes for five minutes, to the bearer token only (401 without it)
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/).
  :meth:`WhatsAppSandbox.user_sends` makes a media message and its file.
* ``POST /<version>/<phone-number-id>/media`` (multipart ``file``, ``type``,
  ``messaging_product``) keeps an upload and answers ``{"id"}``; media messages must name
  a known ``id`` (else error 131009) or a ``link``, and only image, video and document
  take a ``caption``.
A wrong token answers code 190; faults (``"messages"``: e.g. 130429 throttling, a 503)
are queued with :meth:`fail_next`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.base.sandbox import LoopbackServer, form_parts

WINDOW = 24 * 3600.0
#: A media URL works for five minutes after ``GET /{media-id}`` gave it.
MEDIA_URL_SECONDS = 300.0
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
REENGAGEMENT = {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours have passed since "
                                          "the customer last replied to this number."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}
DEFAULT_TEMPLATES = [
    {"name": "order_update", "status": "APPROVED", "language": "en", "category": "UTILITY", "id": "1001",
     "components": [{"type": "BODY", "text": "Your order {{1}} is {{2}}."}]},
    {"name": "order_update", "status": "APPROVED", "language": "th", "category": "UTILITY", "id": "1002",
     "components": [{"type": "BODY", "text": "คำสั่งซื้อ {{1}} ของคุณ {{2}}"}]},
    {"name": "spring_sale", "status": "REJECTED", "language": "en", "category": "MARKETING", "id": "1003",
     "components": [{"type": "BODY", "text": "Sale!"}]},
]


class WhatsAppSandbox(LoopbackServer):
    """A fake Cloud API for one business phone number."""

    name = "whatsapp-sandbox"

    def __init__(self, *, app_secret: str = "sandbox-wa-app-secret", token: str = "EAAG-sandbox-wa-token",
                 phone_number_id: str = "106540352242922", business_account_id: str = "102290129340398",
                 display_phone_number: str = "15550783881") -> None:
        super().__init__()
        self.app_secret = app_secret
        self.token = token
        self.phone_number_id = phone_number_id
        self.business_account_id = business_account_id
        self.display_phone_number = display_phone_number
        self.templates = [dict(t) for t in DEFAULT_TEMPLATES]
        #: Message requests accepted (bodies, with ``_id``: the wamid given).
        self.sent: list[dict[str, Any]] = []
        self._last_inbound: dict[str, float] = {}
        self._names: dict[str, str] = {}
        self._statuses: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        #: Files uploaded by the business: ``{"id", "file_name", "type", "size"}``.
        self.uploads: list[dict[str, Any]] = []
        #: Files users sent or the business uploaded, by media id: ``(bytes, MIME type)``.
        self.media: dict[str, tuple[bytes, str]] = {}
        self._media_ids = itertools.count(1_200_000_000_000_001)
        self._media_urls: dict[str, tuple[str, float]] = {}  # mid -> (media id, expiry)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/whatsapp_business/attachments/", self._download, methods=["GET"]),
            Route("/{version}/{phone}/messages", self._send, methods=["POST"]),
            Route("/{version}/{phone}/media", self._upload, methods=["POST"]),
            Route("/{version}/{waba}/message_templates", self._templates, methods=["GET"]),
            Route("/{version}/{media_id}", self._media_info, methods=["GET"]),
        ]

    def signature_headers(self, raw: bytes) -> dict[str, str]:
        """``X-Hub-Signature-256: sha256=<hex HMAC of the body with the app secret>``."""
        return {"X-Hub-Signature-256": "sha256=" + hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()}

    def _wamid(self) -> str:
        return "wamid." + base64.b64encode(f"HBgL{next(self._ids)}{secrets.token_hex(8)}".encode()).decode()

    def _value(self, **extra: Any) -> dict[str, Any]:
        return {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id},
                **extra}

    def body(self, *values: dict[str, Any]) -> dict[str, Any]:
        """A webhook body with one ``messages`` change per value."""
        return {"object": "whatsapp_business_account",
                "entry": [{"id": self.business_account_id, "changes": [{"value": v, "field": "messages"} for v in values]}]}

    # -- what users do -----------------------------------------------------------------
    def user_writes(self, wa_id: str, text: str, *, name: str | None = None, at: float | None = None,
                    context: str | None = None) -> dict[str, Any]:
        """A text message from a user: the ``value`` of a messages change."""
        return self._inbound(wa_id, {"type": "text", "text": {"body": text}}, name=name, at=at, context=context)

    def user_sends(self, wa_id: str, kind: str, data: bytes, mime_type: str, *, filename: str | None = None,
                   caption: str | None = None, name: str | None = None) -> dict[str, Any]:
        """A media message (``image``, ``document``, ``audio``, ``video``, ``sticker``): the
        file is kept under a new media id that ``GET /{media-id}`` then answers."""
        media_id = str(next(self._media_ids))
        with self.lock:
            self.media[media_id] = (data, mime_type)
        body: dict[str, Any] = {"id": media_id, "mime_type": mime_type,
                                "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode()}
        if caption is not None:
            body["caption"] = caption
        if filename is not None:
            body["filename"] = filename
        return self._inbound(wa_id, {"type": kind, kind: body}, name=name)

    def _inbound(self, wa_id: str, content: dict[str, Any], *, name: str | None = None, at: float | None = None,
                 context: str | None = None) -> dict[str, Any]:
        when = at or time.time()
        with self.lock:
            self._last_inbound[wa_id] = when
            if name:
                self._names[wa_id] = name
            name = self._names.get(wa_id, wa_id)
        message: dict[str, Any] = {"from": wa_id, "id": self._wamid(), "timestamp": str(int(when)), **content}
        if context:
            message["context"] = {"from": self.display_phone_number, "id": context}
        return self._value(contacts=[{"profile": {"name": name}, "wa_id": wa_id}], messages=[message])

    def last_wrote(self, wa_id: str, at: float) -> None:
        """Pretend the user's last message was at ``at``."""
        with self.lock:
            self._last_inbound[wa_id] = at

    def statuses(self) -> dict[str, Any] | None:
        """The status changes queued since the last call, as one ``value`` (None: none)."""
        with self.lock:
            queued, self._statuses = self._statuses, []
        return self._value(statuses=queued) if queued else None

    # -- Cloud API ---------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def _send(self, request: Request) -> Response:
        body = await request.json()
        status, answer = self._answer_send(request, body)
        self.record("messages", body, request, status)
        return JSONResponse(answer, status_code=status)

    def _answer_send(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self._authorized(request):
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        if request.path_params["phone"] != self.phone_number_id:
            return 400, _error(100, "Unsupported post request. Object does not exist")
        fault = self.take_fault("messages")
        if fault is not None:
            return fault.status, fault.body
        if body.get("messaging_product") != "whatsapp" or not body.get("to"):
            return 400, _error(100, "(#100) The parameter messaging_product is required.")
        kind = body.get("type", "text")
        if kind == "template":
            template = body.get("template") or {}
            code = (template.get("language") or {}).get("code")
            found = [t for t in self.templates if t["name"] == template.get("name") and t["language"] == code]
            if not found or found[0]["status"] != "APPROVED":
                return 404, _error(132001, "(#132001) Template name does not exist in the translation",
                                   details=f"template name ({template.get('name')}) does not exist in {code}")
        elif kind == "text" and len((body.get("text") or {}).get("body") or "") > 4096:
            return 400, _error(100, "(#100) Param text['body'] must be at most 4096 characters long.")
        elif kind in MEDIA_KINDS:
            refused = self._media_refusal(kind, body.get(kind))
            if refused is not None:
                return 400, refused
        wa_id = str(body["to"])
        wamid = self._wamid()
        now = time.time()
        with self.lock:
            self.sent.append({**body, "_id": wamid})
            outside = now - self._last_inbound.get(wa_id, 0.0) > WINDOW
            base = {"id": wamid, "recipient_id": wa_id, "timestamp": str(int(now))}
            if kind != "template" and outside:
                self._statuses.append({**base, "status": "failed", "errors": [REENGAGEMENT]})
            else:
                self._statuses.append({**base, "status": "sent"})
                self._statuses.append({**base, "status": "delivered"})
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": wa_id, "wa_id": wa_id}],
                     "messages": [{"id": wamid}]}

    def _media_refusal(self, kind: str, media: Any) -> dict[str, Any] | None:
        """Why a media message's object is not acceptable (None: it is)."""
        if not isinstance(media, dict) or not (media.get("id") or media.get("link")):
            return _error(100, f"(#100) Param {kind} must have an id or a link.")
        if media.get("caption") is not None and kind not in ("image", "video", "document"):
            return _error(100, f"(#100) Param {kind}['caption'] is not a valid parameter.")
        if media.get("id"):
            with self.lock:
                known = str(media["id"]) in self.media
            if not known:
                return _error(131009, "(#131009) Parameter value is not valid", details=f"Media id {media['id']} not found")
        return None

    async def _upload(self, request: Request) -> Response:
        """``POST /{phone-number-id}/media`` (multipart ``file``, ``type``,
        ``messaging_product``): keeps the file and answers its media id."""
        fields, files = await form_parts(request)
        status, answer = 200, {}
        if not self._authorized(request):
            status, answer = 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        elif request.path_params["phone"] != self.phone_number_id:
            status, answer = 400, _error(100, "Unsupported post request. Object does not exist")
        elif (fault := self.take_fault("upload")) is not None:
            status, answer = fault.status, fault.body
        elif fields.get("messaging_product") != "whatsapp" or "file" not in files or not fields.get("type"):
            status, answer = 400, _error(100, "(#100) The parameters messaging_product, file and type are required.")
        else:
            media_id = str(next(self._media_ids))
            name, data, _ = files["file"]
            with self.lock:
                self.media[media_id] = (data, fields["type"])
                self.uploads.append({"id": media_id, "file_name": name, "type": fields["type"], "size": len(data)})
            answer = {"id": media_id}
        self.record("upload", {**fields, "files": {k: (v[0], v[2], len(v[1])) for k, v in files.items()}},
                    request, status)
        return JSONResponse(answer, status_code=status)

    async def _media_info(self, request: Request) -> Response:
        """``GET /{media-id}``: the file's short-lived URL and facts."""
        media_id = request.path_params["media_id"]
        status, answer = self._answer_media_info(request, media_id)
        self.record("media", {"id": media_id, **dict(request.query_params)}, request, status)
        return JSONResponse(answer, status_code=status)

    def _answer_media_info(self, request: Request, media_id: str) -> tuple[int, dict[str, Any]]:
        if not self._authorized(request):
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token")
        fault = self.take_fault("media")
        if fault is not None:
            return fault.status, fault.body
        number = request.query_params.get("phone_number_id")
        with self.lock:
            found = self.media.get(media_id)
        if found is None or (number is not None and number != self.phone_number_id):
            return 400, _error(100, f"Unsupported get request. Object with ID '{media_id}' does not exist, cannot be "
                                    "loaded due to missing permissions, or does not support this operation.")
        data, mime = found
        mid = secrets.token_urlsafe(12)
        with self.lock:
            self._media_urls[mid] = (media_id, time.monotonic() + MEDIA_URL_SECONDS)
        return 200, {"messaging_product": "whatsapp", "url": f"{self.base_url}/whatsapp_business/attachments/?mid={mid}",
                     "mime_type": mime, "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data),
                     "id": media_id}

    async def _download(self, request: Request) -> Response:
        """The media URL: the bytes, for the token only, while the URL is fresh."""
        mid = request.query_params.get("mid", "")
        with self.lock:
            media_id, expires = self._media_urls.get(mid, ("", 0.0))
            found = self.media.get(media_id)
        status = 200
        fault = self.take_fault("download") if self._authorized(request) else None
        if not self._authorized(request):
            status = 401
        elif fault is not None:
            status = fault.status
        elif found is None or time.monotonic() > expires:
            status = 404
        self.record("download", {"mid": mid}, request, status)
        if status != 200 or found is None:
            return Response(b"", status_code=status)
        return Response(found[0], media_type=found[1])

    async def _templates(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(_error(190, "Invalid OAuth access token - Cannot parse access token"), status_code=401)
        if request.path_params["waba"] != self.business_account_id:
            return JSONResponse(_error(100, "Unsupported get request."), status_code=400)
        limit = int(request.query_params.get("limit") or 25)
        start = int(base64.b64decode(request.query_params["after"]).decode()) if request.query_params.get("after") else 0
        page = self.templates[start:start + limit]
        answer: dict[str, Any] = {"data": page}
        if start + limit < len(self.templates):
            after = base64.b64encode(str(start + limit).encode()).decode()
            answer["paging"] = {"cursors": {"before": base64.b64encode(str(start).encode()).decode(), "after": after},
                                "next": f"{self.base_url}{request.url.path}?limit={limit}&after={after}"}
        self.record("message_templates", dict(request.query_params), request, 200)
        return JSONResponse(answer)


def _error(code: int, message: str, details: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": "A" + secrets.token_hex(8)}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


def graph_error(code: int, message: str) -> dict[str, Any]:
    """An error body in the Cloud API's shape, for :meth:`WhatsAppSandbox.fail_next`."""
    return _error(code, message)
