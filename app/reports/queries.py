"""Report figures: sums over the hourly roll-up, percentiles over the event index.

Nothing here reads messages. Time buckets (day, week, month) and the weekday-by-hour
heat map are cut in the caller's time zone from the roll-up's UTC hours; a zone whose
offset is not a whole hour (India, Nepal) puts each hour in the local bucket where it
starts.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Invalid
from app.models import ConversationLabel, CsatResponse, Inbox, ReportingEvent, ReportingRollup

#: Chatwoot's v2 metric names -> (reporting event, aggregate).
METRICS: dict[str, tuple[str, str]] = {
    "conversations_count": ("conversation_opened", "count"),
    "incoming_messages_count": ("incoming_message", "count"),
    "outgoing_messages_count": ("outgoing_message", "count"),
    "avg_first_response_time": ("first_response", "avg"),
    "avg_resolution_time": ("conversation_resolved", "avg"),
    "reply_time": ("reply_time", "avg"),
    "resolutions_count": ("conversation_resolved", "count"),
    "bot_resolutions_count": ("conversation_bot_resolved", "count"),
    "bot_handoffs_count": ("conversation_bot_handoff", "count"),
    "reopens_count": ("conversation_reopened", "count"),
    "csat_score": ("csat", "avg"),
}
SUMMARY_METRICS = ("conversations_count", "incoming_messages_count", "outgoing_messages_count",
                   "avg_first_response_time", "avg_resolution_time", "resolutions_count", "reply_time",
                   "bot_resolutions_count", "bot_handoffs_count")
TYPES = ("account", "inbox", "agent", "team", "label")
GROUPS = ("hour", "day", "week", "month")
PERCENTILES = (50, 75, 90, 95, 99)


@dataclass(frozen=True)
class Scope:
    """Which slice of an account a report covers."""

    account_id: int
    type: str = "account"
    id: int | str | None = None
    business_hours: bool = False
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise Invalid(f"type must be one of {', '.join(TYPES)}", field="type")
        if self.type != "account" and self.id in (None, ""):
            raise Invalid(f"give the id of the {self.type}", field="id")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, KeyError) as exc:
            raise Invalid(f"unknown time zone {self.timezone!r}", field="timezone") from exc


def metric_event(metric: str) -> tuple[str, str]:
    """The reporting event and aggregate behind a metric name."""
    if metric not in METRICS:
        raise Invalid(f"metric must be one of {', '.join(METRICS)}", field="metric")
    return METRICS[metric]


async def _hourly(session: AsyncSession, scope: Scope, name: str, since: datetime, until: datetime,
                  *, by_inbox: bool = False) -> list[tuple[Any, ...]]:
    """``(hour, [inbox_id,] count, value sum)`` rows of one event in range."""
    if scope.type == "label" or (by_inbox and scope.type in ("agent", "team")):
        return await _hourly_raw(session, scope, name, since, until, by_inbox=by_inbox)
    r = ReportingRollup
    value = r.business_sum if scope.business_hours else r.value_sum
    query = select(r.hour, r.count, value).where(r.account_id == scope.account_id, r.name == name,
                                                 r.hour >= _floor_hour(since), r.hour < until)
    if by_inbox:  # every inbox's rows (the account's are their sum)
        query = select(r.hour, r.scope_id, r.count, value).where(
            r.account_id == scope.account_id, r.name == name, r.hour >= _floor_hour(since), r.hour < until,
            r.scope == "inbox")
        if scope.type == "inbox":
            query = query.where(r.scope_id == int(scope.id))  # type: ignore[arg-type]
        return [tuple(row) for row in (await session.execute(query)).all()]
    query = query.where(r.scope == scope.type, r.scope_id == (0 if scope.type == "account" else int(scope.id)))  # type: ignore[arg-type]
    return [tuple(row) for row in (await session.execute(query)).all()]


async def _local_groups(session: AsyncSession, scope: Scope, name: str, since: datetime, until: datetime,
                       unit: str) -> list[tuple[Any, ...]] | None:
    """On PostgreSQL, the roll-up summed per local ``day``/``week``/``month`` (rows of
    bucket start, count, sum) or per local weekday and hour (``heat``: rows of ISO
    weekday, hour, count, sum) in the database, so a long range returns a few rows;
    None elsewhere (SQLite has no time zones: the caller cuts the hours in Python)."""
    if session.bind.dialect.name != "postgresql" or scope.type == "label":
        return None
    r = ReportingRollup
    value = r.business_sum if scope.business_hours else r.value_sum
    local = func.timezone(scope.timezone, r.hour)
    if unit == "heat":
        keys: list[Any] = [func.extract("isodow", local), func.extract("hour", local)]
    else:
        keys = [func.timezone(scope.timezone, func.date_trunc(unit, local))]
    query = (select(*keys, func.sum(r.count), func.sum(value))
             .where(r.account_id == scope.account_id, r.name == name, r.hour >= _floor_hour(since), r.hour < until,
                    r.scope == scope.type, r.scope_id == (0 if scope.type == "account" else int(scope.id)))  # type: ignore[arg-type]
             .group_by(*keys))
    return [tuple(row) for row in (await session.execute(query)).all()]


async def _hourly_raw(session: AsyncSession, scope: Scope, name: str, since: datetime, until: datetime,
                      *, by_inbox: bool) -> list[tuple[Any, ...]]:
    """From the event index: labels change over a conversation's life, so a label report
    reads the events of the conversations carrying the label now; an agent's or team's
    figures per channel cross two roll-up scopes."""
    e = ReportingEvent
    value = e.value_in_business_hours if scope.business_hours else e.value
    query = (select(e.event_end_time, e.inbox_id, value)
             .where(e.account_id == scope.account_id, e.name == name, e.event_end_time >= since,
                    e.event_end_time < until))
    if scope.type == "label":
        query = query.join(ConversationLabel, ConversationLabel.conversation_id == e.conversation_id).where(
            ConversationLabel.label == str(scope.id))
    else:
        query = query.where((e.user_id if scope.type == "agent" else e.team_id) == int(scope.id))  # type: ignore[arg-type]
    sums: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    for end, inbox_id, amount in (await session.execute(query)).all():
        key = (end.replace(minute=0, second=0, microsecond=0), inbox_id) if by_inbox else (
            end.replace(minute=0, second=0, microsecond=0),)
        sums[key][0] += 1
        sums[key][1] += amount
    return [(*key, count, total) for key, (count, total) in sums.items()]


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def bucket_start(at: datetime, group_by: str, zone: ZoneInfo) -> datetime:
    """The local start (as UTC) of the day, ISO week or month holding ``at``."""
    local = at.astimezone(zone)
    if group_by == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        day = local.date()
        if group_by == "week":
            day -= timedelta(days=day.weekday())
        elif group_by == "month":
            day = day.replace(day=1)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start.astimezone(UTC)


def next_bucket(start: datetime, group_by: str, zone: ZoneInfo) -> datetime:
    """The start of the bucket after the one starting at ``start`` (local calendar steps, so DST days are 23 or 25 hours)."""
    if group_by == "hour":
        return start + timedelta(hours=1)
    day = start.astimezone(zone).date()
    if group_by == "day":
        day += timedelta(days=1)
    elif group_by == "week":
        day += timedelta(days=7)
    else:
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _value(aggregate: str, count: float, total: float) -> float:
    if aggregate == "count":
        return int(count)
    return round(total / count, 2) if count else 0


async def timeseries(session: AsyncSession, scope: Scope, metric: str, since: datetime, until: datetime,
                     group_by: str = "day") -> list[dict[str, Any]]:
    """Chatwoot's ``GET /api/v2/…/reports`` body: ``[{value, timestamp, count}]``, one per bucket, empty ones included."""
    if group_by not in GROUPS:
        raise Invalid(f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
    name, aggregate = metric_event(metric)
    zone = ZoneInfo(scope.timezone)
    starts: list[datetime] = []
    cursor = bucket_start(since, group_by, zone)
    while cursor < until:
        starts.append(cursor)
        cursor = next_bucket(cursor, group_by, zone)
    buckets: dict[datetime, list[float]] = {start: [0, 0.0] for start in starts}
    grouped = None if group_by == "hour" else await _local_groups(session, scope, name, since, until, group_by)
    if grouped is not None:
        for start, count, total in grouped:
            entry = buckets.setdefault(start.astimezone(UTC), [0, 0.0])
            entry[0] += count
            entry[1] += total or 0.0
        return [{"value": _value(aggregate, count, total), "timestamp": int(start.timestamp()), "count": int(count)}
                for start, (count, total) in sorted(buckets.items())]
    for hour, count, total in await _hourly(session, scope, name, since, until):
        # Buckets are sorted: find the hour's by bisection instead of converting each hour.
        index = bisect_right(starts, hour) - 1
        entry = buckets[starts[index]] if index >= 0 else buckets.setdefault(bucket_start(hour, group_by, zone), [0, 0.0])
        entry[0] += count
        entry[1] += total or 0.0
    return [{"value": _value(aggregate, count, total), "timestamp": int(start.timestamp()), "count": int(count)}
            for start, (count, total) in sorted(buckets.items())]


async def summary(session: AsyncSession, scope: Scope, since: datetime, until: datetime) -> dict[str, Any]:
    """Chatwoot's ``…/reports/summary`` body, with the previous period of the same length under ``previous``."""
    async def figures(start: datetime, end: datetime) -> dict[str, Any]:
        result: dict[str, Any] = {}
        cache: dict[str, tuple[float, float]] = {}
        for metric in SUMMARY_METRICS:
            name, aggregate = METRICS[metric]
            if name not in cache:
                rows = await _hourly(session, scope, name, start, end)
                cache[name] = (sum(r[1] for r in rows), sum((r[2] or 0.0) for r in rows))
            result[metric] = _value(aggregate, *cache[name])
        return result

    current = await figures(since, until)
    current["previous"] = await figures(since - (until - since), since)
    return current


def percentile(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


async def distribution(session: AsyncSession, scope: Scope, metric: str, since: datetime,
                       until: datetime) -> dict[str, Any]:
    """Count, average, median and percentiles of a time metric, from the event index."""
    name, aggregate = metric_event(metric)
    e = ReportingEvent
    value = e.value_in_business_hours if scope.business_hours else e.value
    query = select(value).where(e.account_id == scope.account_id, e.name == name, e.event_end_time >= since,
                                e.event_end_time < until)
    column = {"inbox": e.inbox_id, "agent": e.user_id, "team": e.team_id}.get(scope.type)
    if column is not None:
        query = query.where(column == int(scope.id))  # type: ignore[arg-type]
    elif scope.type == "label":
        query = query.join(ConversationLabel, ConversationLabel.conversation_id == e.conversation_id).where(
            ConversationLabel.label == str(scope.id))
    result: dict[str, Any] = {"metric": metric}
    if session.bind.dialect.name == "postgresql":
        # percentile_disc is the nearest-rank percentile, computed in the database.
        shares = postgresql.array([p / 100 for p in PERCENTILES])
        summary = query.with_only_columns(func.count(), func.avg(value),
                                          func.percentile_disc(shares).within_group(value))
        count, average, cuts = (await session.execute(summary)).one()
        result.update({"count": count, "avg": round(float(average), 2) if count else None})
        for p, cut in zip(PERCENTILES, cuts or [None] * len(PERCENTILES), strict=True):
            result[f"p{p}"] = cut
        return result
    values = sorted(v for (v,) in (await session.execute(query)).all())
    result.update({"count": len(values), "avg": round(sum(values) / len(values), 2) if values else None})
    for p in PERCENTILES:
        result[f"p{p}"] = percentile(values, p / 100)
    return result


async def heatmap(session: AsyncSession, scope: Scope, metric: str, since: datetime,
                  until: datetime) -> dict[str, Any]:
    """Counts by local weekday (0 = Monday) and hour: ``{"matrix": [[24 values] x 7], …}``."""
    name, aggregate = metric_event(metric)
    zone = ZoneInfo(scope.timezone)
    counts = [[0.0] * 24 for _ in range(7)]
    totals = [[0.0] * 24 for _ in range(7)]
    grouped = await _local_groups(session, scope, name, since, until, "heat")
    if grouped is not None:
        for weekday, hour, count, total in grouped:
            counts[int(weekday) - 1][int(hour)] += count
            totals[int(weekday) - 1][int(hour)] += total or 0.0
    else:
        for hour, count, total in await _hourly(session, scope, name, since, until):
            local = hour.astimezone(zone)
            counts[local.weekday()][local.hour] += count
            totals[local.weekday()][local.hour] += total or 0.0
    matrix = [[_value(aggregate, counts[d][h], totals[d][h]) for h in range(24)] for d in range(7)]
    return {"metric": metric, "timezone": scope.timezone, "matrix": matrix,
            "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


async def by_channel(session: AsyncSession, scope: Scope, metric: str, since: datetime,
                     until: datetime) -> list[dict[str, Any]]:
    """The metric per channel type (and per inbox), largest first."""
    name, aggregate = metric_event(metric)
    rows = await _hourly(session, scope, name, since, until, by_inbox=True)
    inboxes = {i.id: i for i in (await session.scalars(
        select(Inbox).where(Inbox.account_id == scope.account_id))).all()}
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for _hour, inbox_id, count, total in rows:
        channel = inboxes[inbox_id].channel_type if inbox_id in inboxes else "unknown"
        sums[channel][0] += count
        sums[channel][1] += total or 0.0
    return sorted(({"channel_type": channel, "value": _value(aggregate, c, t), "count": int(c)}
                   for channel, (c, t) in sums.items()), key=lambda r: (-r["count"], r["channel_type"]))


async def csat(session: AsyncSession, scope: Scope, since: datetime, until: datetime) -> dict[str, Any]:
    """Surveys sent and answered in range, the 1–5 distribution, average and satisfaction share (4–5)."""
    c = CsatResponse
    query = select(c.rating, func.count()).where(c.account_id == scope.account_id, c.created_at >= since,
                                                 c.created_at < until).group_by(c.rating)
    if scope.type == "inbox":
        query = query.where(c.inbox_id == int(scope.id))  # type: ignore[arg-type]
    elif scope.type == "agent":
        query = query.where(c.assignee_id == int(scope.id))  # type: ignore[arg-type]
    elif scope.type == "label":
        query = query.join(ConversationLabel, ConversationLabel.conversation_id == c.conversation_id).where(
            ConversationLabel.label == str(scope.id))
    ratings = dict((await session.execute(query)).all())
    sent = sum(ratings.values())
    answered = {r: n for r, n in ratings.items() if r is not None}
    total = sum(answered.values())
    return {
        "sent": sent, "answered": total, "response_rate": round(total / sent, 4) if sent else None,
        "average": round(sum(r * n for r, n in answered.items()) / total, 2) if total else None,
        "satisfaction_rate": round(sum(n for r, n in answered.items() if r >= 4) / total, 4) if total else None,
        "distribution": {str(r): answered.get(r, 0) for r in range(1, 6)},
    }
