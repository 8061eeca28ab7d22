"""The clock rules: which promise applies, when each clock is due, and how messages and changes move them.

The hooks the services call (``on_inbound``, ``on_reply``, ``on_status_change``,
``on_priority_change``) start, stop, pause and resume the response and resolution clocks
on the promise of the channel the rules name, without saving; ``refresh`` recomputes a
case's due time and at-risk moment, and ``clock_of`` names the clock that is due first.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from ..models import Case, Message, ServicePromise
from .calendars import add_working_minutes, working_time_between

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
