"""Unusual volume: the last hours against the same hours of past weeks.

The rule (documented in docs/reports.md): for each channel type and each label, count
the conversations opened in the last ``WINDOW_HOURS`` whole hours (``x``) and in the
same hours of each of the previous ``WEEKS`` weeks (the baseline). Weeks whose window
overlaps a known peak of that scope are left out of the baseline; a current window
inside a known peak never alarms. With ``m`` the baseline median and ``MAD`` the median
absolute deviation, the robust z-score is ``0.6745 * (x - m) / MAD`` (Iglewicz and
Hoaglin); a flat baseline (MAD 0) uses 1 instead, so a jump from a steady 0 or 10 still
scores. A spike is ``z >= Z_THRESHOLD`` with ``x >= m + MIN_EXTRA`` and at least
``MIN_WEEKS`` baseline weeks. Each spike is raised once per scope and window
(``volume_alerts``) as a ``volume.spike`` event with a few sample conversations.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.log import append_event
from app.models import Account, Conversation, ConversationLabel, Inbox, ReportingEvent, VolumeAlert, VolumePeak

log = logging.getLogger(__name__)

WINDOW_HOURS = 3
WEEKS = 8
MIN_WEEKS = 3
Z_THRESHOLD = 3.5
MIN_EXTRA = 5
SAMPLES = 5


@dataclass(frozen=True)
class Score:
    """How far ``observed`` is above its baseline."""

    observed: int
    median: float
    mad: float
    z: float

    @property
    def spike(self) -> bool:
        return self.z >= Z_THRESHOLD and self.observed >= self.median + MIN_EXTRA


def robust_score(observed: int, baseline: Sequence[int]) -> Score | None:
    """The robust z-score of ``observed`` over ``baseline``; None with too few weeks."""
    if len(baseline) < MIN_WEEKS:
        return None
    median = float(statistics.median(baseline))
    mad = float(statistics.median(abs(v - median) for v in baseline))
    z = 0.6745 * (observed - median) / (mad or 1.0)
    return Score(observed, median, mad, round(z, 3))


def _overlaps(peaks: Sequence[VolumePeak], start: datetime, end: datetime, scope: str, value: str) -> bool:
    for peak in peaks:
        if peak.label is not None and (scope != "label" or peak.label != value):
            continue
        if peak.channel_type is not None and (scope != "channel" or peak.channel_type != value):
            continue
        if peak.starts_at < end and peak.ends_at > start:
            return True
    return False


async def _opened(session: AsyncSession, account_id: int, since: datetime, until: datetime
                  ) -> list[tuple[datetime, int, str, list[str]]]:
    """Conversations opened in range: (time, conversation id, channel type, labels)."""
    e = ReportingEvent
    rows = (await session.execute(
        select(e.event_end_time, e.conversation_id, Inbox.channel_type)
        .join(Inbox, Inbox.id == e.inbox_id)
        .where(e.account_id == account_id, e.name == "conversation_opened", e.event_end_time >= since,
               e.event_end_time < until))).all()
    labels: dict[int, list[str]] = defaultdict(list)
    ids = [r[1] for r in rows]
    for start in range(0, len(ids), 1000):
        for conversation_id, label in (await session.execute(select(
                ConversationLabel.conversation_id, ConversationLabel.label).where(
                ConversationLabel.conversation_id.in_(ids[start:start + 1000])))).all():
            labels[conversation_id].append(label)
    return [(at, cid, channel, labels.get(cid, [])) for at, cid, channel in rows]


async def check_account(session: AsyncSession, account_id: int, now: datetime) -> list[dict[str, Any]]:
    """Score every channel and label of the account for the window ending at ``now``'s hour; raise new spikes."""
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=WINDOW_HOURS)
    windows = [(start - timedelta(weeks=w), end - timedelta(weeks=w)) for w in range(WEEKS + 1)]
    rows = await _opened(session, account_id, windows[-1][0], end)
    peaks = (await session.scalars(select(VolumePeak).where(VolumePeak.account_id == account_id))).all()
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (WEEKS + 1))
    samples: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for at, conversation_id, channel, labels in rows:
        week = next((w for w, (a, b) in enumerate(windows) if a <= at < b), None)
        if week is None:
            continue
        for key in [("channel", channel), *(("label", label) for label in labels)]:
            counts[key][week] += 1
            if week == 0:
                samples[key].append((at, conversation_id))
    raised = []
    for (scope, value), series in sorted(counts.items()):
        if _overlaps(peaks, start, end, scope, value):
            continue
        baseline = [series[w] for w in range(1, WEEKS + 1) if not _overlaps(peaks, *windows[w], scope, value)]
        score = robust_score(series[0], baseline)
        if score is None or not score.spike:
            continue
        alert = await _raise(session, account_id, scope, value, start, end, score,
                             [cid for _, cid in sorted(samples[(scope, value)], reverse=True)[:SAMPLES]])
        if alert is not None:
            raised.append(alert)
    return raised


