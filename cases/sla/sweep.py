"""The sweep: marking running clocks at risk and breached, and telling everyone.

``sla_sweep`` moves cases whose at-risk moment or due time has passed to the worse state
in batched UPDATEs with a CaseEvent for each, publishes the changes to the desks
(``publish_sla_changes``) and the webhooks, then runs the department targets and the
breach ladder that build on them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors import webhooks_out

from ..models import Case, CaseEvent
from .clocks import CLOCK_FIELDS, CLOCK_NAMES, RUNNING_STATUSES

logger = logging.getLogger(__name__)


# Cases swept per UPDATE statement.
SWEEP_BATCH = 5000
# Cases listed per live event, so one message stays small on the channel layer.
LIVE_EVENT_CASES = 200


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
    from ..department_clock import department_target_sweep  # builds on these clocks
    from ..escalation import breach_ladder_run  # escalation builds on the case services

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
