"""Service clocks: when an answer or a resolution is due, on a channel's business calendar.

Functions here compute; they do not save. The services call them inside their
transactions and save the case with the rest of the change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from .models import BusinessCalendar, Case, ServicePromise

# How far ahead a deadline is searched before a calendar is judged to have no open hours.
MAX_SEARCH_DAYS = 400

CLOCK_FIELDS = ("first_response_due_at", "next_response_due_at", "resolution_due_at")
TARGET_FIELDS = {
    "first_response_due_at": "first_response_minutes",
    "next_response_due_at": "next_response_minutes",
    "resolution_due_at": "resolution_minutes",
}


@lru_cache(maxsize=256)
def _public_holidays(country: str, year: int) -> frozenset[date]:
    code, _, subdiv = country.partition("-")
    return frozenset(holidays_lib.country_holidays(code, subdiv=subdiv or None, years=year).keys())


def _parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def is_closed_day(calendar: BusinessCalendar, day: date) -> bool:
    if day.isoformat() in (calendar.extra_closed_dates or []):
        return True
    return bool(calendar.holiday_country) and day in _public_holidays(calendar.holiday_country, day.year)


def _open_spans(calendar: BusinessCalendar, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    if is_closed_day(calendar, day):
        return []
    spans = []
    for start, end in (calendar.weekly_hours or {}).get(str(day.isoweekday()), []):
        begin = datetime.combine(day, _parse_hhmm(start), tzinfo=tz)
        finish = (
            datetime.combine(day, _parse_hhmm(end), tzinfo=tz)
            if end != "24:00"
            else (datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz))
        )
        if finish > begin:
            spans.append((begin, finish))
    return sorted(spans)


def add_working_minutes(start: datetime, minutes: float, calendar: BusinessCalendar | None) -> datetime:
    """The moment ``minutes`` of working time after ``start`` on ``calendar`` (None: 24/7)."""
    if calendar is None or calendar.always_open:
        return start + timedelta(minutes=minutes)
    tz = ZoneInfo(calendar.time_zone)
    local = start.astimezone(tz)
    remaining = timedelta(minutes=minutes)
    day = local.date()
    for _ in range(MAX_SEARCH_DAYS):
        for begin, finish in _open_spans(calendar, day, tz):
            if finish <= local:
                continue
            begin = max(begin, local)
            available = finish - begin
            if remaining <= available:
                return (begin + remaining).astimezone(UTC)
            remaining -= available
        day += timedelta(days=1)
    raise ValueError(f"Calendar {calendar.name!r} has no open hours in the next {MAX_SEARCH_DAYS} days.")


def target_minutes(promise: ServicePromise, field: str, priority: str) -> int:
    """A promise's target for one clock, tightened by a per-priority override if set."""
    name = TARGET_FIELDS[field]
    override = (promise.priority_overrides or {}).get(priority, {})
    return int(override.get(name, getattr(promise, name)))


def _due(promise: ServicePromise, field: str, start: datetime, priority: str) -> datetime:
    return add_working_minutes(start, target_minutes(promise, field, priority), promise.calendar)


def promise_for(channel) -> ServicePromise | None:
    if channel is None:
        return None
    try:
        return channel.promise
    except ServicePromise.DoesNotExist:
        return None


def on_inbound(case: Case, *, channel, at: datetime) -> None:
    """A customer wrote on ``channel``: start the clocks we now owe."""
    promise = promise_for(channel)
    if promise is None or case.status == Case.Status.MONITORING:
        return
    if case.first_responded_at is None:
        if case.first_response_due_at is None:
            case.first_response_due_at = _due(promise, "first_response_due_at", at, case.priority)
    elif case.next_response_due_at is None:
        # The promise of the channel this follow-up came in on applies from now on.
        case.next_response_due_at = _due(promise, "next_response_due_at", at, case.priority)
    if case.resolution_due_at is None:
        case.resolution_due_at = _due(promise, "resolution_due_at", at, case.priority)
    refresh(case, promise=promise)


def on_reply(case: Case, *, at: datetime) -> None:
    """We answered the customer (publicly or privately): the response clocks stop."""
    if case.first_responded_at is None:
        case.first_responded_at = at
    case.first_response_due_at = None
    case.next_response_due_at = None
    refresh(case, promise=promise_for(case.last_channel or case.origin_channel))


def on_status_change(case: Case, *, previous: str, at: datetime) -> None:
    """The case's status changed from ``previous`` to ``case.status``: stop or restart clocks."""
    if case.status in (Case.Status.RESOLVED, Case.Status.CLOSED):
        for field in CLOCK_FIELDS:
            setattr(case, field, None)
        refresh(case, promise=None, now=at)
        return
    refresh(case, promise=promise_for(case.last_channel or case.origin_channel), now=at)


def refresh(case: Case, *, promise: ServicePromise | None, now: datetime | None = None) -> None:
    """Recompute ``due_at``, ``at_risk_at`` and ``sla_state`` from the running clocks."""
    running = [(getattr(case, f), f) for f in CLOCK_FIELDS if getattr(case, f) is not None]
    if case.status in (Case.Status.MONITORING, Case.Status.RESOLVED, Case.Status.CLOSED) or not running:
        case.due_at = case.at_risk_at = None
        case.sla_state = Case.SlaState.NONE
        return
    due, field = min(running)
    case.due_at = due
    ratio = Decimal(promise.at_risk_ratio) if promise else Decimal("0.75")
    target = timedelta(minutes=target_minutes(promise, field, case.priority)) if promise else timedelta(0)
    case.at_risk_at = due - target * float(1 - ratio)
    now = now or datetime.now(UTC)
    if case.sla_state in (Case.SlaState.BREACHED,) and due <= now:
        return
    if due <= now:
        case.sla_state = Case.SlaState.BREACHED
    elif case.at_risk_at <= now:
        case.sla_state = Case.SlaState.AT_RISK
    else:
        case.sla_state = Case.SlaState.OK
