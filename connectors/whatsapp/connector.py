"""WhatsApp Business Cloud API: Meta webhooks in, ``/{phone-number-id}/messages`` out.

Settings (Chatwoot's ``Channel::Whatsapp`` shape): ``phone_number``, and in
``provider_config`` (a secret as a whole) or as flat fields: ``api_key`` (the access
token), ``phone_number_id``, ``business_account_id``; ``app_secret`` (secret) signs the
webhooks, ``verify_token`` (generated) answers the subscription check;
``graph_base_url`` / ``graph_version`` point at a sandbox in tests.

Replies (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages):
``{"messaging_product": "whatsapp", "recipient_type": "individual", "to": <wa_id>,
"type": "text", "text": {"body"}}``, with ``context.message_id`` when answering a
message. Outside the 24-hour customer service window only templates may be sent
(Postroom's reply-window rule refuses free-form replies; the platform's own refusal,
error 131047 *Re-engagement message*, arrives as a ``failed`` status and fails the
reply with that text). Templates (``GET /{waba-id}/message_templates``,
https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates)
are listed through the inbox API and sent as ``type: template`` from a reply's
``template_params`` (``name``, ``language``, ``processed_params``, as in Chatwoot).

Files (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/):
each is uploaded with ``POST /{phone-number-id}/media`` (multipart ``file``, ``type``,
``messaging_product``) and sent as an ``image`` / ``video`` / ``audio`` / ``document``
message by the ``id`` it got (a file known only by a public HTTPS URL goes by ``link``);
the text rides as the first image, video or document's ``caption`` when it fits in 1,024
characters, else follows as text. A template is sent on its own.
"""

from __future__ import annotations

from typing import Any

from connectors.base import (
    ConnectorConfig,
    ConnectorError,
    InboundAttachment,
    NotConfigured,
    OutboundMessage,
    PermanentSendError,
    PushConnector,
    TransientError,
    WebhookBatch,
    WebhookRequest,
)
from connectors.base.media import MAX_MEDIA_BYTES, MEDIA_TIMEOUT, Media, MediaUnavailable, default_name
from connectors.base.text import split_text
from connectors.meta.graph import GraphApi, GraphError
from connectors.meta.webhooks import MetaWebhookSecurity
from connectors.whatsapp.parse import parse_body

#: Text message body limit, in characters.
MAX_TEXT = 4096
#: Caption limit of image, video and document messages, in characters.
MAX_CAPTION = 1024
#: MIME types sent as their own message type (the rest go as documents), and size limits
#: (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/#supported-media-types).
SENDABLE = {
    "image": ("image/jpeg", "image/png"),
    "video": ("video/mp4", "video/3gpp"),
    "audio": ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
}
MEDIA_LIMITS = {"image": 5 * 1024 * 1024, "video": 16 * 1024 * 1024, "audio": 16 * 1024 * 1024,
                "document": 100 * 1024 * 1024}
CAPTIONED = ("image", "video", "document")
#: The refusal of a free-form message outside the customer service window.
REENGAGEMENT = 131047


