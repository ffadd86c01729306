"""The unified ticket model. Importing this package registers every table."""

from app.models.accounts import AccessToken, Account, Team, TeamMember, User
from app.models.base import Base, utcnow
from app.models.catalog import CannedResponse, Label
from app.models.contacts import Contact, ContactInbox, ContactLabel
from app.models.continuity import ContinuityEmail
from app.models.conversations import (
    Attachment,
    Conversation,
    ConversationLabel,
    Message,
)
from app.models.events import Event
from app.models.inboxes import ConnectorCursor, ConnectorState, Inbox, InboxMember
from app.models.quarantine import QuarantinedMessage
from app.models.sla import BusinessCalendarRow, SlaClock, SlaPolicy
from app.models.reports import CsatResponse, ReportingEvent, ReportingRollup, VolumeAlert, VolumePeak
from app.models.webhooks import (
    AgentBot,
    AgentBotInbox,
    DispatchCursor,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)

__all__ = [
    "CsatResponse",
    "ReportingEvent",
    "ReportingRollup",
    "VolumeAlert",
    "VolumePeak",
    "BusinessCalendarRow",
    "SlaClock",
    "SlaPolicy",
    "AgentBot",
    "AgentBotInbox",
    "DispatchCursor",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "AccessToken",
    "Account",
    "Attachment",
    "Base",
    "CannedResponse",
    "ConnectorCursor",
    "ConnectorState",
    "Contact",
    "ContactInbox",
    "ContactLabel",
    "ContinuityEmail",
    "Conversation",
    "ConversationLabel",
    "Event",
    "Inbox",
    "InboxMember",
    "Label",
    "Message",
    "QuarantinedMessage",
    "Team",
    "TeamMember",
    "User",
    "utcnow",
]
