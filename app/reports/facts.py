"""Which measurable facts a conversation's timeline holds (pure; no database).

The live recorder and ``postroom reports rebuild`` both walk a conversation's messages
and status changes through :func:`derive`, so a rebuilt index equals the live one.

Rules (Chatwoot's reporting events, with the differences named):

* ``conversation_opened`` once per conversation, at its creation (value 0).
* ``incoming_message`` / ``outgoing_message`` for every public message (the counts).
* The contact starts waiting at their first message after the last answer. A person's
  public reply ends the wait with ``reply_time`` (value: the wait). A bot's or an
  automatic reply ends the wait without a fact, as in Chatwoot.
* ``first_response`` once per conversation: the first reply of a person, measured from
  the later of the contact's first message and the last bot hand-off (Chatwoot's
  ``last_non_human_activity``, so bot time does not inflate it).
* ``conversation_resolved`` on every resolve (value: since creation); from ``pending``
  (a bot was handling it) also ``conversation_bot_resolved``.
* ``conversation_reopened`` when a resolved conversation opens again (value: since the
  resolve); ``conversation_bot_handoff`` when a pending one opens (value: since creation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

HUMAN_SENDERS = ("user", None)
STATUS_FACTS = ("conversation_resolved", "conversation_reopened", "conversation_bot_handoff")


@dataclass(frozen=True)
class MessageItem:
    """A message as the walk needs it."""

    id: int
    at: datetime
    message_type: str
    sender_type: str | None
    sender_id: int | None
    private: bool
    automatic: bool


@dataclass(frozen=True)
class StatusItem:
    """A status change (``previous`` -> ``current``) at ``at``."""

    at: datetime
    previous: str
    current: str
    #: Set when the change is already recorded (read back from the index), so the walk
    #: uses it for state only.
    known: bool = False


@dataclass(frozen=True)
class ConversationInfo:
    """The conversation's fixed facts."""

    id: int
    account_id: int
    inbox_id: int
    created_at: datetime
    assignee_id: int | None
    team_id: int | None


@dataclass(frozen=True)
class Fact:
    """A reporting event before its values are measured with a clock."""

    name: str
    key: str
    start: datetime
    end: datetime
    user_id: int | None
    #: What produced it: ``("message", id)``, ``("status", at)`` or ``("conversation", id)``.
    origin: tuple[str, object]


def _order(item: MessageItem | StatusItem) -> tuple[datetime, int]:
    return (item.at, 0 if isinstance(item, MessageItem) else 1)


def status_key(conversation_id: int, name: str, at: datetime) -> str:
    """The unique key of a status fact (its time, to the microsecond)."""
    return f"{name}:{conversation_id}:{int(at.timestamp() * 1_000_000)}"


def opened_fact(conv: ConversationInfo) -> Fact:
    """``conversation_opened`` of a conversation."""
    return Fact("conversation_opened", f"opened:{conv.id}", conv.created_at, conv.created_at, conv.assignee_id,
                ("conversation", conv.id))


def incoming_fact(conv: ConversationInfo, item: MessageItem) -> Fact:
    """``incoming_message`` of a public incoming message."""
    return Fact("incoming_message", f"in:{item.id}", item.at, item.at, conv.assignee_id, ("message", item.id))


def derive(conversation: ConversationInfo, items: Iterable[MessageItem | StatusItem], *,
           answered: bool = False) -> list[Fact]:
    """Every fact of the timeline, in time order (see the module docstring).

    ``answered``: the conversation's first response is known to precede ``items`` (the
    live recorder then walks only its newest messages), so none is derived.
    """
    conv = conversation
    facts: list[Fact] = [opened_fact(conv)]
    waiting: datetime | None = None
    first_wait: datetime | None = None
    handoff: datetime | None = None
    last_resolved: datetime | None = None
    for item in sorted(items, key=_order):
        if isinstance(item, StatusItem):
            origin = ("status", item.at)
            if item.current == "resolved" and item.previous != "resolved":
                facts.append(Fact("conversation_resolved", status_key(conv.id, "conversation_resolved", item.at),
                                  conv.created_at, item.at, conv.assignee_id, origin))
                if item.previous == "pending":
                    facts.append(Fact("conversation_bot_resolved",
                                      status_key(conv.id, "conversation_bot_resolved", item.at),
                                      conv.created_at, item.at, None, origin))
                last_resolved, waiting = item.at, None
            elif item.previous == "resolved" and item.current != "resolved":
                facts.append(Fact("conversation_reopened", status_key(conv.id, "conversation_reopened", item.at),
                                  last_resolved or conv.created_at, item.at, conv.assignee_id, origin))
            elif item.previous == "pending" and item.current == "open":
                facts.append(Fact("conversation_bot_handoff", status_key(conv.id, "conversation_bot_handoff", item.at),
                                  conv.created_at, item.at, None, origin))
                handoff = item.at
            continue
        if item.private or item.message_type not in ("incoming", "outgoing"):
            continue
        origin = ("message", item.id)
        if item.message_type == "incoming":
            facts.append(incoming_fact(conv, item))
            if not item.automatic and waiting is None:
                waiting = item.at
                first_wait = first_wait or item.at
            continue
        person = item.sender_type in HUMAN_SENDERS and not item.automatic
        user = item.sender_id if item.sender_type == "user" else None
        facts.append(Fact("outgoing_message", f"out:{item.id}", item.at, item.at, user, origin))
        if not person:
            waiting = None
            continue
        if waiting is not None:
            facts.append(Fact("reply_time", f"reply:{item.id}", waiting, item.at, user, origin))
        if not answered and first_wait is not None:
            start = max(first_wait, handoff) if handoff else first_wait
            facts.append(Fact("first_response", f"first_response:{conv.id}", min(start, item.at), item.at,
                              user, origin))
            answered = True
        waiting = None
    return facts