async def _raise(session: AsyncSession, account_id: int, scope: str, value: str, start: datetime, end: datetime,
                 score: Score, sample_ids: list[int]) -> dict[str, Any] | None:
    insert = (postgresql if session.bind.dialect.name == "postgresql" else sqlite).insert(VolumeAlert)
    alert_id = await session.scalar(insert.values(
        account_id=account_id, scope=scope, value=value, window_start=start, window_end=end, observed=score.observed,
        baseline_median=score.median, score=score.z,
    ).on_conflict_do_nothing(index_elements=["account_id", "scope", "value", "window_start"]).returning(VolumeAlert.id))
    if alert_id is None:
        return None  # raised before
    display = dict((await session.execute(select(Conversation.id, Conversation.display_id).where(
        Conversation.id.in_(sample_ids)))).all()) if sample_ids else {}
    payload = {"id": alert_id, "scope": scope, "label" if scope == "label" else "channel_type": value,
               "window_start": int(start.timestamp()), "window_end": int(end.timestamp()),
               "observed": score.observed, "baseline_median": score.median, "mad": score.mad, "score": score.z,
               "sample_conversation_ids": [display[c] for c in sample_ids if c in display]}
    append_event(session, account_id=account_id, event_type="volume.spike", payload=payload)
    return payload


async def recent(session: AsyncSession, account_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The account's latest alerts."""
    rows = await session.scalars(select(VolumeAlert).where(VolumeAlert.account_id == account_id)
                                 .order_by(VolumeAlert.window_start.desc(), VolumeAlert.id.desc()).limit(limit))
    return [{"id": a.id, "scope": a.scope, "value": a.value, "window_start": int(a.window_start.timestamp()),
             "window_end": int(a.window_end.timestamp()), "observed": a.observed,
             "baseline_median": a.baseline_median, "score": a.score} for a in rows]


class VolumeWatcher:
    """Checks every account's volume every ``interval`` seconds (several processes may
    run one: an alert is raised once, by whichever inserts its row first)."""

    def __init__(self, db: Any, interval: float = 600.0) -> None:
        self.db = db
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="volume-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def check_all(self, now: datetime) -> int:
        """One pass over all accounts; how many alerts were raised."""
        async with self.db.read_session() as session:
            account_ids = list((await session.scalars(select(Account.id))).all())
        raised = 0
        for account_id in account_ids:
            async with self.db.write_session() as session:
                raised += len(await check_account(session, account_id, now))
        return raised

    async def _loop(self) -> None:
        from app.models import utcnow

        while True:
            # Sleep first: a pass reads every account, and a process that has just started
            # (several may start together) should serve its streams and requests first.
            await asyncio.sleep(self.interval)
            try:
                await self.check_all(utcnow())
            except asyncio.CancelledError:
                raise
            except Exception:  # keep watching; the next pass retries
                log.exception("volume check failed")
