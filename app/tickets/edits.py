"""Edits made on the platform: a customer changed a message Postroom already stored.

Connectors hand these over as :class:`InboundMessage` with ``edited=True`` (Telegram's
``edited_message``). The stored message keeps its id and place; its text is replaced,
``content_attributes.edited`` is set, and ``message.updated`` tells the agents. An edit
of a message that was never stored (sent before the inbox was connected, or skipped) is
ignored; the same edit delivered twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Message, utcnow
from app.tickets.replies import queue_message_event
from connectors.base import InboundMessage


async def apply_edits(session: AsyncSession, edits: Sequence[InboundMessage]) -> int:
    """Apply platform edits in the caller's transaction; returns how many changed a message."""
    changed = 0
    for edit in edits:
        message = await session.scalar(
            select(Message).where(Message.inbox_id == edit.inbox_id, Message.source_id == edit.source_id)
        )
        if message is None or message.message_type != "incoming" or message.content == edit.text:
            continue
        attributes = dict(message.content_attributes or {})
        attributes.setdefault("previous_content", message.content)
        attributes["edited"] = True
        message.content = edit.text
        message.content_attributes = attributes
        message.updated_at = utcnow()
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        await queue_message_event(session, conversation, message, "message.updated")
        changed += 1
    return changed
