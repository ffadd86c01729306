"""Request bodies of the REST API (Chatwoot's field names; unknown fields are ignored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    """Base of request bodies: extra fields are ignored, as Chatwoot does."""

    model_config = ConfigDict(extra="ignore")


class SignIn(Body):
    email: str = Field(examples=["agent@example.com"])
    password: str = Field(examples=["correct horse battery staple"])


class AgentCreate(Body):
    name: str = Field(examples=["Somchai"])
    email: str = Field(examples=["somchai@example.com"])
    role: str = Field(default="agent", examples=["agent"])
    password: str | None = None
    availability_status: str | None = None


class AgentUpdate(Body):
    name: str | None = None
    display_name: str | None = None
    role: str | None = None
    availability: str | None = None
    availability_status: str | None = None


class InboxCreate(Body):
    name: str = Field(examples=["Support mail"])
    channel: dict[str, Any] = Field(examples=[{"type": "api", "webhook_url": "https://example.com/hook"}])
    greeting_enabled: bool | None = None
    greeting_message: str | None = None
    enable_auto_assignment: bool | None = None
    allow_messages_after_resolved: bool | None = None
    working_hours_enabled: bool | None = None
    timezone: str | None = None
    reopen_window_days: int | None = Field(default=None, ge=0, le=3650)
    #: Chatwoot's inbox setting; kept with the channel settings (app/reports/csat.py).
    csat_survey_enabled: bool | None = None


class InboxUpdate(Body):
    name: str | None = None
    channel: dict[str, Any] | None = None
    greeting_enabled: bool | None = None
    greeting_message: str | None = None
    enable_auto_assignment: bool | None = None
    allow_messages_after_resolved: bool | None = None
    working_hours_enabled: bool | None = None
    timezone: str | None = None
    reopen_window_days: int | None = Field(default=None, ge=0, le=3650)
    #: Chatwoot's inbox setting; kept with the channel settings (app/reports/csat.py).
    csat_survey_enabled: bool | None = None


class InboxMembers(Body):
    inbox_id: int
    user_ids: list[int] = Field(examples=[[1, 2]])


class UserIds(Body):
    user_ids: list[int] = Field(examples=[[1, 2]])


class ContactCreate(Body):
    inbox_id: int | None = None
    name: str | None = Field(default=None, examples=["Nguyễn Văn An"])
    email: str | None = Field(default=None, examples=["an@example.vn"])
    phone_number: str | None = Field(default=None, examples=["+84901234567"])
    identifier: str | None = None
    avatar_url: str | None = None
    source_id: str | None = None
    additional_attributes: dict[str, Any] | None = None
    custom_attributes: dict[str, Any] | None = None


class ContactUpdate(Body):
    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    avatar_url: str | None = None
    blocked: bool | None = None
    additional_attributes: dict[str, Any] | None = None
    custom_attributes: dict[str, Any] | None = None


class ContactMerge(Body):
    base_contact_id: int
    mergee_contact_id: int


class Labels(Body):
    labels: list[str] = Field(examples=[["billing", "vip"]])


class ConversationCreate(Body):
    inbox_id: int
    source_id: str | None = None
    contact_id: int | None = None
    status: str = "open"
    assignee_id: int | None = None
    team_id: int | None = None
    additional_attributes: dict[str, Any] | None = None
    custom_attributes: dict[str, Any] | None = None
    message: dict[str, Any] | None = Field(default=None, examples=[{"content": "Hello!"}])


class ConversationUpdate(Body):
    status: str | None = None
    sla_policy_id: int | None = None
    priority: str | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    snoozed_until: datetime | int | None = None
    custom_attributes: dict[str, Any] | None = None
    additional_attributes: dict[str, Any] | None = None


class ToggleStatus(Body):
    status: str | None = Field(default=None, examples=["resolved"])
    snoozed_until: datetime | int | None = None


class TogglePriority(Body):
    priority: str | None = Field(examples=["urgent"])


class Assignment(Body):
    assignee_id: int | None = None
    team_id: int | None = None


class MessageCreate(Body):
    content: str | None = Field(default=None, max_length=150_000, examples=["สวัสดีครับ ยินดีให้บริการ"])
    message_type: str = "outgoing"
    private: bool = False
    content_type: str = "text"
    content_attributes: dict[str, Any] | None = None
    source_id: str | None = None
    echo_id: str | None = None
    #: Chatwoot's WhatsApp template (``name``, ``language``, ``processed_params``); kept
    #: as ``content_attributes.template_params``.
    template_params: dict[str, Any] | None = None

    def attributes(self) -> dict[str, Any] | None:
        """``content_attributes`` with ``template_params`` folded in."""
        if not self.template_params:
            return self.content_attributes
        return {**(self.content_attributes or {}), "template_params": self.template_params}


class MessageUpdate(Body):
    content: str = Field(max_length=150_000)


class TeamBody(Body):
    name: str | None = Field(default=None, examples=["Billing"])
    description: str | None = None
    allow_auto_assign: bool | None = None


class LabelBody(Body):
    title: str | None = Field(default=None, examples=["shipping"])
    description: str | None = None
    color: str | None = Field(default=None, examples=["#ff6b00"])
    show_on_sidebar: bool | None = None


class CannedBody(Body):
    short_code: str | None = Field(default=None, examples=["thanks"])
    content: str | None = Field(default=None, examples=["Thank you for writing to us!"])
