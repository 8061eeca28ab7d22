"""Escalation between departments: along paths, back again, in bulk, and up the breach ladder.

Services here build on :func:`cases.services.case_transfer` (which moves the case, keeps
the previous assignee as a follower, writes the audit row and announces the move) and
add what escalation needs on top: choosing the path, telling the receiving
department's supervisors, accepting or handing back a hand-over.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors import webhooks_out

from . import permissions, rules, services, sla
from .errors import NotPermitted, ReasonRequired, ServiceError
from .models import Case, CaseEvent, Department, EscalationPath, Membership

logger = logging.getLogger(__name__)

# Automatic escalations per sweep; the rest wait for the next minute so one sweep stays short.
MAX_ESCALATIONS_PER_SWEEP = 200
AUTOMATIC_TRIGGERS = (EscalationPath.Trigger.PRIORITY, EscalationPath.Trigger.CATEGORY)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return reason


def _locked(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def path_matches(path: EscalationPath, case: Case) -> bool:
    """Whether ``path``'s trigger applies to ``case`` now (a manual path always does)."""
    trigger = EscalationPath.Trigger
    if path.trigger == trigger.MANUAL:
        return True
    if path.trigger == trigger.SLA_BREACH:
        return case.sla_state == Case.SlaState.BREACHED
    if path.trigger == trigger.PRIORITY:
        threshold = Case.PRIORITY_RANK.get(path.priority_threshold)
        return threshold is not None and Case.PRIORITY_RANK.get(case.priority, 0) >= threshold
    if path.trigger == trigger.CATEGORY:
        return bool(path.category) and case.category == path.category
    return False


def next_path(case: Case, *, triggers: Iterable[str] | None = None) -> EscalationPath | None:
    """The path ``case`` escalates along: lowest order first, active, trigger manual or matching."""
    paths = (
        EscalationPath.objects.filter(
            from_department_id=case.department_id, is_active=True, to_department__is_active=True
        )
        .select_related("to_department")
        .order_by("order", "id")
    )
    if triggers is not None:
        paths = paths.filter(trigger__in=list(triggers))
    return next((path for path in paths if path_matches(path, case)), None)


def _supervisor_ids(department_id: int) -> list[int]:
    return list(
        Membership.objects.filter(department_id=department_id, role=Membership.Role.SUPERVISOR).values_list(
            "user_id", flat=True
        )
    )


def _tell_supervisors(*, department_id: int, event: dict) -> None:
    names = [groups.user_group(user_id) for user_id in _supervisor_ids(department_id)]
    publish_on_commit(event=event, groups=[*names, groups.supervisors_group()])


def _escalate(*, case: Case, path: EscalationPath, actor, reason: str, note: str) -> Case:
    from_department = case.department_id
    case = services.case_transfer(
        case=case,
        to_department=path.to_department,
        actor=actor,
        reason=reason,
        note=note,
        kind=CaseEvent.Kind.ESCALATED,
    )
    webhooks_out.emit(
        "case.escalated",
        {
            **webhooks_out.case_payload(case),
            "from_department_id": from_department,
            "trigger": path.trigger,
            "reason": reason,
        },
    )
    _tell_supervisors(
        department_id=path.to_department_id,
        event={
            "type": "case.escalated",
            "case_id": case.pk,
            "reference": case.reference,
            "from_department_id": from_department,
            "department_id": path.to_department_id,
            "trigger": path.trigger,
            "level": path.order,
            "reason": reason,
            "sla_state": case.sla_state,
        },
    )
    return case


@transaction.atomic
def case_escalate(*, case: Case, actor, reason: str, note: str = "") -> Case:
    """Move ``case`` to the next department on its department's escalation path.

    The path is the active one of lowest order whose trigger is manual or matches the
    case. A reason is required; the hand-off note is shown to the receiving department.
    The customer's clocks are untouched, the previous assignee keeps following, and the
    receiving department's supervisors are told live. Writes an ``escalated`` event.
    """
    reason = _require_reason(reason)
    case = _locked(case)
    path = next_path(case)
    if path is None:
        raise ServiceError(
            f"No escalation path leads on from {case.department}.", code="no_escalation_path", field="case"
        )
    return _escalate(case=case, path=path, actor=actor, reason=reason, note=note)


