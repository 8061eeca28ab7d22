"""Working time on a business calendar: when a number of working minutes from a moment ends.

A calendar's weekly hours in its time zone, less its closed dates and the public
holidays of its country (``is_closed_day``); ``add_working_minutes`` and
``working_time_between`` count on its open intervals, or on the wall clock when there is
no calendar (24/7).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from ..models import BusinessCalendar

# How far ahead a deadline is searched before a calendar is judged to have no open hours.
MAX_SEARCH_DAYS = 400


# --- Business calendars -------------------------------------------------------------------


@lru_cache(maxsize=256)
def _public_holidays(country: str, year: int) -> frozenset[date]:
    code, _, subdiv = country.partition("-")
    return frozenset(holidays_lib.country_holidays(code, subdiv=subdiv or None, years=year).keys())


def _parse_hhmm(value: str) -> tuple[int, int]:
    hours, minutes = value.split(":")
    hours, minutes = int(hours), int(minutes)
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"{value!r} is not a time of day (HH:MM, 00:00 to 24:00).")
    return hours, minutes


def _local(day: date, value: str, tz: ZoneInfo) -> datetime:
    hours, minutes = _parse_hhmm(value)
    if hours == 24:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return datetime.combine(day, time(hours, minutes), tzinfo=tz)


def is_closed_day(calendar: BusinessCalendar, day: date) -> bool:
    """A public holiday of the calendar's country or a date the admin closed."""
    if day.isoformat() in (calendar.extra_closed_dates or []):
        return True
    return bool(calendar.holiday_country) and day in _public_holidays(calendar.holiday_country, day.year)


def _day_spans(calendar: BusinessCalendar, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The open spans that start on ``day`` (local), in UTC.

    A span whose end is not after its start runs past midnight ("22:00"-"06:00"), and
    "24:00" is the end of the day. Wall-clock times are turned into instants before any
    arithmetic, so a span across a DST change is as long as it really is.
    """
    if is_closed_day(calendar, day):
        return []
    spans = []
    for start, end in (calendar.weekly_hours or {}).get(str(day.isoweekday()), []):
        begin = _local(day, start, tz)
        finish = _local(day, end, tz)
        if finish.replace(tzinfo=None) <= begin.replace(tzinfo=None):
            finish = _local(day + timedelta(days=1), end, tz)
        begin, finish = begin.astimezone(UTC), finish.astimezone(UTC)
        if finish > begin:
            spans.append((begin, finish))
    return sorted(spans)


def _open_intervals(calendar: BusinessCalendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's open intervals (UTC, merged, in order) that end after ``start``.

    Stops after :data:`MAX_SEARCH_DAYS` days.
    """
    tz = ZoneInfo(calendar.time_zone)
    day = start.astimezone(tz).date() - timedelta(days=1)  # yesterday's night shift may still run
    pending: tuple[datetime, datetime] | None = None
    for _ in range(MAX_SEARCH_DAYS + 1):
        for begin, finish in _day_spans(calendar, day, tz):
            if pending and begin <= pending[1]:
                pending = (pending[0], max(pending[1], finish))
                continue
            if pending and pending[1] > start:
                yield pending
            pending = (begin, finish)
        day += timedelta(days=1)
    if pending and pending[1] > start:
        yield pending


def add_working_minutes(start: datetime, minutes: float, calendar: BusinessCalendar | None) -> datetime:
    """The moment ``minutes`` of working time after ``start`` on ``calendar`` (None: 24/7).

    Zero minutes at a closed moment is the next opening.
    """
    if calendar is None or calendar.always_open:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    for begin, finish in _open_intervals(calendar, start):
        begin = max(begin, start)
        if remaining <= finish - begin:
            return begin + remaining
        remaining -= finish - begin
    raise ValueError(f"Calendar {calendar.name!r} has no open hours in the next {MAX_SEARCH_DAYS} days.")


def working_time_between(start: datetime, end: datetime, calendar: BusinessCalendar | None) -> timedelta:
    """Working time from ``start`` to ``end`` on ``calendar`` (zero when ``end`` is not later)."""
    if end <= start:
        return timedelta(0)
    if calendar is None or calendar.always_open:
        return end - start
    total = timedelta(0)
    for begin, finish in _open_intervals(calendar, start):
        if begin >= end:
            break
        total += min(finish, end) - max(begin, start)
    return total
