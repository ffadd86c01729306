"""Meta's webhook security, shared by Messenger, Instagram and WhatsApp.

* Subscription check (``GET``): Meta sends ``hub.mode=subscribe``, ``hub.verify_token``
  and ``hub.challenge``; the endpoint answers the challenge when the token is the one
  pasted in the App Dashboard
  (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests).
* Event notifications (``POST``) carry ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of
  the raw payload, keyed with the app secret>``
  (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads,
  https://developers.facebook.com/docs/messenger-platform/webhooks#validate-payloads).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from connectors.base import ConnectorConfig, HandshakeRefused, WebhookRequest
from connectors.base.push import require_signature

SIGNATURE_HEADER = "X-Hub-Signature-256"


class MetaWebhookSecurity:
    """The handshake and signature check of one Meta app's webhook."""

    def __init__(self, config: ConnectorConfig) -> None:
        self.app_secret = config.secret("app_secret")
        self.verify_token = str(config.settings.get("verify_token") or "")

    def handshake(self, query: Mapping[str, str]) -> str:
        """``hub.challenge`` when mode and verify token are right."""
        token = query.get("hub.verify_token") or ""
        if query.get("hub.mode") != "subscribe" or not self.verify_token:
            raise HandshakeRefused("hub.mode must be subscribe")
        if not hmac.compare_digest(token.encode(), self.verify_token.encode()):
            raise HandshakeRefused("hub.verify_token does not match the inbox's verify_token")
        return query.get("hub.challenge") or ""

    def verify(self, request: WebhookRequest) -> None:
        """:class:`SignatureInvalid` unless the body is signed with the app secret."""
        require_signature(self.app_secret, request, SIGNATURE_HEADER, encoding="hex", prefix="sha256=")
