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

from connectors.base.sandbox import LoopbackServer

WINDOW = 24 * 3600.0
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

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{version}/{phone}/messages", self._send, methods=["POST"]),
            Route("/{version}/{waba}/message_templates", self._templates, methods=["GET"]),
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
        when = at or time.time()
        with self.lock:
            self._last_inbound[wa_id] = when
            if name:
                self._names[wa_id] = name
            name = self._names.get(wa_id, wa_id)
        message: dict[str, Any] = {"from": wa_id, "id": self._wamid(), "timestamp": str(int(when)), "type": "text",
                                   "text": {"body": text}}
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