def escalate_if_triggered(*, case: Case) -> Case | None:
    """Escalate ``case`` automatically when a priority or category path now matches it."""
    path = next_path(case, triggers=AUTOMATIC_TRIGGERS)
    if path is None:
        return None
    if path.trigger == EscalationPath.Trigger.PRIORITY:
        reason = f"Priority is {case.get_priority_display().lower()}"
    else:
        reason = f"Category is {case.get_category_display().lower()}"
    with transaction.atomic():
        return _escalate(case=_locked(case), path=path, actor=None, reason=reason, note="")


def _arrival(case: Case) -> CaseEvent | None:
    """The event that brought ``case`` into its current department, if it was moved there."""
    return (
        CaseEvent.objects.filter(case=case, kind__in=sla.DEPARTMENT_MOVES)
        .order_by("-created_at", "-id")
        .first()
    )


def handoff_pending(case: Case) -> bool:
    """The case was handed to its department and nobody there has accepted it yet."""
    last = (
        CaseEvent.objects.filter(case=case, kind__in=[*sla.DEPARTMENT_MOVES, CaseEvent.Kind.ACCEPTED])
        .order_by("-created_at", "-id")
        .values_list("kind", flat=True)
        .first()
    )
    return last is not None and last != CaseEvent.Kind.ACCEPTED


@transaction.atomic
def case_handback(*, case: Case, actor, reason: str, note: str = "") -> Case:
    """Return ``case`` to the department it came from, with a reason on record.

    Any member of the receiving department may do so, path or not. Writes a
    ``handed_back`` event attributed to ``actor``; the customer's clocks are untouched.
    """
    reason = _require_reason(reason)
    case = _locked(case)
    if not rules.can_hand_back(actor, case):
        raise NotPermitted("Only the department that has the case can hand it back.")
    arrival = _arrival(case)
    handed_over = arrival is not None and arrival.kind != CaseEvent.Kind.HANDED_BACK
    origin_id = arrival.before.get("department") if handed_over else None
    if origin_id is None or arrival.after.get("department") != case.department_id:
        raise ServiceError("This case was not handed to its department.", code="no_handoff", field="case")
    origin = Department.objects.get(pk=origin_id)
    # Handing back goes against the escalation path: the rule checked above is the one
    # that applies, not case_transfer's path rule.
    case = services.case_transfer(
        case=case,
        to_department=origin,
        actor=actor,
        reason=reason,
        note=note,
        kind=CaseEvent.Kind.HANDED_BACK,
        permitted=True,
    )
    _tell_supervisors(
        department_id=origin.pk,
        event={"type": "case.handed_back", "case_id": case.pk, "reference": case.reference, "reason": reason},
    )
    return case


@transaction.atomic
def case_accept(*, case: Case, actor, note: str = "") -> Case:
    """The receiving department takes on a hand-over: an ``accepted`` event, and the case is
    claimed by ``actor`` if nobody has it yet."""
    case = _locked(case)
    if not rules.can_accept(actor, case):
        raise NotPermitted("Only the department that has the case can accept it.")
    if not handoff_pending(case):
        raise ServiceError(
            "No hand-over of this case is waiting to be accepted.", code="no_handoff", field="case"
        )
    arrival = _arrival(case)
    services.record_event(
        case=case,
        kind=CaseEvent.Kind.ACCEPTED,
        actor=actor,
        before={"department": arrival.before.get("department")},
        after={"department": case.department_id},
        reason=(note or "").strip(),
    )
    if case.assignee_id is None and permissions.can_work_case(actor, case):
        return services.case_claim(case=case, actor=actor)
    publish_on_commit(
        event={"type": "case.changed", "change": "accepted", "case_id": case.pk, "reference": case.reference},
        groups=[groups.case_group(case.pk), groups.department_group(case.department_id)],
    )
    return case


