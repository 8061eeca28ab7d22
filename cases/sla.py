"""Service clocks: when an answer or a resolution is due, on a channel's business calendar.

The clock rules
---------------
- **First response** is due from the first customer message, on the promise (and
  calendar) of the channel it came in on. Later messages never move it.
- **Next response**: once we have answered, a customer follow-up starts the
  next-response clock from that message, on the promise of the channel it came in on.
  Another follow-up while that clock runs re-bases it on the newest message's channel,
  still counted from the oldest unanswered message: when a conversation moves from X
  to e-mail the e-mail promise applies from then on, but the customer's wait is not
  reset.
- An outbound reply, public or private (a logged outbound call too), stops the response
  clock. An internal note does not.
- **Resolution** is due from the first customer message, on the promise of the channel
  the case began on. Waiting on the customer, monitoring, resolved and closed pause it:
  the working time left is stored, and reopening resumes it from there. Monitoring and
  waiting on the customer also stop the response clock (we owe no answer); a customer
  message after that starts one again.
- Transfers and escalations do not touch these clocks: they are the customer's.
  The time a case has spent in its current department is reported separately
  (:func:`department_clock`).
- A per-priority override on the promise tightens targets; a priority change applies
  it to the running response clock only where that makes it earlier
  (:func:`on_priority_change`): a promise made is never postponed.

The hooks (``on_inbound``, ``on_reply``, ``on_status_change``, ``on_priority_change``)
compute and do not save: the services call them inside their transactions and save the
case with the rest of the change. State *worsening* (ok -> at risk -> breached) is left
to :func:`sla_sweep`, which writes a CaseEvent for every such change; the hooks only
keep a state that still holds or clear one that no longer does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from time import perf_counter
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from django.db import transaction
from django.db.models import DateTimeField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors import webhooks_out

from .models import BusinessCalendar, Case, CaseEvent, Message, ServicePromise

logger = logging.getLogger(__name__)

# How far ahead a deadline is searched before a calendar is judged to have no open hours.
MAX_SEARCH_DAYS = 400

CLOCK_FIELDS = ("first_response_due_at", "next_response_due_at", "resolution_due_at")
TARGET_FIELDS = {
    "first_response_due_at": "first_response_minutes",
    "next_response_due_at": "next_response_minutes",
    "resolution_due_at": "resolution_minutes",
}
CLOCK_NAMES = {
    "first_response_due_at": "first_response",
    "next_response_due_at": "next_response",
    "resolution_due_at": "resolution",
}
DEFAULT_AT_RISK_RATIO = Decimal("0.75")

# Statuses whose clocks run; the sweep indexes are partial on exactly these.
RUNNING_STATUSES = (Case.Status.NEW, Case.Status.OPEN)
# Statuses that pause the resolution clock and stop the response clock.
PAUSED_STATUSES = (
    Case.Status.WAITING_ON_CUSTOMER,
    Case.Status.MONITORING,
    Case.Status.RESOLVED,
    Case.Status.CLOSED,
)
# Cases swept per UPDATE statement.
SWEEP_BATCH = 5000
# Cases listed per live event, so one message stays small on the channel layer.
LIVE_EVENT_CASES = 200
# Kinds of event that move a case to another department.
DEPARTMENT_MOVES = (CaseEvent.Kind.TRANSFERRED, CaseEvent.Kind.ESCALATED, CaseEvent.Kind.HANDED_BACK)


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


# --- Promises and targets -----------------------------------------------------------------


def promise_for(channel) -> ServicePromise | None:
    if channel is None:
        return None
    try:
        return channel.promise
    except ServicePromise.DoesNotExist:
        return None


def target_minutes(promise: ServicePromise, field: str, priority: str) -> int:
    """A promise's target for one clock, tightened by a per-priority override if set."""
    name = TARGET_FIELDS[field]
    override = (promise.priority_overrides or {}).get(priority, {})
    return int(override.get(name, getattr(promise, name)))


def _ratio(promise: ServicePromise | None) -> Decimal:
    return Decimal(promise.at_risk_ratio) if promise else DEFAULT_AT_RISK_RATIO


def _clock(promise: ServicePromise, field: str, start: datetime, priority: str) -> tuple[datetime, datetime]:
    """(due, at risk) of a clock of ``promise`` started at ``start``."""
    target = target_minutes(promise, field, priority)
    due = add_working_minutes(start, target, promise.calendar)
    risk = add_working_minutes(start, float(target * _ratio(promise)), promise.calendar)
    return due, risk


def _resolution_promise(case: Case, channel=None) -> ServicePromise | None:
    return promise_for(case.origin_channel) or promise_for(channel or case.last_channel)


def _response_running(case: Case) -> bool:
    return case.first_response_due_at is not None or case.next_response_due_at is not None


