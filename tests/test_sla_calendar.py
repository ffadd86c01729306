"""Business-time arithmetic across weekends, holidays, midnight and DST, in several zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.sla.calendar import CALENDAR, BusinessCalendar, Holiday, daily_cycle_due
from app.sla.rules import MARKETPLACE_RULES

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def office(zone: str, hours=(("09:00", "17:00"),), days=WEEKDAYS, holidays=()) -> BusinessCalendar:
    return BusinessCalendar(zone, {d: list(hours) for d in days}, tuple(holidays))


def local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_a_weekend_is_skipped():
    cal = office("America/New_York")
    friday_4pm = local("America/New_York", 2026, 11, 6, 16, 0)
    assert cal.add(friday_4pm, 2 * 3600) == local("America/New_York", 2026, 11, 9, 10, 0)
    assert cal.between(friday_4pm, local("America/New_York", 2026, 11, 9, 10, 0)) == 7200


def test_a_holiday_and_a_long_weekend_are_skipped():
    cal = office("Europe/Berlin", holidays=[Holiday(date(2026, 12, 25), yearly=True), Holiday(date(2026, 12, 28))])
    thursday_4pm = local("Europe/Berlin", 2026, 12, 24, 16, 0)
    # Thu 16-17 (1h), Fri 25th holiday, weekend, Mon 28th one-off holiday, Tue 29th 09:00 + 1h.
    assert cal.add(thursday_4pm, 2 * 3600) == local("Europe/Berlin", 2026, 12, 29, 10, 0)
    next_year = local("Europe/Berlin", 2027, 12, 24, 16, 0)  # the yearly holiday recurs
    assert cal.add(next_year, 2 * 3600) == local("Europe/Berlin", 2027, 12, 27, 10, 0)


@pytest.mark.parametrize("zone,friday,monday", [
    ("America/New_York", (2026, 3, 6), (2026, 3, 9)),   # spring forward on Sun 8 March
    ("Europe/Berlin", (2026, 3, 27), (2026, 3, 30)),    # spring forward on Sun 29 March
    ("America/New_York", (2026, 10, 30), (2026, 11, 2)),  # fall back on Sun 1 November
    ("Europe/Berlin", (2026, 10, 23), (2026, 10, 26)),  # fall back on Sun 25 October
])
def test_dst_changes_keep_local_opening_hours(zone, friday, monday):
    cal = office(zone)
    start = local(zone, *friday, 16, 0)
    due = cal.add(start, 3 * 3600)
    assert due == local(zone, *monday, 11, 0)
    assert due.astimezone(ZoneInfo(zone)).hour == 11
    assert cal.between(start, due) == 3 * 3600


def test_calendar_clock_counts_the_real_23_hour_day():
    zone = "America/New_York"
    saturday_noon = local(zone, 2026, 3, 7, 12, 0)
    due = CALENDAR.add(saturday_noon, 24 * 3600)
    assert due - saturday_noon == timedelta(hours=24)
    assert due.astimezone(ZoneInfo(zone)).hour == 13  # not 12: the night lost an hour


def test_an_around_the_clock_window_through_the_dst_night():
    zone = "Europe/Berlin"
    cal = BusinessCalendar(zone, {d: [("00:00", "24:00")] for d in ("sat", "sun")})
    assert cal.between(local(zone, 2026, 3, 28, 0, 0), local(zone, 2026, 3, 30, 0, 0)) == 47 * 3600
    assert cal.between(local(zone, 2026, 10, 24, 0, 0), local(zone, 2026, 10, 26, 0, 0)) == 49 * 3600


def test_bangkok_split_shifts():
    cal = office("Asia/Bangkok", hours=(("09:00", "12:00"), ("13:00", "18:00")))
    eleven = local("Asia/Bangkok", 2026, 11, 23, 11, 0)
    assert cal.add(eleven, 2 * 3600) == local("Asia/Bangkok", 2026, 11, 23, 14, 0)  # lunch skipped
    assert cal.between(eleven, local("Asia/Bangkok", 2026, 11, 23, 18, 30)) == 6 * 3600


def test_tehran_week_runs_saturday_to_wednesday():
    cal = office("Asia/Tehran", hours=(("08:00", "16:00"),), days=("sat", "sun", "mon", "tue", "wed"))
    wednesday_3pm = local("Asia/Tehran", 2026, 11, 25, 15, 0)
    assert cal.add(wednesday_3pm, 2 * 3600) == local("Asia/Tehran", 2026, 11, 28, 9, 0)  # Thu, Fri closed
    assert wednesday_3pm.astimezone(ZoneInfo("Asia/Tehran")).utcoffset() == timedelta(hours=3, minutes=30)


def test_starting_outside_hours_counts_from_the_next_opening():
    cal = office("UTC")
    sunday = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    assert cal.add(sunday, 60) == datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    assert cal.between(sunday, datetime(2026, 11, 23, 9, 0, tzinfo=UTC)) == 0


def test_bad_calendars_are_refused():
    with pytest.raises(ValueError):
        BusinessCalendar("Mars/Olympus", {"mon": [("09:00", "17:00")]})
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", {"mon": [("17:00", "09:00")]})


def test_lazada_same_day_cycle():
    zone = "Asia/Manila"
    assert daily_cycle_due(local(zone, 2026, 11, 23, 17, 59), timezone=zone, cutoff=__import__("datetime").time(18),
                           due=__import__("datetime").time(19)) == local(zone, 2026, 11, 23, 19, 0)
    rule = MARKETPLACE_RULES["lazada"]
    assert rule.due(local(zone, 2026, 11, 23, 18, 30), timezone=zone, holidays=()) == local(zone, 2026, 11, 24, 19, 0)
    holiday = (Holiday(date(2026, 11, 24)),)
    assert rule.due(local(zone, 2026, 11, 23, 18, 30), timezone=zone, holidays=holiday) == local(zone, 2026, 11, 25, 19, 0)


def test_mercado_libre_does_not_count_21_to_8():
    zone = "America/Argentina/Buenos_Aires"
    rule = MARKETPLACE_RULES["mercado_libre"]
    assert rule.due(local(zone, 2026, 11, 23, 20, 0), timezone=zone, holidays=()) == local(zone, 2026, 11, 24, 15, 0)


def test_ebay_requests_get_three_business_days():
    rule = MARKETPLACE_RULES["ebay"]
    friday_noon = local("Europe/London", 2026, 11, 20, 12, 0)
    assert rule.due(friday_noon, timezone="Europe/London", holidays=()) == local("Europe/London", 2026, 11, 25, 12, 0)


def test_amazon_counts_weekends_and_holidays():
    rule = MARKETPLACE_RULES["amazon"]
    saturday = datetime(2026, 12, 26, 10, 0, tzinfo=UTC)
    assert rule.due(saturday, timezone="UTC", holidays=(Holiday(date(2026, 12, 26)),)) == saturday + timedelta(hours=24)
