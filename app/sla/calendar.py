"""Clocks that add durations and measure spans, in calendar or in business time.

Business time is built per local calendar date with ``zoneinfo``: each date's opening
intervals are turned into UTC instants on their own, so a 23-hour or 25-hour DST day,
a window across midnight's DST jump, or a holiday simply yields the right instants.
Nothing ever adds "24 hours" in local wall time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far a search for open time may go before deciding a calendar is never open.
MAX_SEARCH_DAYS = 3 * 366


class Clock:
    """Calendar time: every second counts (Amazon, Walmart, Meta windows)."""

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant ``seconds`` of counted time after ``start``."""
        return start + timedelta(seconds=seconds)

    def between(self, start: datetime, end: datetime) -> float:
        """Counted seconds from ``start`` to ``end`` (0 when end is earlier)."""
        return max(0.0, (end - start).total_seconds())


CALENDAR = Clock()


def _parse_time(value: str) -> time:
    if value in ("24:00", "24:00:00"):
        return time.max
    return time.fromisoformat(value)


@dataclass(frozen=True)
class Holiday:
    """A closed date: one-off, or every year on the same month and day."""

    day: date
    yearly: bool = False

    def matches(self, other: date) -> bool:
        if self.yearly:
            return (self.day.month, self.day.day) == (other.month, other.day)
        return self.day == other


@dataclass(frozen=True)
class BusinessCalendar(Clock):
    """Opening hours in a time zone: several intervals a day, and holidays."""

    timezone: str = "UTC"
    #: ``{"mon": [("09:00", "12:00"), ("13:00", "18:00")], …}``; a missing day is closed.
    weekly: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    holidays: tuple[Holiday, ...] = ()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)  # fail early on an unknown zone
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        for day, intervals in self.weekly.items():
            if day not in DAYS:
                raise ValueError(f"unknown weekday {day!r}")
            for start, end in intervals:
                if _parse_time(start) >= _parse_time(end):
                    raise ValueError(f"{day}: interval {start}-{end} ends before it starts")

    @classmethod
    def from_document(cls, doc: dict) -> BusinessCalendar:
        """Build from the API's JSON shape."""
        weekly = {day: [tuple(pair) for pair in doc.get("weekly", {}).get(day, [])] for day in DAYS}
        holidays = tuple(
            Holiday(date.fromisoformat(h["date"]), bool(h.get("yearly", False))) for h in doc.get("holidays", [])
        )
        return cls(timezone=doc.get("timezone", "UTC"), weekly={d: w for d, w in weekly.items() if w}, holidays=holidays)

    def is_holiday(self, day: date) -> bool:
        """Whether the whole local date is closed."""
        return any(h.matches(day) for h in self.holidays)

    def _day_windows(self, day: date) -> list[tuple[datetime, datetime]]:
        if self.is_holiday(day):
            return []
        zone = ZoneInfo(self.timezone)
        windows = []
        for start, end in self.weekly.get(DAYS[day.weekday()], []):
            local_start = datetime.combine(day, _parse_time(start), zone)
            end_time = _parse_time(end)
            local_end = (
                datetime.combine(day + timedelta(days=1), time.min, zone)
                if end_time == time.max
                else datetime.combine(day, end_time, zone)
            )
            utc_start, utc_end = local_start.astimezone(UTC), local_end.astimezone(UTC)
            if utc_end > utc_start:
                windows.append((utc_start, utc_end))
        return windows

    def windows(self, after: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (UTC) that end after ``after``, in order, clipped to start there."""
        day = after.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=1)
        for _ in range(MAX_SEARCH_DAYS):
            for start, end in self._day_windows(day):
                if end > after:
                    yield max(start, after), end
            day += timedelta(days=1)

    def add(self, start: datetime, seconds: float) -> datetime:
        remaining = timedelta(seconds=seconds)
        if remaining <= timedelta(0):
            for window_start, _ in self.windows(start):
                return window_start
            raise ValueError("the calendar is never open")
        for window_start, window_end in self.windows(start):
            span = window_end - window_start
            if remaining <= span:
                return window_start + remaining
            remaining -= span
        raise ValueError("the calendar is never open")

    def between(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        total = 0.0
        for window_start, window_end in self.windows(start):
            if window_start >= end:
                break
            total += (min(window_end, end) - window_start).total_seconds()
        return total


def daily_cycle_due(received: datetime, *, timezone: str, cutoff: time, due: time,
                    holidays: tuple[Holiday, ...] = ()) -> datetime:
    """Lazada's same-day cycle: a message received before ``cutoff`` (18:00) is due at
    ``due`` (19:00) that day, a later one at ``due`` the next day; holidays move the due
    time to the next working day."""
    zone = ZoneInfo(timezone)
    local = received.astimezone(zone)
    day = local.date() if local.time() < cutoff else local.date() + timedelta(days=1)
    while any(h.matches(day) for h in holidays):
        day += timedelta(days=1)
    return datetime.combine(day, due, zone).astimezone(UTC)