def _oldest_unanswered_at(case: Case, default: datetime) -> datetime:
    """When the customer began waiting for the answer we owe now."""
    messages = Message.objects.filter(case=case, direction=Message.Direction.IN)
    if case.last_outbound_at:
        messages = messages.filter(sent_at__gt=case.last_outbound_at)
    oldest = messages.order_by("sent_at").values_list("sent_at", flat=True).first()
    return min(oldest, default) if oldest else default


def _stop_response(case: Case) -> None:
    case.first_response_due_at = case.next_response_due_at = case.response_risk_at = None


def _pause_resolution(case: Case, at: datetime) -> None:
    if case.resolution_due_at is None:
        return
    promise = _resolution_promise(case)
    left = working_time_between(at, case.resolution_due_at, promise.calendar if promise else None)
    case.resolution_remaining_seconds = int(left.total_seconds())
    case.resolution_due_at = case.resolution_risk_at = None


def _resume_resolution(case: Case, at: datetime, channel=None) -> None:
    if case.resolution_remaining_seconds is None:
        return
    promise = _resolution_promise(case, channel)
    calendar = promise.calendar if promise else None
    left = case.resolution_remaining_seconds / 60
    case.resolution_due_at = add_working_minutes(at, left, calendar)
    if promise:
        lead = target_minutes(promise, "resolution_due_at", case.priority) * float(1 - _ratio(promise))
        case.resolution_risk_at = add_working_minutes(at, max(left - lead, 0), calendar)
    else:
        case.resolution_risk_at = case.resolution_due_at
    case.resolution_remaining_seconds = None


def _start_resolution(case: Case, at: datetime, channel=None) -> None:
    if case.resolution_due_at is not None or case.resolution_remaining_seconds is not None:
        return
    promise = _resolution_promise(case, channel)
    if promise is not None:
        case.resolution_due_at, case.resolution_risk_at = _clock(
            promise, "resolution_due_at", at, case.priority
        )


# --- Hooks the services call ----------------------------------------------------------------


def on_inbound(case: Case, *, channel, at: datetime) -> None:
    """A customer wrote on ``channel`` at ``at``: start (or re-base) the clocks we now owe."""
    if case.status in PAUSED_STATUSES:
        refresh(case)
        return
    _resume_resolution(case, at, channel)
    promise = promise_for(channel)
    if promise is not None:
        if case.first_responded_at is None:
            if case.first_response_due_at is None:
                case.first_response_due_at, case.response_risk_at = _clock(
                    promise, "first_response_due_at", at, case.priority
                )
        else:
            # Counted from the oldest unanswered message, on the promise of this one.
            start = _oldest_unanswered_at(case, at) if case.next_response_due_at else at
            case.next_response_due_at, case.response_risk_at = _clock(
                promise, "next_response_due_at", start, case.priority
            )
    _start_resolution(case, at, channel)
    refresh(case)


def on_reply(case: Case, *, at: datetime) -> None:
    """We answered the customer (publicly or privately): the response clock stops."""
    if case.first_responded_at is None:
        case.first_responded_at = at
    _stop_response(case)
    refresh(case)


def on_status_change(case: Case, *, previous: str, at: datetime) -> None:
    """The case's status changed from ``previous`` to ``case.status``: pause, stop or resume clocks."""
    if case.status in PAUSED_STATUSES:
        _stop_response(case)
        _pause_resolution(case, at)
    elif previous in PAUSED_STATUSES:
        # Reopened: owe an answer again if the customer's last word is unanswered, and
        # resume the resolution clock where it stopped.
        promise = promise_for(case.last_channel or case.origin_channel)
        owed = case.last_inbound_at is not None and (
            case.last_outbound_at is None or case.last_inbound_at > case.last_outbound_at
        )
        if owed and promise is not None and not _response_running(case):
            clock = "first_response_due_at" if case.first_responded_at is None else "next_response_due_at"
            due, case.response_risk_at = _clock(promise, clock, at, case.priority)
            setattr(case, clock, due)
        _resume_resolution(case, at)
        if case.first_inbound_at is not None:
            _start_resolution(case, at)
    refresh(case, now=at)


def on_priority_change(case: Case, *, previous: str, at: datetime) -> None:
    """The priority changed: a tighter per-priority target pulls the running response clock in.

    The clock keeps its start (the first message, or the oldest unanswered follow-up)
    and is never pushed later.
    """
    if case.first_response_due_at is not None:
        field, channel, start = "first_response_due_at", case.origin_channel, case.first_inbound_at
    elif case.next_response_due_at is not None:
        field, channel = "next_response_due_at", case.last_channel
        start = _oldest_unanswered_at(case, case.last_inbound_at or at)
    else:
        refresh(case, now=at)
        return
    promise = promise_for(channel) or promise_for(case.last_channel)
    if promise is not None and start is not None:
        due, risk = _clock(promise, field, start, case.priority)
        if due < getattr(case, field):
            setattr(case, field, due)
            case.response_risk_at = risk
    refresh(case, now=at)


