"""Facebook Messenger and Instagram: Meta webhooks in, the Send API out.

Settings (channel fields of the inbox): ``page_id`` (Instagram: ``instagram_id``),
``page_access_token`` and ``app_secret`` (secrets), ``verify_token`` (generated when the
inbox is made; pasted in the App Dashboard), ``graph_base_url`` / ``graph_version``
(Meta's by default; a sandbox's in tests).

Replies (https://developers.facebook.com/docs/messenger-platform/reference/send-api/):
``POST /<version>/me/messages`` with ``recipient.id`` (the PSID / IGSID),
``messaging_type: RESPONSE`` inside the 24-hour window, or ``MESSAGE_TAG`` with
``tag: HUMAN_AGENT`` after it (a person's reply, up to 7 days;
https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags). The
dispatcher passes the tag Postroom's reply-window rule chose (``app/sla/rules.py``).
Every reply carries ``metadata: "postroom:<message id>"`` so its echo is recognised.
Files are uploaded as ``filedata`` (multipart) with an ``attachment`` of their type.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from connectors.base import (
    ConnectorConfig,
    InboundAttachment,
    OutboundMessage,
    PermanentSendError,
    PushConnector,
    SenderIdentity,
    TransientError,
    WebhookBatch,
    WebhookRequest,
)
from connectors.base.text import split_text
from connectors.meta.graph import GraphApi, GraphError
from connectors.meta.parse import ECHO_MARK, parse_body
from connectors.meta.webhooks import MetaWebhookSecurity

#: Send API text limit, in characters.
MAX_TEXT = 2000


class FacebookConnector(PushConnector):
    """One Facebook Page's Messenger conversations."""

    channel_type = "facebook"
    generated_settings = ("verify_token",)
    #: ``object`` of this channel's webhook bodies.
    webhook_object: ClassVar[str] = "page"
    #: Graph fields of a sender's profile (https://developers.facebook.com/docs/messenger-platform/identity/user-profile).
    profile_fields: ClassVar[str] = "first_name,last_name,profile_pic"

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self.security = MetaWebhookSecurity(config)
        self._token = config.secrets.get("page_access_token")
        self.graph = GraphApi.from_settings(str(self._token or ""), config.settings)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.graph.aclose()

    # -- webhooks ----------------------------------------------------------------------
    def handshake(self, query: Any) -> str:
        """Meta's ``hub.challenge`` check."""
        return self.security.handshake(query)

    def verify(self, request: WebhookRequest) -> None:
        """``X-Hub-Signature-256`` with the app secret."""
        self.security.verify(request)

    def parse(self, request: WebhookRequest) -> WebhookBatch:
        """Messages, echoes, postbacks and receipts of a verified body."""
        return parse_body(self.config.inbox_id, request.body, self.webhook_object)

    @property
    def fetches_profiles(self) -> bool:
        """Profiles need the access token."""
        return bool(self._token)

    async def profile(self, sender_id: str) -> SenderIdentity | None:
        """The sender's name and picture from the Graph API (None when refused)."""
        if not self._token:
            return None
        try:
            body = await self.graph.request("GET", sender_id, params={"fields": self.profile_fields}, timeout=3.0)
        except Exception:  # noqa: BLE001 - a profile is a nicety: the message matters
            return None
        name = body.get("name") or " ".join(p for p in (body.get("first_name"), body.get("last_name")) if p)
        attributes = {"username": body["username"]} if body.get("username") else {}
        return SenderIdentity(source_id=sender_id, name=name or None, avatar_url=body.get("profile_pic"),
                              attributes=attributes)

    # -- replies -----------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> str:
        """Files first, then the text in pieces; returns the first message's ``mid``."""
        if not self._token:
            raise PermanentSendError("not_configured", "page_access_token is not set")
        envelope = self._envelope(message)
        mark = {"metadata": f"{ECHO_MARK}{message.message_id}"}
        ids = []
        try:
            for attachment in message.attachments:
                ids.append(await self._send_file(envelope, attachment, mark))
            for piece in split_text(message.text or "", MAX_TEXT):
                body = await self.graph.request("POST", "me/messages", json={**envelope, "message": {"text": piece, **mark}})
                ids.append(_mid(body))
        except GraphError as exc:
            raise PermanentSendError(exc.code, _error_text(exc)) from None
        if not ids:
            raise PermanentSendError(400, "nothing to send: the reply has no text and no file")
        return ids[0]

    def _envelope(self, message: OutboundMessage) -> dict[str, Any]:
        envelope: dict[str, Any] = {"recipient": {"id": message.recipient_source_id}, "messaging_type": "RESPONSE"}
        tag = message.metadata.get("message_tag")
        if tag:
            envelope["messaging_type"] = "MESSAGE_TAG"
            envelope["tag"] = tag
        return envelope

    async def _send_file(self, envelope: dict[str, Any], attachment: InboundAttachment, mark: dict[str, str]) -> str:
        kind = _attachment_type(attachment.content_type)
        if attachment.data is None:
            if not attachment.external_url:
                raise PermanentSendError(400, f"attachment {attachment.file_name or ''} has no stored bytes")
            payload = {"attachment": {"type": kind, "payload": {"url": attachment.external_url}}, **mark}
            return _mid(await self.graph.request("POST", "me/messages", json={**envelope, "message": payload}))
        form = {key: json.dumps(value) if not isinstance(value, str) else value for key, value in envelope.items()}
        form["message"] = json.dumps({"attachment": {"type": kind, "payload": {"is_reusable": False}}, **mark})
        files = {"filedata": (attachment.file_name or "file", attachment.data, attachment.content_type)}
        return _mid(await self.graph.request("POST", "me/messages", data=form, files=files))


class InstagramConnector(FacebookConnector):
    """One Instagram professional account's direct messages (Messenger API for Instagram)."""

    channel_type = "instagram"
    webhook_object = "instagram"
    profile_fields = "name,username,profile_pic"


def _mid(body: Any) -> str:
    if not isinstance(body, dict) or not body.get("message_id"):
        raise TransientError("Send API answered without a message_id")
    return str(body["message_id"])


def _error_text(exc: GraphError) -> str:
    text = exc.message
    if exc.subcode:
        text += f" (subcode {exc.subcode})"
    return text


def _attachment_type(content_type: str) -> str:
    major = (content_type or "").split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "file"