@transaction.atomic
def case_bulk_reassign(
    *,
    cases: Iterable[Case] | QuerySet[Case],
    to_department: Department | None = None,
    assignee=None,
    actor,
    reason: str,
    note: str = "",
) -> list[Case]:
    """Move many cases to ``to_department`` and/or give them to ``assignee``, all or none.

    Supervisors of a case's department may move it anywhere; agents reassign only within
    their own departments; an assignee must belong to the department the case lands in
    (:func:`cases.rules.can_reassign`). Locks every case first, in id order; a refusal
    names the cases refused and changes nothing. One event per changed case
    (``transferred`` when the department changes, else ``assigned``/``unassigned``),
    previous assignees keep following, clocks are untouched.
    """
    reason = _require_reason(reason)
    if to_department is None and assignee is None:
        raise ServiceError("Choose a department, an assignee or both.", field="to_department")
    ids = sorted({case.pk for case in cases})
    if not ids:
        raise ServiceError("Choose at least one case.", field="cases")
    locked = list(Case.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    if len(locked) != len(ids):
        raise ServiceError("Some of those cases no longer exist.", field="cases")
    refused = [
        case.reference
        for case in locked
        if not rules.can_reassign(actor, case, to_department=to_department, assignee=assignee)
    ]
    if refused:
        shown = ", ".join(refused[:10]) + (f" and {len(refused) - 10} more" if len(refused) > 10 else "")
        raise NotPermitted(f"You may not reassign {shown} that way.")

    note = (note or "").strip()
    now = timezone.now()
    new_assignee = assignee.pk if assignee is not None else None
    followers, events, changed = [], [], []
    for case in locked:
        before = {"department": case.department_id, "assignee": case.assignee_id}
        moving = to_department is not None and to_department.pk != case.department_id
        if not moving and case.assignee_id == new_assignee:
            continue
        if case.assignee_id and case.assignee_id != new_assignee:
            followers.append(Case.followers.through(case_id=case.pk, user_id=case.assignee_id))
        if moving:
            case.department = to_department
            case.handoff_note = note
            kind = CaseEvent.Kind.TRANSFERRED
        else:
            kind = CaseEvent.Kind.ASSIGNED if new_assignee else CaseEvent.Kind.UNASSIGNED
        case.assignee_id = new_assignee
        case.updated_at = now
        after = {"department": case.department_id, "assignee": new_assignee}
        if moving:
            after["note"] = note
        events.append(CaseEvent(case=case, kind=kind, actor=actor, before=before, after=after, reason=reason))
        changed.append((case, before))
    if not changed:
        return locked
    Case.followers.through.objects.bulk_create(followers, ignore_conflicts=True)
    Case.objects.bulk_update(
        [case for case, _ in changed], ["department", "assignee", "handoff_note", "updated_at"]
    )
    CaseEvent.objects.bulk_create(events)

    by_group: dict[str, list[int]] = defaultdict(list)
    for case, before in changed:
        for name in (
            groups.case_group(case.pk),
            groups.department_group(before["department"]),
            groups.department_group(case.department_id),
            *(groups.user_group(u) for u in (before["assignee"], case.assignee_id) if u),
        ):
            if case.pk not in by_group[name]:
                by_group[name].append(case.pk)
    for name, case_ids in by_group.items():
        publish_on_commit(
            event={
                "type": "cases.reassigned",
                "case_ids": case_ids,
                "department_id": to_department and to_department.pk,
            },
            groups=[name],
        )
    return locked


# --- The breach ladder ----------------------------------------------------------------------

LADDER_STEPS = (
    (Case.BreachStep.WARNED, "warn_after_minutes", "warned_assignee"),
    (Case.BreachStep.SUPERVISORS_NOTIFIED, "notify_after_minutes", "notified_supervisors"),
)


def _ladder_paths() -> dict[int, EscalationPath]:
    """Per department, the sla_breach path of lowest order (its ladder applies)."""
    paths: dict[int, EscalationPath] = {}
    for path in (
        EscalationPath.objects.filter(
            trigger=EscalationPath.Trigger.SLA_BREACH, is_active=True, to_department__is_active=True
        )
        .select_related("to_department")
        .order_by("from_department_id", "order", "id")
    ):
        paths.setdefault(path.from_department_id, path)
    return paths


def ladder_candidates(department_id: int, *, below: int, due_by: datetime) -> QuerySet[Case]:
    """Breached running cases of a department not yet at ladder step ``below``, due by ``due_by``.

    Matches the partial index ``case_sla_ladder_idx``.
    """
    return Case.objects.filter(
        department_id=department_id,
        status__in=sla.RUNNING_STATUSES,
        sla_state=Case.SlaState.BREACHED,
        breach_step__lt=below,
        due_at__lte=due_by,
    )


@transaction.atomic
def _ladder_step(department_id: int, *, step: int, label: str, due_by: datetime) -> int:
    rows = list(
        ladder_candidates(department_id, below=step, due_by=due_by)
        .order_by()
        .select_for_update(skip_locked=True)
        .values("id", "reference", "assignee_id", "breach_step", "due_at")
    )
    if not rows:
        return 0
    Case.objects.filter(pk__in=[row["id"] for row in rows]).update(breach_step=step)
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=row["id"],
                kind=CaseEvent.Kind.SLA,
                before={"breach_step": row["breach_step"]},
                after={"breach_step": step, "ladder": label},
            )
            for row in rows
        ]
    )
    items = [{"case_id": row["id"], "reference": row["reference"]} for row in rows]
    if step == Case.BreachStep.WARNED:
        by_group: dict[str, list[dict]] = defaultdict(list)
        for row, item in zip(rows, items, strict=True):
            target = row["assignee_id"]
            by_group[groups.user_group(target) if target else groups.department_group(department_id)].append(
                item
            )
        for name, group_items in by_group.items():
            publish_on_commit(event={"type": "sla.warning", "cases": group_items}, groups=[name])
    else:
        _tell_supervisors(
            department_id=department_id,
            event={"type": "sla.breach_alert", "department_id": department_id, "cases": items},
        )
    return len(rows)


