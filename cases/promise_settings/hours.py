"""Calendars as admins type them: weekly hours in their text form ("09:00-12:30, 13:30-17:30"
per weekday, parsed and printed), closed dates, time zones and holiday countries checked,
and a calendar's upcoming closed days.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

import holidays as holidays_lib

from ..models import BusinessCalendar
from .rules import WEEKDAYS

# --- Weekly hours, closed days, time zones, holiday countries -------------------------------------

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})$")


def _minutes(hours: str, minutes: str) -> int | None:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        return None
    return h * 60 + m


def _hhmm(total: int) -> str:
    return f"{total // 60:02d}:{total % 60:02d}"


def parse_day_hours(text: str) -> list[list[str]]:
    """One day's open hours from "09:00-12:30, 13:30-17:30" as ``[["09:00", "12:30"], ...]``.

    Empty is closed. A span whose end is earlier than its start runs past midnight
    ("22:00-06:00"), as ``cases.sla`` reads it; "24:00" ends the day. Raises ValueError
    with a message for people.
    """
    spans: list[tuple[int, int]] = []
    for part in (p.strip() for p in re.split(r"[,;]", text or "")):
        if not part:
            continue
        match = _SPAN.match(part)
        if match is None:
            raise ValueError(f"“{part}” is not a span like 09:00-17:30.")
        start, end = _minutes(*match.group(1, 2)), _minutes(*match.group(3, 4))
        if start is None or end is None:
            raise ValueError(f"“{part}”: times run from 00:00 to 24:00.")
        if start == 24 * 60:
            raise ValueError(f"“{part}”: a span cannot start at 24:00 (write 00:00 on the next day).")
        if start == end:
            raise ValueError(f"“{part}” starts and ends at the same time.")
        spans.append((start, end if end > start else end + 24 * 60))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ValueError(f"Spans overlap around {_hhmm(start % (24 * 60))}: make them one span.")
    return [[_hhmm(start), _hhmm(end if end <= 24 * 60 else end - 24 * 60)] for start, end in spans]


def format_day_hours(spans: Iterable[Iterable[str]]) -> str:
    return ", ".join(f"{start}-{end}" for start, end in spans or [])


def check_weekly_hours(value: Any) -> dict[str, list[list[str]]]:
    """Stored weekly hours checked and normalised (the services' guard; the forms parse text)."""
    if not isinstance(value, dict):
        raise ValueError("Weekly hours map ISO weekdays (1 is Monday) to lists of spans.")
    checked = {}
    for day, spans in value.items():
        if str(day) not in WEEKDAYS:
            raise ValueError(f"“{day}” is not an ISO weekday (1 is Monday, 7 is Sunday).")
        if not isinstance(spans, list) or not all(
            isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(t, str) for t in span)
            for span in spans
        ):
            raise ValueError(f"{WEEKDAYS[str(day)]}: write spans as pairs of times.")
        parsed = parse_day_hours(format_day_hours(spans))
        if parsed:
            checked[str(day)] = parsed
    return dict(sorted(checked.items()))


def parse_closed_dates(text: str) -> list[str]:
    """Dates written as YYYY-MM-DD, separated by commas, spaces or lines; sorted, each once."""
    days, bad = set(), []
    for item in re.split(r"[\s,;]+", text or ""):
        if not item:
            continue
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", item):
                raise ValueError
            days.add(date.fromisoformat(item))
        except ValueError:
            bad.append(item)
    if bad:
        raise ValueError(f"Not dates written as YYYY-MM-DD: {', '.join(bad)}.")
    return [day.isoformat() for day in sorted(days)]


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def check_time_zone(value: str) -> str:
    value = (value or "").strip()
    if value not in time_zones():
        raise ValueError(f"“{value}” is not an IANA time zone such as Europe/London or America/New_York.")
    return value


@lru_cache(maxsize=1)
def _holiday_countries() -> dict[str, dict[str, str]]:
    """Country code -> {upper-cased subdivision: its spelling in the holidays package}."""
    return {
        code.upper(): {subdiv.upper(): subdiv for subdiv in subdivisions}
        for code, subdivisions in holidays_lib.list_supported_countries().items()
    }


def check_holiday_country(value: str) -> str:
    """A country code the ``holidays`` package knows ("GB"), optionally with a subdivision ("US-NY")."""
    value = (value or "").strip()
    if not value:
        return ""
    code, _, subdiv = value.partition("-")
    subdivisions = _holiday_countries().get(code.upper())
    if subdivisions is None:
        raise ValueError(f"“{code}” is not a country code the holidays calendar knows (e.g. GB, US, DE).")
    if not subdiv:
        return code.upper()
    if subdiv.upper() not in subdivisions:
        known = ", ".join(sorted(subdivisions.values())[:12]) or "none"
        more = "…" if len(subdivisions) > 12 else ""
        raise ValueError(f"“{subdiv}” is not a subdivision of {code.upper()} (known: {known}{more}).")
    return f"{code.upper()}-{subdivisions[subdiv.upper()]}"


def upcoming_closed_days(
    calendar: BusinessCalendar, *, start: date, count: int = 6
) -> list[tuple[date, str]]:
    """The next public holidays and extra closed days of ``calendar`` from ``start``, with names."""
    found: dict[date, str] = {}
    for item in calendar.extra_closed_dates or []:
        day = date.fromisoformat(item)
        if day >= start:
            found[day] = "Closed (extra day)"
    if calendar.holiday_country:
        code, _, subdiv = calendar.holiday_country.partition("-")
        try:
            country = holidays_lib.country_holidays(
                code, subdiv=subdiv or None, years=[start.year, start.year + 1]
            )
        except NotImplementedError:  # a code saved before it was checked here: list no holidays
            country = {}
        for day, name in country.items():
            if day >= start:
                found.setdefault(day, name)
    return sorted(found.items())[:count]
