"""What every connector speaks: the platform-neutral messages, the connector interface
and its typed errors.

Connectors never touch the database. They turn platform data into
:class:`InboundMessage` and :class:`OutboundMessage` into platform calls; the service
(``app.tickets``) decides what to store, and the runner (``app.runner``) drives them.
"""

from connectors.base.connector import Connector, ConnectorConfig, Cursor, PullConnector, redact
from connectors.base.errors import (
    AuthFailed,
    ConnectorError,
    NotConfigured,
    PermanentSendError,
    RateLimited,
    TransientError,
)
from connectors.base.messages import (
    InboundAttachment,
    InboundMessage,
    OutboundMessage,
    SenderIdentity,
)
from connectors.base.push import (
    ContactEvent,
    HandshakeRefused,
    PushConnector,
    Quarantined,
    Receipt,
    SignatureInvalid,
    WebhookBatch,
    WebhookRequest,
)

__all__ = [
    "AuthFailed",
    "Connector",
    "ConnectorConfig",
    "ContactEvent",
    "HandshakeRefused",
    "PushConnector",
    "Quarantined",
    "Receipt",
    "SignatureInvalid",
    "WebhookBatch",
    "WebhookRequest",
    "ConnectorError",
    "Cursor",
    "InboundAttachment",
    "InboundMessage",
    "NotConfigured",
    "OutboundMessage",
    "PermanentSendError",
    "PullConnector",
    "RateLimited",
    "SenderIdentity",
    "TransientError",
    "redact",
]
