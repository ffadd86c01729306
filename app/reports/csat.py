"""Satisfaction surveys: sent on resolve where the inbox asks for them, answered once.

How the survey reaches the contact depends on the channel (Chatwoot's
``csat_survey_enabled`` inbox setting switches it on):

* live chat (``web_widget``) and the API channel: an ``input_csat`` template message;
  the widget shows 1–5 buttons and a comment box and posts the answer to the public
  survey endpoint named in the message (``content_attributes.survey_url``);
* e-mail: a message with the link to the public survey page;
* messengers: a message with the link and 1–5 quick replies, only while the platform's
  reply window is open (never a tagged or out-of-window send);
* marketplaces: none (their rules forbid surveys in buyer chat).

The survey row is created once per conversation; an answer is stored once (the update
only matches a row without a rating), so a second answer is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Invalid, NotFound
from app.models import Conversation, CsatResponse, Inbox, Message, utcnow
from app.reports.recorder import record_csat
from app.sla.engine import reply_permission
from app.sla.rules import MARKETPLACE_RULES

CHAT_CHANNELS = ("web_widget", "api")
EMAIL_CHANNELS = ("email",)
MESSENGER_CHANNELS = ("facebook", "instagram", "whatsapp", "line", "telegram", "zalo", "viber")
QUESTION = "Please rate this conversation"
MAX_FEEDBACK = 2000


def enabled(inbox: Inbox) -> bool:
    """Whether the inbox sends surveys (``csat_survey_enabled`` channel setting)."""
    return bool((inbox.settings or {}).get("csat_survey_enabled"))


def survey_url(public_url: str, uuid: str) -> str:
    """The public page of one survey."""
    return f"{public_url.rstrip('/')}/survey/responses/{uuid}"


def delivery_for(conversation: Conversation, inbox: Inbox, now: datetime) -> str | None:
    """How a survey can reach this conversation's contact now (None: it cannot)."""
    channel = inbox.channel_type
    if channel in MARKETPLACE_RULES:
        return None
    if channel in CHAT_CHANNELS:
        return "message"
    if channel in EMAIL_CHANNELS:
        return "email_link"
    if channel in MESSENGER_CHANNELS:
        allowed, tag, _ = reply_permission(conversation, inbox, now=now, by_bot=True, message_type="outgoing")
        return "quick_replies" if allowed and tag is None else None
    return None


async def on_resolved(session: AsyncSession, conversation: Conversation, inbox: Inbox, public_url: str) -> None:
    """Send the survey of a conversation just resolved, if the inbox wants one and none was sent."""
    if not enabled(inbox):
        return
    if await session.scalar(select(CsatResponse.id).where(CsatResponse.conversation_id == conversation.id)):
        return
    from app.tickets.replies import DISPATCHED_CHANNELS, add_activity, queue_message_event

    now = utcnow()
    delivery = delivery_for(conversation, inbox, now)
    if delivery is None:
        await add_activity(session, conversation, "Satisfaction survey not sent: the channel does not allow it now")
        return
    survey = CsatResponse(account_id=conversation.account_id, inbox_id=inbox.id, conversation_id=conversation.id,
                          contact_id=conversation.contact_id, assignee_id=conversation.assignee_id,
                          delivery=delivery, created_at=now)
    session.add(survey)
    await session.flush()
    url = survey_url(public_url, survey.uuid)
    attributes: dict[str, Any] = {"survey_url": url, "survey_uuid": survey.uuid}
    content = QUESTION
    if delivery != "message":
        content = f"{QUESTION}: {url}"
    if delivery == "quick_replies":
        attributes["quick_replies"] = [str(n) for n in range(1, 6)]
    message = Message(
        account_id=conversation.account_id, inbox_id=inbox.id, conversation_id=conversation.id,
        message_type="template", content_type="input_csat", content=content, sender_type="system",
        status="pending" if inbox.channel_type in DISPATCHED_CHANNELS else "sent", automatic=True,
        created_at=now, content_attributes=attributes, additional_attributes={},
    )
    session.add(message)
    await session.flush()
    survey.message_id = message.id
    await queue_message_event(session, conversation, message, "message.created")


async def survey_by_uuid(session: AsyncSession, uuid: str) -> CsatResponse:
    """A survey by its public id; NotFound for anything else."""
    survey = await session.scalar(select(CsatResponse).where(CsatResponse.uuid == uuid))
    if survey is None:
        raise NotFound("Survey")
    return survey


async def answer(session: AsyncSession, uuid: str, rating: Any, feedback: str | None) -> CsatResponse:
    """Store the one answer of a survey; Conflict when it was answered before."""
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise Invalid("rating must be a whole number from 1 to 5", field="rating")
    if feedback is not None and len(feedback) > MAX_FEEDBACK:
        raise Invalid(f"feedback is longer than {MAX_FEEDBACK} characters", field="feedback")
    survey = await survey_by_uuid(session, uuid)
    now = utcnow()
    result = await session.execute(
        update(CsatResponse).where(CsatResponse.id == survey.id, CsatResponse.rating.is_(None))
        .values(rating=rating, feedback=(feedback or None), answered_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict("this survey has already been answered")
    await session.refresh(survey)
    conversation = await session.get(Conversation, survey.conversation_id)
    assert conversation is not None
    await record_csat(session, conversation, rating, now, survey.id)
    if survey.message_id is not None:
        message = await session.get(Message, survey.message_id)
        if message is not None:
            from app.tickets.replies import queue_message_event

            message.content_attributes = {**(message.content_attributes or {}), "submitted_values": {
                "csat_survey_response": {"rating": rating, "feedback_message": feedback or ""}}}
            await queue_message_event(session, conversation, message, "message.updated")
    return survey


def survey_json(survey: CsatResponse) -> dict[str, Any]:
    """A survey as agents see it on the conversation and in lists."""
    return {"id": survey.id, "conversation_id": survey.conversation_id, "inbox_id": survey.inbox_id,
            "contact_id": survey.contact_id, "assignee_id": survey.assignee_id, "delivery": survey.delivery,
            "rating": survey.rating, "feedback_message": survey.feedback,
            "created_at": int(survey.created_at.timestamp()),
            "answered_at": int(survey.answered_at.timestamp()) if survey.answered_at else None}
