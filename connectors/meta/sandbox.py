"""A loopback Messenger / Instagram platform, for tests, benchmarks and demos.

It plays both sides of Meta's wire format:

* **webhook calls** (:meth:`MetaSandbox.user_writes`, :meth:`~MetaSandbox.postback`,
  :meth:`~MetaSandbox.page_echo`, :meth:`~MetaSandbox.delivery`, :meth:`~MetaSandbox.read`
  build events; :meth:`~MetaSandbox.body` wraps them; :meth:`~MetaSandbox.deliver` posts
  them signed with ``X-Hub-Signature-256``), following
  https://developers.facebook.com/docs/messenger-platform/reference/webhook-events
  (pages *messages*, *message_echoes*, *messaging_postbacks*, *message_deliveries*,
  *message_reads*) and https://developers.facebook.com/docs/messenger-platform/webhooks;
* the **Send API** ``POST /<version>/me/messages``
  (https://developers.facebook.com/docs/messenger-platform/reference/send-api/): answers
  ``{"recipient_id", "message_id"}``; refuses a ``RESPONSE`` more than 24 hours after the
  user's last message (7 days after the first message following a Click-to-Messenger ad
  click, :meth:`MetaSandbox.ad_referral`), and a ``HUMAN_AGENT`` tag after 7 days, with code 10 / subcode
  2018278 *This message is sent outside of allowed window*
  (https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags,
  https://developers.facebook.com/docs/messenger-platform/error-codes); unknown users
  answer code 100 / 2018001 *No matching user found*; a wrong token code 190;
* the **User Profile API** ``GET /<version>/<PSID>?fields=…``
  (https://developers.facebook.com/docs/messenger-platform/identity/user-profile).

Faults are queued with :meth:`fail_next` (``"me/messages"``: e.g. code 613 throttling,
or a 503 outage); :attr:`sent` lists what the page sent, as received.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.base.sandbox import LoopbackServer, form_parts

HOUR = 3600.0
STANDARD_WINDOW = 24 * HOUR
HUMAN_AGENT_WINDOW = 7 * 24 * HOUR
#: The standard window of the first message after a Click-to-Messenger ad click.
AD_WINDOW = 7 * 24 * HOUR


@dataclass
class _User:
    psid: str
    first_name: str
    last_name: str | None = None
    #: ``time.time()`` of the user's last message to the page.
    last_inbound: float = 0.0
    #: Clicked an ad and has not written since.
    ad_clicked: bool = False
    #: Until when the standard window the first message after an ad click opened lasts.
    ad_window_until: float = 0.0


class MetaSandbox(LoopbackServer):
    """A fake Meta platform for one Page (``object="page"``) or Instagram account."""

    name = "meta-sandbox"

    def __init__(self, *, app_secret: str = "sandbox-app-secret", page_token: str = "EAAG-sandbox-page-token",
                 page_id: str = "1122334455", object_: str = "page", app_id: int = 5555000011112222) -> None:
        super().__init__()
        self.app_secret = app_secret
        self.page_token = page_token
        self.page_id = page_id
        self.object = object_
        self.app_id = app_id
        #: Messages the page sent through the Send API (the request bodies).
        self.sent: list[dict[str, Any]] = []
        self._users: dict[str, _User] = {}
        self._mids = itertools.count(1)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{version}/me/messages", self._send, methods=["POST"]),
            Route("/{version}/{psid}", self._profile, methods=["GET"]),
        ]

    def signature_headers(self, raw: bytes) -> dict[str, str]:
        """``X-Hub-Signature-256: sha256=<hex HMAC of the body with the app secret>``."""
        digest = hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={digest}"}

    # -- users and their events --------------------------------------------------------
    def user(self, psid: str, first_name: str, last_name: str | None = None) -> str:
        """Make a user known (their profile answers the User Profile API)."""
        with self.lock:
            self._users[psid] = _User(psid, first_name, last_name)
        return psid

    def last_wrote(self, psid: str, at: float) -> None:
        """Pretend the user's last message was at ``at`` (``time.time()`` seconds)."""
        with self.lock:
            self._users.setdefault(psid, _User(psid, f"User {psid}")).last_inbound = at

    def _wrote(self, psid: str, when: float) -> None:
        """A user message at ``when``: the first after an ad click opens the 7-day window."""
        with self.lock:
            user = self._users.setdefault(psid, _User(psid, f"User {psid}"))
            user.last_inbound = when
            if user.ad_clicked:
                user.ad_clicked, user.ad_window_until = False, when + AD_WINDOW

    def ad_referral(self, psid: str, ad_id: str, ad_title: str, *, ref: str | None = None) -> dict[str, Any]:
        """A ``referral`` object of a Click-to-Messenger ad (``source: ADS``); the user's next
        message opens a 7-day standard window. Send it on its own (*messaging_referrals*: a
        user with a thread came back) or with ``user_writes(..., referral=...)``."""
        with self.lock:
            self._users.setdefault(psid, _User(psid, f"User {psid}")).ad_clicked = True
        referral: dict[str, Any] = {"ad_id": ad_id, "source": "ADS", "type": "OPEN_THREAD",
                                    "ads_context_data": {"ad_title": ad_title, "post_id": f"{self.page_id}_{ad_id}"}}
        if ref is not None:
            referral["ref"] = ref
        return referral

    def referral_event(self, psid: str, referral: dict[str, Any]) -> dict[str, Any]:
        """The *messaging_referrals* event of a referral."""
        return {**self._envelope(psid, self.page_id, None), "referral": referral}

    def _mid(self) -> str:
        return f"m_{secrets.token_urlsafe(24)}{next(self._mids)}"

    def _envelope(self, sender: str, recipient: str, at: float | None) -> dict[str, Any]:
        return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": int((at or time.time()) * 1000)}

    def user_writes(self, psid: str, text: str | None = None, *, attachments: list[tuple[str, str]] | None = None,
                    reply_to: str | None = None, at: float | None = None, quick_reply: str | None = None,
                    referral: dict[str, Any] | None = None) -> dict[str, Any]:
        """A message from the user to the page; ``attachments``: (type, url) pairs;
        ``referral``: the ad the user came from (:meth:`ad_referral`)."""
        when = at or time.time()
        self._wrote(psid, when)
        message: dict[str, Any] = {"mid": self._mid()}
        if referral is not None:
            message["referral"] = referral
        if text is not None:
            message["text"] = text
        if attachments:
            message["attachments"] = [{"type": kind, "payload": {"url": url}} for kind, url in attachments]
        if reply_to:
            message["reply_to"] = {"mid": reply_to}
        if quick_reply:
            message["quick_reply"] = {"payload": quick_reply}
        return {**self._envelope(psid, self.page_id, when), "message": message}

    def postback(self, psid: str, title: str, payload: str, *, referral: dict[str, Any] | None = None) -> dict[str, Any]:
        """The user pressed a button (``referral``: a new thread's Get Started from an ad)."""
        self._wrote(psid, time.time())
        postback: dict[str, Any] = {"mid": self._mid(), "title": title, "payload": payload}
        if referral is not None:
            postback["referral"] = referral
        return {**self._envelope(psid, self.page_id, None), "postback": postback}

    def page_echo(self, psid: str, text: str, *, metadata: str | None = None, app_id: int | None = None) -> dict[str, Any]:
        """The echo of a message the page sent (from Meta's inbox, or through an app)."""
        message: dict[str, Any] = {"is_echo": True, "mid": self._mid(), "text": text}
        if app_id is not None:
            message["app_id"] = app_id
        if metadata is not None:
            message["metadata"] = metadata
        return {**self._envelope(self.page_id, psid, None), "message": message}

    def delivery(self, psid: str, mids: list[str]) -> dict[str, Any]:
        """The user's device received these messages."""
        return {**self._envelope(psid, self.page_id, None),
                "delivery": {"mids": mids, "watermark": int(time.time() * 1000)}}

    def read(self, psid: str, watermark: float | None = None) -> dict[str, Any]:
        """The user read everything sent before ``watermark`` (now by default)."""
        return {**self._envelope(psid, self.page_id, None),
                "read": {"watermark": int((watermark or time.time()) * 1000)}}

    def body(self, *events: dict[str, Any]) -> dict[str, Any]:
        """A webhook body carrying ``events`` (one entry, as Meta batches them)."""
        now = int(time.time() * 1000)
        return {"object": self.object, "entry": [{"id": self.page_id, "time": now, "messaging": list(events)}]}

    # -- Graph API ---------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.page_token}"

    async def _send(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            fields, files = await form_parts(request)
            body: dict[str, Any] = {k: json.loads(v) if v[:1] in "{[" else v for k, v in fields.items()}
            body["_files"] = {name: (f[0], f[2], len(f[1])) for name, f in files.items()}
        else:
            body = await request.json()
        status, answer, headers = self._answer_send(request, body)
        self.record("me/messages", body, request, status)
        return JSONResponse(answer, status_code=status, headers=headers)

    def _answer_send(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not self._authorized(request):
            return 401, _error(190, "Invalid OAuth access token.", "OAuthException"), {}
        fault = self.take_fault("me/messages")
        if fault is not None:
            return fault.status, fault.body, fault.headers
        psid = str((body.get("recipient") or {}).get("id") or "")
        with self.lock:
            user = self._users.get(psid)
            if user is None:
                return 400, _error(100, "No matching user found", subcode=2018001), {}
            age = time.time() - user.last_inbound
            kind, tag = body.get("messaging_type"), body.get("tag")
            standard = age <= STANDARD_WINDOW or time.time() <= user.ad_window_until
            if kind == "RESPONSE" and not standard or kind == "MESSAGE_TAG" and (
                    tag != "HUMAN_AGENT" or age > HUMAN_AGENT_WINDOW):
                return 400, _error(10, "This message is sent outside of allowed window.", subcode=2018278), {}
            if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
                return 400, _error(100, "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"), {}
            text = (body.get("message") or {}).get("text")
            if text is not None and len(text) > 2000:
                return 400, _error(100, "(#100) Length of param message[text] must be less than or equal to 2000"), {}
            mid = self._mid()
            self.sent.append({**body, "_mid": mid})
        return 200, {"recipient_id": psid, "message_id": mid}, {}

    async def _profile(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(_error(190, "Invalid OAuth access token.", "OAuthException"), status_code=401)
        with self.lock:
            user = self._users.get(request.path_params["psid"])
        if user is None:
            return JSONResponse(_error(100, "Unsupported get request."), status_code=400)
        answer: dict[str, Any] = {"id": user.psid, "profile_pic": f"https://platform-lookaside.example/{user.psid}.jpg"}
        if self.object == "instagram":
            answer.update(name=" ".join(p for p in (user.first_name, user.last_name) if p), username=user.first_name.lower())
        else:
            answer.update(first_name=user.first_name, last_name=user.last_name)
        self.record("profile", dict(request.query_params), request, 200)
        return JSONResponse(answer)


def _error(code: int, message: str, type_: str = "OAuthException", subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": "A" + secrets.token_hex(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def graph_error(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    """An error body in the Graph API's shape, for :meth:`MetaSandbox.fail_next`."""
    return _error(code, message, subcode=subcode)
