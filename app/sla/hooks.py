"""Where the ticket services tell the SLA engine about changes, with a fast path for
accounts and channels that have no clock at all (most messages of most accounts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Inbox
from app.sla import engine
from app.sla.rules import MARKETPLACE_RULES


async def clocks_apply(session: AsyncSession, conversation: Conversation, inbox: Inbox) -> bool:
    """Whether any clock can run on this conversation (cached per transaction)."""
    if inbox.channel_type in MARKETPLACE_RULES or conversation.sla_policy_id:
        return True
    return bool(await engine.account_policies(session, conversation.account_id))


async def after_ingest(session: AsyncSession, conversation: Conversation, inbox: Inbox, *, message_type: str,
                       automatic: bool, at: datetime, created: bool, previous_status: str | None) -> None:
    """An ingested message: reply window, reopen, and the clocks."""
    if message_type == "incoming" and not automatic:
        engine.update_reply_window(conversation, inbox, at)
    if not await clocks_apply(session, conversation, inbox):
        return
    if previous_status is not None:
        await engine.on_status(session, conversation, inbox, previous_status, at)
    author: engine.Author = "automatic" if automatic else ("contact" if message_type == "incoming" else "echo")
    await engine.on_message(session, conversation, inbox, author=author, at=at, first_in_thread=created)


async def after_reply(session: AsyncSession, conversation: Conversation, inbox: Inbox, *, author: engine.Author,
                      at: datetime, private: bool) -> None:
    """A message written in Postroom (reply, note, or a contact's message through the API)."""
    if author == "contact" and not private:
        engine.update_reply_window(conversation, inbox, at)
    if await clocks_apply(session, conversation, inbox):
        await engine.on_message(session, conversation, inbox, author=author, at=at, private=private)


async def after_status(session: AsyncSession, conversation: Conversation, inbox: Inbox, previous: str, at: datetime) -> None:
    """The status changed."""
    if await clocks_apply(session, conversation, inbox):
        await engine.on_status(session, conversation, inbox, previous, at)
