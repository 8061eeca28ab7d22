"""The department clock on the desk: how long a case has been with its current department against
that department's internal handling target (``Department.handling_target_minutes``).

The clock is wall time since the case last arrived in its department (``sla.department_entered_at``:
the last transfer, escalation or hand-back, else its creation), the reading of the report's
"time with each department" figure. It is internal: the customer's promise clocks
(``cases/sla.py``) are not touched by it.

- Reads: :func:`target_state` (ok, near at ``AT_RISK_SHARE`` of the target, over) for queue rows
  and the case page; :func:`case_department_clock`, the case's stays with each department (one
  statement).
- The sweep: :func:`department_target_sweep`, run by the SLA sweep (``sla.sla_sweep``), records
  one ``sla`` CaseEvent (``after.department_target = "passed"``) per case and stay when the case
  passes its department's target, and after commit tells the department's group
  (``department.over_target``), as the breach ladder tells of breaches.
- The setting: :func:`department_target_save`, for admins and the department's supervisors
  (``permissions.can_set_department_target``), recorded in the configuration audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case as DbCase
from django.db.models import DateTimeField, Exists, IntegerField, OuterRef, QuerySet, Subquery, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from channels_app import groups
from channels_app.publish import publish_on_commit

from . import permissions, sla
from .errors import NotPermitted, ServiceError
from .models import Case, CaseEvent, Department

# Share of the target after which a case shows as near it.
AT_RISK_SHARE = 0.8
# The value of ``CaseEvent.after["department_target"]`` the sweep writes.
PASSED = "passed"
TARGET_MAX_MINUTES = 60 * 24 * 365
# Statuses whose stay with the department counts (the report's figure ends a stay at resolution).
COUNTED_STATUSES = Case.OPEN_STATUSES


def target_state(*, since: datetime | None, target_minutes: int | None, now: datetime) -> str | None:
    """``"over"``, ``"near"`` (from ``AT_RISK_SHARE`` of the target) or ``"ok"``; None without a target."""
    if since is None or target_minutes is None:
        return None
    elapsed = now - since
    target = timedelta(minutes=target_minutes)
    if elapsed >= target:
        return "over"
    if elapsed >= target * AT_RISK_SHARE:
        return "near"
    return "ok"


def since_if_targeted() -> DbCase:
    """``sla.department_since()`` for queue rows, computed only for cases whose department has a
    target (inside a CASE, so the subquery runs for those rows alone)."""
    return DbCase(
        When(department__handling_target_minutes__isnull=False, then=sla.department_since()),
        default=None,
        output_field=DateTimeField(),
    )


# --- The case page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stay:
    """A stretch of time a case spent with one department."""

    department_id: int | None
    department: str
    entered_at: datetime
    left_at: datetime | None  # None: still there
    target_minutes: int | None

    def length(self, now: datetime) -> timedelta:
        return (self.left_at or now) - self.entered_at

    def state(self, now: datetime) -> str | None:
        return target_state(
            since=self.entered_at, target_minutes=self.target_minutes, now=self.left_at or now
        )


@dataclass(frozen=True)
class CaseDepartmentClock:
    current: Stay
    stays: list[Stay]  # oldest first, the current one last
    now: datetime

    @property
    def elapsed(self) -> timedelta:
        return self.current.length(self.now)

    @property
    def state(self) -> str | None:
        return self.current.state(self.now)

    @property
    def target(self) -> timedelta | None:
        minutes = self.current.target_minutes
        return None if minutes is None else timedelta(minutes=minutes)

    @property
    def over_at(self) -> datetime | None:
        target = self.target
        return None if target is None else self.current.entered_at + target

    @property
    def elapsed_seconds(self) -> int:
        return int(self.elapsed.total_seconds())

    @property
    def target_seconds(self) -> int | None:
        target = self.target
        return None if target is None else int(target.total_seconds())

    @property
    def history(self) -> list[dict]:
        """Every stay, oldest first, as the case page lists them."""
        return [
            {
                "department": stay.department,
                "entered_at": stay.entered_at,
                "left_at": stay.left_at,
                "seconds": int(stay.length(self.now).total_seconds()),
                "state": stay.state(self.now),
                "current": stay is self.current,
            }
            for stay in self.stays
        ]


def _department_column(side: str, column: str) -> Subquery:
    """A column of the department the outer move's ``{side}_id`` annotation names."""
    return Subquery(Department.objects.filter(pk=OuterRef(f"{side}_id")).values(column)[:1])