class WhatsAppConnector(PushConnector):
    """One WhatsApp business phone number."""

    channel_type = "whatsapp"
    generated_settings = ("verify_token",)
    platform_name = "WhatsApp"

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self.security = MetaWebhookSecurity(config)
        provider = config.secrets.get("provider_config") or config.settings.get("provider_config") or {}
        provider = provider if isinstance(provider, dict) else {}
        merged = {**config.settings, **provider, **{k: v for k, v in config.secrets.items() if k != "provider_config"}}
        self.phone_number_id = str(merged.get("phone_number_id") or "") or None
        self.business_account_id = str(merged.get("business_account_id") or "") or None
        token = merged.get("api_key") or merged.get("access_token")
        self._token = str(token) if token else None
        self.graph = GraphApi.from_settings(self._token or "", config.settings)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.graph.aclose()

    def handshake(self, query: Any) -> str:
        """Meta's ``hub.challenge`` check."""
        return self.security.handshake(query)

    def verify(self, request: WebhookRequest) -> None:
        """``X-Hub-Signature-256`` with the app secret."""
        self.security.verify(request)

    def parse(self, request: WebhookRequest) -> WebhookBatch:
        """Messages and statuses of a verified body."""
        return parse_body(self.config.inbox_id, request.body, self.phone_number_id)

    async def download_media(self, platform_id: str) -> Media:
        """A user's file: ``GET /{media-id}`` (with ``phone_number_id``, so only this
        number's media answer) for its short-lived URL, then that URL with the token
        (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/)."""
        if not self._token:
            raise MediaUnavailable("api_key is not set")
        params = {"phone_number_id": self.phone_number_id} if self.phone_number_id else None
        try:
            info = await self.graph.request("GET", platform_id, params=params, timeout=MEDIA_TIMEOUT)
        except (GraphError, ConnectorError) as exc:
            raise MediaUnavailable(f"media lookup refused: {exc}") from None
        url = info.get("url") if isinstance(info, dict) else None
        if not url:
            raise MediaUnavailable("the media lookup answered without a url")
        size = str(info.get("file_size") or "")
        if size.isdigit() and int(size) > MAX_MEDIA_BYTES:
            raise MediaUnavailable(f"the file is {size} bytes, over the {MAX_MEDIA_BYTES}-byte limit")
        media = await self.graph.download(str(url))
        return Media(media.data, media.content_type or info.get("mime_type"))

    async def templates(self) -> list[dict[str, Any]]:
        """The business account's message templates (every page of them)."""
        if not self._token or not self.business_account_id:
            raise NotConfigured("api_key and business_account_id are needed to list templates")
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"fields": "name,status,language,category,components", "limit": 100}
        while True:
            try:
                body = await self.graph.request("GET", f"{self.business_account_id}/message_templates", params=params)
            except GraphError as exc:
                raise ConnectorError(str(exc)) from None
            found.extend(body.get("data") or [])
            after = ((body.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (body.get("paging") or {}).get("next"):
                return found
            params = {**params, "after": after}

    async def send(self, message: OutboundMessage) -> str:
        """A template, or the files (uploaded, then sent by media id) and the text in
        pieces; returns the first message's wamid."""
        if not self._token or not self.phone_number_id:
            raise PermanentSendError("not_configured", "api_key and phone_number_id are needed to send")
        base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                "to": message.recipient_source_id}
        if message.in_reply_to:
            base["context"] = {"message_id": message.in_reply_to[0]}
        template = message.metadata.get("template_params")
        if template and message.attachments:
            raise PermanentSendError(400, "a WhatsApp template is sent on its own: send the files in another reply")
        if not template and not message.attachments and not split_text(message.text or "", MAX_TEXT):
            raise PermanentSendError(400, "nothing to send: the reply has no text and no file")
        ids: list[str] = []
        try:
            if template:
                ids.append(await self._post({**base, "type": "template", "template": _template(template)}))
            text = "" if template else message.text or ""
            for attachment in message.attachments:
                kind = media_kind(attachment.content_type)
                media = await self._media(attachment, kind)
                if text and kind in CAPTIONED and len(text) <= MAX_CAPTION:
                    media["caption"], text = text, ""
                ids.append(await self._post({**base, "type": kind, kind: media}))
            for piece in split_text(text, MAX_TEXT):
                ids.append(await self._post({**base, "type": "text", "text": {"preview_url": False, "body": piece}}))
        except GraphError as exc:
            text = exc.message + (f" ({exc.details})" if exc.details else "")
            raise PermanentSendError(exc.code, text) from None
        return ids[0]

    async def _post(self, body: dict[str, Any]) -> str:
        """One message to the messages endpoint; its wamid."""
        return _wamid(await self.graph.request("POST", f"{self.phone_number_id}/messages", json=body))

    async def _media(self, attachment: InboundAttachment, kind: str) -> dict[str, Any]:
        """The media object of a file: uploaded (``POST /{phone-number-id}/media``) and named
        by id, or by ``link`` when only a public HTTPS URL is known."""
        name = attachment.file_name or default_name(kind, attachment.content_type)
        media: dict[str, Any]
        if attachment.data is not None:
            limit = MEDIA_LIMITS[kind]
            if len(attachment.data) > limit:
                raise PermanentSendError(400, f"{name} is {len(attachment.data)} bytes; WhatsApp takes {kind} files "
                                              f"up to {limit} bytes")
            mime = _bare(attachment.content_type)
            answer = await self.graph.request("POST", f"{self.phone_number_id}/media",
                                              data={"messaging_product": "whatsapp", "type": mime},
                                              files={"file": (name, attachment.data, mime)})
            if not isinstance(answer, dict) or not answer.get("id"):
                raise TransientError("the media upload answered without a media id")
            media = {"id": str(answer["id"])}
        elif attachment.external_url and attachment.external_url.startswith("https://"):
            media = {"link": attachment.external_url}
        else:
            raise PermanentSendError(400, f"{name} has no stored bytes and no public HTTPS URL to send")
        if kind == "document":
            media["filename"] = name
        return media


def media_kind(content_type: str) -> str:
    """The message type a file is sent as (WhatsApp's *supported media types*); anything
    else goes as a ``document``."""
    mime = _bare(content_type)
    for kind, types in SENDABLE.items():
        if mime in types:
            return kind
    return "document"


def _bare(content_type: str) -> str:
    return (content_type or "application/octet-stream").split(";")[0].strip().lower()


def _template(params: dict[str, Any]) -> dict[str, Any]:
    """Chatwoot's ``template_params`` -> the Cloud API's ``template`` object."""
    name = params.get("name")
    if not name:
        raise PermanentSendError(400, "template_params.name is missing")
    language = params.get("language") or "en"
    template: dict[str, Any] = {"name": name, "language": {"code": language if isinstance(language, str) else language.get("code")}}
    if params.get("components"):
        template["components"] = params["components"]
    elif params.get("processed_params"):
        values = params["processed_params"]
        ordered = [values[k] for k in sorted(values, key=lambda k: (len(str(k)), str(k)))] if isinstance(values, dict) else list(values)
        template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": str(v)} for v in ordered]}]
    return template


def _wamid(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not messages or not messages[0].get("id"):
        raise TransientError("the messages endpoint answered without a message id")
    return str(messages[0]["id"])
