"""What sellers and leads read: late-response risk, SLA metrics, marketplace scores."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Inbox, Message, SlaClock, utcnow
from app.sla.engine import clock_json
from app.sla.rules import MARKETPLACE_RULES

BANDS = (("breached", 0), ("critical", 3600), ("high", 6 * 3600))


def risk_band(seconds_left: float) -> str:
    """``breached`` (past due), ``critical`` (< 1 h), ``high`` (< 6 h), else ``ok``."""
    for band, limit in BANDS:
        if seconds_left < limit:
            return band
    return "ok"


async def at_risk(session: AsyncSession, account_id: int, *, within: timedelta, inbox_ids: frozenset[int] | None,
                  inbox_id: int | None = None, channel_type: str | None = None, now: datetime | None = None,
                  limit: int = 500) -> list[dict[str, Any]]:
    """Running clocks due within ``within`` (breached ones first), soonest first."""
    now = now or utcnow()
    query = (
        select(SlaClock, Conversation.display_id, Conversation.status, Conversation.assignee_id, Inbox.channel_type, Inbox.name)
        .join(Conversation, Conversation.id == SlaClock.conversation_id)
        .join(Inbox, Inbox.id == SlaClock.inbox_id)
        .where(SlaClock.account_id == account_id, SlaClock.ended_at.is_(None),
               SlaClock.status.in_(("active", "breached")), SlaClock.due_at <= now + within)
        .order_by(SlaClock.due_at, SlaClock.id).limit(limit)
    )
    if inbox_ids is not None:
        query = query.where(SlaClock.inbox_id.in_(sorted(inbox_ids)))
    if inbox_id is not None:
        query = query.where(SlaClock.inbox_id == inbox_id)
    if channel_type:
        query = query.where(Inbox.channel_type == channel_type)
    rows = []
    for clock, display_id, status, assignee_id, kind_of_channel, inbox_name in (await session.execute(query)).all():
        left = (clock.due_at - now).total_seconds()
        rows.append({
            "conversation_id": display_id, "conversation_status": status, "assignee_id": assignee_id,
            "inbox_id": clock.inbox_id, "inbox_name": inbox_name, "channel_type": kind_of_channel,
            "clock": clock.kind, "rule": MARKETPLACE_RULES[clock.kind].label if clock.kind in MARKETPLACE_RULES else clock.kind,
            "due_at": int(clock.due_at.timestamp()), "seconds_left": int(left), "risk": risk_band(left),
        })
    return rows


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(share * (len(ordered) - 1)))))
    return ordered[index]


async def metrics(session: AsyncSession, account_id: int, *, since: datetime, until: datetime, group_by: str,
                  inbox_ids: frozenset[int] | None) -> list[dict[str, Any]]:
    """Per group: response rate within each rule, breaches, median and p90 first-response
    and resolution times in calendar and business seconds, over clocks that ended in range."""
    query = (
        select(SlaClock, Conversation.assignee_id, Inbox.channel_type)
        .join(Conversation, Conversation.id == SlaClock.conversation_id)
        .join(Inbox, Inbox.id == SlaClock.inbox_id)
        .where(SlaClock.account_id == account_id, SlaClock.ended_at >= since, SlaClock.ended_at < until,
               SlaClock.status.in_(("met", "breached")))
    )
    if inbox_ids is not None:
        query = query.where(SlaClock.inbox_id.in_(sorted(inbox_ids)))
    groups: dict[Any, list[SlaClock]] = defaultdict(list)
    for clock, assignee_id, channel_type in (await session.execute(query)).all():
        key = {"inbox": clock.inbox_id, "agent": assignee_id, "channel_type": channel_type}[group_by]
        groups[key].append(clock)
    result = []
    for key, clocks in sorted(groups.items(), key=lambda item: str(item[0])):
        row: dict[str, Any] = {group_by if group_by != "agent" else "agent_id": key,
                               "clocks": len(clocks), "breaches": sum(c.status == "breached" for c in clocks)}
        for kind in sorted({c.kind for c in clocks}):
            of_kind = [c for c in clocks if c.kind == kind]
            met = sum(c.status == "met" for c in of_kind)
            row[f"{kind}_rate"] = round(met / len(of_kind), 4)
        for kind in ("first_response", "resolution"):
            of_kind = [c for c in clocks if c.kind == kind]
            for unit in ("calendar", "business"):
                values = [getattr(c, f"{unit}_seconds") for c in of_kind if getattr(c, f"{unit}_seconds") is not None]
                row[f"{kind}_median_{unit}_seconds"] = statistics.median(values) if values else None
                row[f"{kind}_p90_{unit}_seconds"] = _percentile(values, 0.9)
        result.append(row)
    return result


@dataclass(frozen=True)
class ScoreRule:
    """How a marketplace computes its responsiveness figure."""

    kind: str
    metric: str
    windows_days: tuple[int, ...]
    first_in_thread_only: bool


SCORES = {
    "amazon": ScoreRule("amazon", "late_response_rate", (7, 30, 90), False),
    "walmart": ScoreRule("walmart", "response_rate", (30,), False),
    "etsy": ScoreRule("etsy", "first_message_response_rate", (90,), True),
    "shopee": ScoreRule("shopee", "chat_response_rate", (90,), True),
    "tiktok_shop": ScoreRule("tiktok_shop", "response_rate", (30,), True),
    "lazada": ScoreRule("lazada", "chat_response_rate", (7,), True),
}


async def marketplace_scores(session: AsyncSession, inbox: Inbox, *, now: datetime | None = None) -> dict[str, Any]:
    """The figure the marketplace will show, computed the way it does.

    Every buyer message (or only a thread's first, where the marketplace counts only
    those) is answered by the first reply after it from a person (on Postroom or echoed
    from the marketplace); bots and auto-replies do not count; messages marked "no
    reply needed" are left out. A message still unanswered counts as late once its due
    time has passed, and is left out until then.
    """
    now = now or utcnow()
    score = SCORES.get(inbox.channel_type)
    rule = MARKETPLACE_RULES.get(inbox.channel_type)
    if score is None or rule is None:
        return {"inbox_id": inbox.id, "channel_type": inbox.channel_type, "scores": []}
    horizon = now - timedelta(days=max(score.windows_days))
    messages = (await session.execute(
        select(Message.conversation_id, Message.message_type, Message.sender_type, Message.automatic,
               Message.private, Message.created_at, Message.content_attributes)
        .where(Message.inbox_id == inbox.id, Message.created_at >= horizon - timedelta(days=3))
        .order_by(Message.conversation_id, Message.created_at, Message.id)
    )).all()
    excluded = {c for (c,) in (await session.execute(select(SlaClock.conversation_id).where(
        SlaClock.inbox_id == inbox.id, SlaClock.status == "excluded"))).all()}
    judged: list[tuple[datetime, bool | None]] = []  # (received, on time? None = still open)
    by_conversation: dict[int, list[Any]] = defaultdict(list)
    for row in messages:
        by_conversation[row.conversation_id].append(row)
    for conversation_id, rows in by_conversation.items():
        if conversation_id in excluded:
            continue
        buyer_seen = False
        pending: list[datetime] = []
        for row in rows:
            if row.private or row.message_type == "activity":
                continue
            if row.message_type == "incoming" and not row.automatic:
                if score.first_in_thread_only and buyer_seen:
                    continue
                buyer_seen = True
                pending.append(row.created_at)
            elif row.message_type == "outgoing" and row.sender_type in ("user", None) and not row.automatic:
                for received in pending:
                    due = rule.due(received, timezone=inbox.timezone or "UTC", holidays=())
                    judged.append((received, row.created_at <= due))
                pending = []
        for received in pending:
            due = rule.due(received, timezone=inbox.timezone or "UTC", holidays=())
            judged.append((received, False if now > due else None))
    scores = []
    for days in score.windows_days:
        since = now - timedelta(days=days)
        decided = [on_time for received, on_time in judged if received >= since and on_time is not None]
        late = sum(1 for on_time in decided if not on_time)
        entry: dict[str, Any] = {"window_days": days, "messages": len(decided), "late": late}
        if score.metric == "late_response_rate":
            entry["late_response_rate"] = round(late / len(decided), 4) if decided else 0.0
        else:
            entry[score.metric] = round((len(decided) - late) / len(decided), 4) if decided else None
        scores.append(entry)
    return {"inbox_id": inbox.id, "channel_type": inbox.channel_type, "rule": rule.label, "metric": score.metric,
            "source": rule.source, "scores": scores}


__all__ = ["at_risk", "clock_json", "marketplace_scores", "metrics", "risk_band"]
