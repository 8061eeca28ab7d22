"""The supervisor board: open work per department and per agent, and cases to reassign.

One aggregate over the supervised departments' open cases (``board_stats``) gives both the
department rows and the agent rows; ``board_cases`` lists cases to pick for bulk
reassignment in queue order, ``reassign_targets`` where they may go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case as DbCase
from django.db.models import Count, F, Min, Q, When

from .. import permissions
from ..models import Case, Department, Membership
from .departments import all_departments
from .queue import WORK_STATUSES, queue_due, user_name

# --- The supervisor board ---------------------------------------------------------------------------


def board_departments(*, user) -> list[Department]:
    """The departments on ``user``'s board: those they supervise (admins: every active one)."""
    if permissions.is_admin(user):
        return [department for department in all_departments(user=user) if department.is_active]
    ids = permissions.supervised_department_ids(user)
    return [department for department in all_departments(user=user) if department.pk in ids]


# The customer is waiting for us: they wrote after our last answer, on a running case.
WAITING_Q = Q(status__in=[Case.Status.NEW, Case.Status.OPEN], last_inbound_at__isnull=False) & (
    Q(last_outbound_at__isnull=True) | Q(last_inbound_at__gt=F("last_outbound_at"))
)


def _waiting_since() -> DbCase:
    """Since when the customer has been waiting: their first message if we never answered, else
    their latest (the clocks count from there too)."""
    return DbCase(
        When(last_outbound_at__isnull=True, then=F("first_inbound_at")),
        default=F("last_inbound_at"),
    )


def _board_counts() -> dict:
    # Counting a column of ``case_board_idx`` (not the id) lets PostgreSQL answer from the index.
    return {
        "open": Count("department"),
        "at_risk": Count("department", filter=Q(sla_state=Case.SlaState.AT_RISK)),
        "breached": Count("department", filter=Q(sla_state=Case.SlaState.BREACHED)),
        "unassigned": Count("department", filter=Q(assignee__isnull=True)),
        "oldest_waiting": Min(_waiting_since(), filter=WAITING_Q),
    }


@dataclass
class BoardRow:
    """One line of the board: a department or an agent, and their open work."""

    key: int
    label: str
    detail: str = ""
    open: int = 0
    at_risk: int = 0
    breached: int = 0
    unassigned: int = 0
    oldest_waiting: datetime | None = None


BoardStats = dict[tuple[int, int | None], dict]


def board_stats(*, departments: list[Department]) -> BoardStats:
    """The departments' open work per (department, assignee): open, at risk, breached,
    unassigned, longest wait.

    One aggregate over the departments' open cases, an index-only read of
    ``case_board_idx`` (department, assignee lead it); the department rows and the agent
    rows are both sums of these groups, so the board reads its cases once.
    """
    ids = [department.pk for department in departments]
    return {
        (row["department_id"], row["assignee_id"]): row
        for row in Case.objects.filter(department_id__in=ids, status__in=WORK_STATUSES)
        .order_by()
        .values("department_id", "assignee_id")
        .annotate(**_board_counts())
    }


def _board_figures(groups) -> dict:
    """The sum of some :func:`board_stats` groups (the earliest wait of them)."""
    figures = {"open": 0, "at_risk": 0, "breached": 0, "unassigned": 0, "oldest_waiting": None}
    for group in groups:
        for name in ("open", "at_risk", "breached", "unassigned"):
            figures[name] += group[name]
        waiting = group["oldest_waiting"]
        if waiting is not None and (figures["oldest_waiting"] is None or waiting < figures["oldest_waiting"]):
            figures["oldest_waiting"] = waiting
    return figures


def board_department_rows(
    *, departments: list[Department], stats: BoardStats | None = None
) -> list[BoardRow]:
    """Per department: open cases, at risk, breached, unassigned, and the longest-waiting customer
    (from ``stats``, :func:`board_stats` of the same departments, when the caller has it)."""
    if stats is None:
        stats = board_stats(departments=departments)
    return [
        BoardRow(
            key=department.pk,
            label=department.name,
            **_board_figures(
                row for (department_id, _), row in stats.items() if department_id == department.pk
            ),
        )
        for department in departments
    ]


def board_agent_rows(*, departments: list[Department], stats: BoardStats | None = None) -> list[BoardRow]:
    """Per member of the departments: their open cases there, at risk, breached, longest wait
    (from ``stats`` as :func:`board_department_rows`)."""
    if stats is None:
        stats = board_stats(departments=departments)
    ids = [department.pk for department in departments]
    people: dict[int, BoardRow] = {}
    names = {department.pk: department.name for department in departments}
    for membership in (
        Membership.objects.filter(department_id__in=ids, user__is_active=True)
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__email", "department_id")
    ):
        user = membership.user
        row = people.get(user.pk)
        role = " (supervisor)" if membership.role == Membership.Role.SUPERVISOR else ""
        if row is None:
            figures = _board_figures(
                group for (_, assignee_id), group in stats.items() if assignee_id == user.pk
            )
            figures["unassigned"] = 0
            people[user.pk] = BoardRow(
                key=user.pk,
                label=user_name(user),
                detail=names[membership.department_id] + role,
                **figures,
            )
        else:
            row.detail += f" · {names[membership.department_id]}{role}"
    return list(people.values())


BOARD_CASES_LIMIT = 100
# What a board row shows (templates/cases/board.html): loading only these halves the time
# Python spends turning 100 joined rows into objects (a case has some 20 timestamps).
BOARD_ROW_FIELDS = (
    *("id", "reference", "subject", "sla_state", "due_at", "customer_id", "department_id", "assignee_id"),
    *("customer__name", "customer__tier", "department__name"),
    *("assignee__first_name", "assignee__last_name", "assignee__email", "assignee__username"),
)


def board_cases(
    *,
    departments: list[Department],
    department_id: int | None = None,
    assignee_id: int | None = None,
    sla_state: str = "",
    unassigned: bool = False,
    limit: int = BOARD_CASES_LIMIT,
) -> list[Case]:
    """Open cases of the board's departments to pick for bulk reassignment, in queue order."""
    ids = [department.pk for department in departments]
    if department_id is not None:
        ids = [pk for pk in ids if pk == department_id]
    queryset = Case.objects.filter(department_id__in=ids, status__in=WORK_STATUSES)
    if assignee_id is not None:
        queryset = queryset.filter(assignee_id=assignee_id)
    if unassigned:
        queryset = queryset.filter(assignee__isnull=True)
    if sla_state:
        queryset = queryset.filter(sla_state=sla_state)
    page = queryset.order_by(queue_due().asc(), "-id").values("pk")[:limit]
    return list(
        Case.objects.filter(pk__in=page)
        .select_related("customer", "department", "assignee")
        .only(*BOARD_ROW_FIELDS)
        .order_by(queue_due().asc(), "-id")
    )


def reassign_targets(*, user) -> tuple[list[Department], list[Membership]]:
    """Where a supervisor may send cases: active departments, and their members (by department)."""
    departments = [department for department in all_departments(user=user) if department.is_active]
    members = list(
        Membership.objects.filter(department__is_active=True, user__is_active=True)
        .select_related("user", "department")
        .order_by("department__name", "user__first_name", "user__last_name")
    )
    return departments, members