def _escalate_breached(case_id: int, path: EscalationPath, due_by: datetime) -> bool:
    with transaction.atomic():
        case = (
            ladder_candidates(path.from_department_id, below=Case.BreachStep.ESCALATED, due_by=due_by)
            .select_for_update(skip_locked=True)
            .filter(pk=case_id)
            .first()
        )
        if case is None:
            return False
        clock = (sla.clock_of(case) or "service").replace("_", " ")
        _escalate(
            case=case,
            path=path,
            actor=None,
            reason=f"Service promise broken: {clock} was due {case.due_at:%Y-%m-%d %H:%M} UTC.",
            note="",
        )
        Case.objects.filter(pk=case.pk).update(breach_step=Case.BreachStep.ESCALATED)
    return True


def breach_ladder_run(*, now: datetime) -> dict[str, int]:
    """Take the due steps of every department's breach ladder (called by the SLA sweep).

    Warnings and supervisor alerts are set-based per department and step; escalations go
    one case at a time through :func:`case_escalate`'s machinery, at most
    :data:`MAX_ESCALATIONS_PER_SWEEP` per run. Each step is taken once per breach.
    """
    counts = {"warned_assignee": 0, "notified_supervisors": 0, "escalated": 0}
    budget = MAX_ESCALATIONS_PER_SWEEP
    for department_id, path in _ladder_paths().items():
        for step, minutes_field, label in LADDER_STEPS:
            minutes = getattr(path, minutes_field)
            if minutes is not None:
                counts[label] += _ladder_step(
                    department_id, step=step, label=label, due_by=now - timedelta(minutes=minutes)
                )
        if path.escalate_after_minutes is None or budget <= 0:
            continue
        due_by = now - timedelta(minutes=path.escalate_after_minutes)
        candidates = list(
            ladder_candidates(department_id, below=Case.BreachStep.ESCALATED, due_by=due_by)
            .order_by("due_at")
            .values_list("id", flat=True)[:budget]
        )
        for case_id in candidates:
            try:
                escalated = _escalate_breached(case_id, path, due_by)
            except ServiceError:
                logger.warning("breach escalation of case %s refused", case_id, exc_info=True)
                continue
            counts["escalated"] += escalated
            budget -= escalated
    return counts
