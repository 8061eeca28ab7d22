"""Time in department: how long a case has been with its current department.

An internal figure, not a promise: counted from the case's last transfer, escalation or
hand-back into the department (``DEPARTMENT_MOVES``), else from its creation, on the wall
clock and on the calendar of the case's channel promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import DateTimeField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Case, CaseEvent
from .calendars import working_time_between
from .clocks import promise_for

# Kinds of event that move a case to another department.
DEPARTMENT_MOVES = (CaseEvent.Kind.TRANSFERRED, CaseEvent.Kind.ESCALATED, CaseEvent.Kind.HANDED_BACK)


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
