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
"""

from __future__ import annotations

from typing import Any

from connectors.base import (
    ConnectorConfig,
    ConnectorError,
    NotConfigured,
    OutboundMessage,
    PermanentSendError,
    PushConnector,
    TransientError,
    WebhookBatch,
    WebhookRequest,
)
from connectors.base.text import split_text
from connectors.meta.graph import DEFAULT_GRAPH_URL, DEFAULT_RETRY_AFTER, DEFAULT_VERSION, GraphApi, GraphError
from connectors.meta.webhooks import MetaWebhookSecurity
from connectors.whatsapp.parse import parse_body

#: Text message body limit, in characters.
MAX_TEXT = 4096
#: The refusal of a free-form message outside the customer service window.
REENGAGEMENT = 131047


class WhatsAppConnector(PushConnector):
    """One WhatsApp business phone number."""

    channel_type = "whatsapp"
    generated_settings = ("verify_token",)

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
        self.graph = GraphApi(self._token or "", base_url=str(config.settings.get("graph_base_url") or DEFAULT_GRAPH_URL),
                              version=str(config.settings.get("graph_version") or DEFAULT_VERSION),
                              default_retry_after=float(config.settings.get("rate_limit_retry_seconds") or DEFAULT_RETRY_AFTER))

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
        """A template, or the text in pieces; returns the first message's wamid."""
        if not self._token or not self.phone_number_id:
            raise PermanentSendError("not_configured", "api_key and phone_number_id are needed to send")
        if message.attachments:
            raise PermanentSendError(400, "files are not sent on WhatsApp by Postroom yet; send text or a template")
        base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                "to": message.recipient_source_id}
        if message.in_reply_to:
            base["context"] = {"message_id": message.in_reply_to[0]}
        template = message.metadata.get("template_params")
        if template:
            bodies = [{**base, "type": "template", "template": _template(template)}]
        else:
            bodies = [{**base, "type": "text", "text": {"preview_url": False, "body": piece}}
                      for piece in split_text(message.text or "", MAX_TEXT)]
        if not bodies:
            raise PermanentSendError(400, "nothing to send: the reply has no text")
        ids = []
        try:
            for body in bodies:
                answer = await self.graph.request("POST", f"{self.phone_number_id}/messages", json=body)
                ids.append(_wamid(answer))
        except GraphError as exc:
            text = exc.message + (f" ({exc.details})" if exc.details else "")
            raise PermanentSendError(exc.code, text) from None
        return ids[0]


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