def refresh(case: Case, *, promise: ServicePromise | None = None, now: datetime | None = None) -> None:
    """Recompute ``due_at``, ``at_risk_at`` and ``sla_state`` from the running clocks.

    ``promise`` is accepted for older callers and unused: each clock's at-risk moment is
    fixed when it starts. A state the sweep set is kept while it still holds and cleared
    when it no longer does; a new at-risk or breach is the sweep's to record.
    """
    now = now or timezone.now()
    running = [
        (due, risk or due)
        for due, risk in (
            (case.first_response_due_at, case.response_risk_at),
            (case.next_response_due_at, case.response_risk_at),
            (case.resolution_due_at, case.resolution_risk_at),
        )
        if due is not None
    ]
    if case.status not in RUNNING_STATUSES or not running:
        case.due_at = case.at_risk_at = None
        paused = (
            case.status == Case.Status.WAITING_ON_CUSTOMER and case.resolution_remaining_seconds is not None
        )
        case.sla_state = Case.SlaState.PAUSED if paused else Case.SlaState.NONE
        case.breach_step = Case.BreachStep.NONE
        return
    case.due_at = min(due for due, _ in running)
    case.at_risk_at = min(min(risk for _, risk in running), case.due_at)
    if case.sla_state == Case.SlaState.BREACHED and case.due_at <= now:
        return
    if case.sla_state in (Case.SlaState.AT_RISK, Case.SlaState.BREACHED) and case.at_risk_at <= now:
        case.sla_state = Case.SlaState.AT_RISK
    else:
        case.sla_state = Case.SlaState.OK
    case.breach_step = Case.BreachStep.NONE


def clock_of(case: Case) -> str | None:
    """The name of the clock that sets ``due_at`` (first_response, next_response, resolution)."""
    for name in CLOCK_FIELDS:
        if case.due_at is not None and getattr(case, name) == case.due_at:
            return CLOCK_NAMES[name]
    return None


# --- Time in department ---------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentClock:
    """How long a case has been with its current department (an internal figure, not a promise)."""

    department_id: int
    since: datetime
    elapsed: timedelta
    # The same counted on the calendar of the case's channel promise (wall time when 24/7).
    working: timedelta


def department_since() -> Coalesce:
    """The last move of the outer case into its current department, else its creation."""
    last_move = (
        CaseEvent.objects.filter(case=OuterRef("pk"), kind__in=DEPARTMENT_MOVES)
        .order_by("-created_at", "-id")
        .values("created_at")[:1]
    )
    return Coalesce(Subquery(last_move, output_field=DateTimeField()), "created_at")


def department_entered_at(cases: QuerySet[Case]) -> QuerySet[Case]:
    """Annotate ``department_since`` (:func:`department_since`)."""
    return cases.annotate(department_since=department_since())


def department_clock(case: Case, *, now: datetime | None = None) -> DepartmentClock:
    """The time ``case`` has spent in its current department since it last arrived there."""
    now = now or timezone.now()
    since = (
        CaseEvent.objects.filter(case=case, kind__in=DEPARTMENT_MOVES)
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    ) or case.created_at
    promise = promise_for(case.last_channel or case.origin_channel)
    return DepartmentClock(
        department_id=case.department_id,
        since=since,
        elapsed=now - since,
        working=working_time_between(since, now, promise.calendar if promise else None),
    )


# --- The sweep ----------------------------------------------------------------------------


@dataclass
class SweepResult:
    at_risk: int = 0
    breached: int = 0
    ladder: dict[str, int] = field(default_factory=dict)
    # Cases that passed their department's handling target (cases.department_clock).
    department_over_target: int = 0
    # Wall time of the marking (both UPDATEs with their events) and of the breach ladder.
    mark_seconds: float = 0.0
    ladder_seconds: float = 0.0


SWEEP_COLUMNS = (
    "id",
    "reference",
    "department_id",
    "assignee_id",
    "sla_state",
    "due_at",
    "first_response_due_at",
    "next_response_due_at",
    "resolution_due_at",
)


def _clock_name(row: dict) -> str | None:
    for name in CLOCK_FIELDS:
        if row[name] is not None and row[name] == row["due_at"]:
            return CLOCK_NAMES[name]
    return None


def _webhook_payload(row: dict, state: str) -> dict:
    return {
        "case_id": row["id"],
        "reference": row["reference"],
        "sla_state": state,
        "clock": _clock_name(row),
        "due_at": row["due_at"],
        "department_id": row["department_id"],
        "assignee_id": row["assignee_id"],
    }


