"""What every connector speaks: the platform-neutral inbound and outbound messages.

Connectors never touch the database. They turn platform data into
:class:`InboundMessage` and :class:`OutboundMessage` into platform calls; the service
(``app.tickets``) decides what to store.
"""

from connectors.base.messages import (
    InboundAttachment,
    InboundMessage,
    OutboundMessage,
    SenderIdentity,
)

__all__ = ["InboundAttachment", "InboundMessage", "OutboundMessage", "SenderIdentity"]