def case_department_clock(*, case: Case, now: datetime | None = None) -> CaseDepartmentClock:
    """``case``'s time with its current department and its earlier stays. One statement: the
    case's moves with both departments' names and targets (``case.department`` is loaded)."""
    now = now or timezone.now()
    moves = list(
        CaseEvent.objects.filter(case=case, kind__in=sla.DEPARTMENT_MOVES)
        .annotate(
            from_id=Cast(KT("before__department"), IntegerField()),
            to_id=Cast(KT("after__department"), IntegerField()),
        )
        .annotate(
            from_name=_department_column("from", "name"),
            from_target=_department_column("from", "handling_target_minutes"),
            to_name=_department_column("to", "name"),
            to_target=_department_column("to", "handling_target_minutes"),
        )
        .order_by("created_at", "id")
        .values_list("created_at", "from_id", "from_name", "from_target", "to_id", "to_name", "to_target")
    )
    ended = (case.resolved_at or case.closed_at) if case.status not in COUNTED_STATUSES else None
    stays: list[Stay] = []
    if moves:
        _at, from_id, from_name, from_target, *_ = moves[0]
        start = (case.created_at, from_id, from_name or "—", from_target)
    else:
        department = case.department
        start = (case.created_at, department.pk, department.name, department.handling_target_minutes)
    entered, department_id, name, target = start
    for at, *_before, to_id, to_name, to_target in moves:
        stays.append(Stay(department_id, name, entered, at, target))
        entered, department_id, name, target = at, to_id, to_name or "—", to_target
    # The current stay: with the case's department as loaded (its target as it is now).
    department = case.department
    stays.append(Stay(department.pk, department.name, entered, ended, department.handling_target_minutes))
    return CaseDepartmentClock(current=stays[-1], stays=stays, now=now)


# --- The sweep --------------------------------------------------------------------------------------


def over_target_candidates(department_id: int, *, cutoff: datetime) -> QuerySet[Case]:
    """Cases with ``department_id`` since ``cutoff`` or longer, not yet warned of during this stay."""
    warned = CaseEvent.objects.filter(
        case=OuterRef("pk"),
        kind=CaseEvent.Kind.SLA,
        after__department_target=PASSED,
        created_at__gte=OuterRef("department_since"),
    )
    cases = Case.objects.filter(
        department_id=department_id, status__in=COUNTED_STATUSES, created_at__lte=cutoff
    )
    return sla.department_entered_at(cases).filter(department_since__lte=cutoff).filter(~Exists(warned))


@transaction.atomic
def _warn_department(department_id: int, minutes: int, *, now: datetime) -> int:
    rows = list(
        over_target_candidates(department_id, cutoff=now - timedelta(minutes=minutes))
        .order_by("department_since", "id")
        .select_for_update(skip_locked=True)
        .values("id", "reference", "department_since")
    )
    if not rows:
        return 0
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=row["id"],
                kind=CaseEvent.Kind.SLA,
                after={
                    "department_target": PASSED,
                    "department": department_id,
                    "target_minutes": minutes,
                    "since": row["department_since"].isoformat(),
                },
                reason=f"With the department longer than its handling target ({minutes} min).",
            )
            for row in rows
        ],
        batch_size=sla.SWEEP_BATCH,
    )
    items = [{"case_id": row["id"], "reference": row["reference"]} for row in rows]
    for first in range(0, len(items), sla.LIVE_EVENT_CASES):
        publish_on_commit(
            event={
                "type": "department.over_target",
                "department_id": department_id,
                "target_minutes": minutes,
                "cases": items[first : first + sla.LIVE_EVENT_CASES],
            },
            groups=[groups.department_group(department_id)],
        )
    return len(rows)


def department_target_sweep(*, now: datetime | None = None) -> int:
    """Record and announce every case that has passed its department's handling target.

    Guarantees: one ``sla`` CaseEvent per case and stay (a case that leaves and comes back is
    warned again on its new stay), written with the department's live event in one
    transaction per department; rows a service holds are skipped for the next sweep. One
    statement for the departments, then per department with a target one read (and when
    some passed, one insert), whatever the number of cases.
    """
    now = now or timezone.now()
    targets = Department.objects.filter(is_active=True, handling_target_minutes__isnull=False)
    return sum(
        _warn_department(pk, minutes, now=now)
        for pk, minutes in targets.order_by("pk").values_list("pk", "handling_target_minutes")
    )


# --- The setting --------------------------------------------------------------------------------------


def target_problem(minutes: int | None) -> str | None:
    if minutes is None:
        return None
    if minutes < 1:
        return "Handling target: at least 1 minute, or empty for no target."
    if minutes > TARGET_MAX_MINUTES:
        return "Handling target: at most a year (525600 minutes)."
    return None


def department_target_save(*, department: Department, actor, minutes: int | None) -> Department:
    """Set (or clear, with None) ``department``'s handling target.

    Guarantees: only admins and the department's supervisors; the row is locked while it
    changes; a refused value raises ServiceError naming ``handling_target_minutes`` and writes
    nothing; one configuration audit entry naming ``actor`` when the value changed, none
    otherwise. Cases already past a new, shorter target are warned by the next sweep.
    """
    from .promise_settings.services import _audited  # the settings screens' audit actor

    if not permissions.can_set_department_target(actor, department):
        raise NotPermitted("Only admins and the department's supervisors set its handling target.")
    if problem := target_problem(minutes):
        raise ServiceError(problem, field="handling_target_minutes")

    def work() -> Department:
        with transaction.atomic():
            locked = Department.objects.select_for_update().get(pk=department.pk)
            if locked.handling_target_minutes != minutes:
                locked.handling_target_minutes = minutes
                locked.save(update_fields=["handling_target_minutes"])
            return locked

    return _audited(actor, work)