def _mark(candidates: QuerySet[Case], *, state: str, now: datetime) -> list[dict]:
    """Set ``state`` on the ``candidates`` not locked by a service right now; return their rows.

    Rows a service holds (an agent replying this instant) are skipped, so the sweep never
    waits on a person; the next sweep sees them again if they still qualify.
    """
    rows = list(candidates.order_by().select_for_update(skip_locked=True).values(*SWEEP_COLUMNS))
    changes: dict = {"sla_state": state, "updated_at": now}
    if state == Case.SlaState.BREACHED:
        changes["breach_step"] = Case.BreachStep.NONE
    for first in range(0, len(rows), SWEEP_BATCH):
        ids = [row["id"] for row in rows[first : first + SWEEP_BATCH]]
        Case.objects.filter(pk__in=ids).update(**changes)
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=row["id"],
                kind=CaseEvent.Kind.SLA,
                before={"sla_state": row["sla_state"]},
                after={"sla_state": state, "clock": _clock_name(row), "due_at": row["due_at"].isoformat()},
            )
            for row in rows
        ],
        batch_size=SWEEP_BATCH,
    )
    return rows


def publish_sla_changes(rows: list[dict], *, state: str, supervisors: bool = False) -> None:
    """One live event per department and per assignee listing their cases whose SLA state changed."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        item = {"case_id": row["id"], "reference": row["reference"], "due_at": row["due_at"].isoformat()}
        by_group[groups.department_group(row["department_id"])].append(item)
        if row["assignee_id"]:
            by_group[groups.user_group(row["assignee_id"])].append(item)
        if supervisors:
            by_group[groups.supervisors_group()].append(item)
    for group, items in by_group.items():
        for first in range(0, len(items), LIVE_EVENT_CASES):
            publish_on_commit(
                event={
                    "type": "sla.changed",
                    "sla_state": state,
                    "cases": items[first : first + LIVE_EVENT_CASES],
                },
                groups=[group],
            )


def at_risk_candidates(now: datetime) -> QuerySet[Case]:
    """Running clocks whose at-risk moment has come and whose due time has not (``case_sla_risk_sweep_idx``)."""
    return Case.objects.filter(
        status__in=RUNNING_STATUSES, sla_state=Case.SlaState.OK, at_risk_at__lte=now, due_at__gt=now
    )


def breach_candidates(now: datetime) -> QuerySet[Case]:
    """Running clocks past their due time, not yet marked breached (``case_sla_breach_sweep_idx``)."""
    return Case.objects.filter(
        status__in=RUNNING_STATUSES, sla_state__in=[Case.SlaState.OK, Case.SlaState.AT_RISK], due_at__lte=now
    )


def sla_sweep(*, now: datetime | None = None) -> SweepResult:
    """Mark cases at risk and breached, record and announce each change, climb breach ladders.

    Guarantees: each case changes state at most once per sweep (a case already past its
    due time goes straight to breached); every change is an ``sla`` CaseEvent written in
    the same transaction as the UPDATE; live events leave after commit. The queries match
    the partial indexes ``case_sla_risk_sweep_idx``, ``case_sla_breach_sweep_idx`` and
    ``case_sla_ladder_idx``. Safe to run concurrently with itself and with services. Then the
    department clocks: cases past their department's handling target are recorded and
    announced once (``cases.department_clock.department_target_sweep``).
    """
    from .department_clock import department_target_sweep  # builds on these clocks
    from .escalation import breach_ladder_run  # escalation builds on the case services

    now = now or timezone.now()
    result = SweepResult()
    started = perf_counter()
    with transaction.atomic():
        rows = _mark(at_risk_candidates(now), state=Case.SlaState.AT_RISK, now=now)
        publish_sla_changes(rows, state=Case.SlaState.AT_RISK)
        webhooks_out.emit_many("sla.at_risk", [_webhook_payload(row, Case.SlaState.AT_RISK) for row in rows])
        result.at_risk = len(rows)
    with transaction.atomic():
        rows = _mark(breach_candidates(now), state=Case.SlaState.BREACHED, now=now)
        publish_sla_changes(rows, state=Case.SlaState.BREACHED, supervisors=True)
        webhooks_out.emit_many(
            "sla.breached", [_webhook_payload(row, Case.SlaState.BREACHED) for row in rows]
        )
        result.breached = len(rows)
    marked = perf_counter()
    result.ladder = breach_ladder_run(now=now)
    result.department_over_target = department_target_sweep(now=now)
    result.mark_seconds, result.ladder_seconds = marked - started, perf_counter() - marked
    if result.at_risk or result.breached or result.department_over_target:
        logger.info(
            "SLA sweep: %s at risk, %s breached, ladder %s, %s past their department's target",
            result.at_risk,
            result.breached,
            result.ladder,
            result.department_over_target,
        )
    return result
