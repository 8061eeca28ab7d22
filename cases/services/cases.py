"""Services on a case itself: opening it, who works it, where it is, its status and priority.

``case_open`` (and ``case_build``, the unsaved case ``cases.ingest`` saves itself), then
``case_assign``, ``case_claim``, ``case_transfer``, ``case_set_status`` and
``case_set_priority``: each locks the row, writes its event and announces the change.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors import webhooks_out

from .. import permissions, sla
from ..errors import AlreadyClaimed, NotPermitted, ServiceError
from ..models import Case, CaseEvent, Department, new_reference
from .events import _announce, _locked, _now, _require_reason, record_event


def case_build(
    *,
    customer,
    channel=None,
    department: Department | None = None,
    subject: str = "",
    priority: str = Case.Priority.NORMAL,
    category: str = "",
) -> Case:
    """An unsaved new case for ``customer``, routed to ``department`` or the channel's, with a
    fresh reference. ``case_open`` saves it with its event; ``cases.ingest`` fills in the
    first message's clocks and triage before saving it in one INSERT."""
    department = department or (channel.department if channel else None)
    if department is None:
        raise ServiceError("A case needs a department or a channel to route it.", field="department")
    return Case(
        reference=new_reference(),
        customer=customer,
        department=department,
        subject=subject[:255],
        priority=priority,
        category=category,
        origin_channel=channel,
        last_channel=channel,
    )


@transaction.atomic
def case_open(
    *,
    customer,
    channel=None,
    department: Department | None = None,
    subject: str = "",
    priority: str = Case.Priority.NORMAL,
    category: str = "",
    actor=None,
) -> Case:
    """Open a case for ``customer``, owned by ``department`` or the channel's department.

    Writes a ``created`` event; announces the case to its department after commit.
    """
    for _ in range(8):  # a reference collision is rare; try a fresh token
        try:
            with transaction.atomic():
                case = case_build(
                    customer=customer,
                    channel=channel,
                    department=department,
                    subject=subject,
                    priority=priority,
                    category=category,
                )
                case.save(force_insert=True)
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - 29^5 tokens
        raise ServiceError("Could not allocate a case reference.")
    record_event(
        case=case,
        kind=CaseEvent.Kind.CREATED,
        actor=actor,
        after={"department": case.department_id, "channel": channel.pk if channel else None},
    )
    _announce(case, "created")
    webhooks_out.emit("case.created", webhooks_out.case_payload(case))
    return case


@transaction.atomic
def case_assign(*, case: Case, assignee, actor, reason: str = "") -> Case:
    """Give ``case`` to ``assignee`` (None unassigns). Locks the row; writes an event."""
    case = _locked(case)
    if actor is not None and not permissions.can_assign(actor, case, assignee):
        raise NotPermitted("You may assign cases only to members of the case's department.")
    previous = case.assignee_id
    new = assignee.pk if assignee else None
    if previous == new:
        return case
    case.assignee = assignee
    if previous:
        case.followers.add(previous)
    case.save(update_fields=["assignee", "updated_at"])
    record_event(
        case=case,
        kind=CaseEvent.Kind.ASSIGNED if assignee else CaseEvent.Kind.UNASSIGNED,
        actor=actor,
        before={"assignee": previous},
        after={"assignee": new},
        reason=reason,
    )
    _announce(case, "assigned", previous, actor=actor)
    if assignee is not None:
        webhooks_out.emit("case.assigned", webhooks_out.case_payload(case))
    return case


@transaction.atomic
def case_claim(*, case: Case, actor) -> Case:
    """Take an unassigned case for yourself. Of two agents claiming at once, exactly one wins.

    The row lock serialises claimants: the second sees the first's assignee and gets
    ``AlreadyClaimed``.
    """
    case = _locked(case)
    if not permissions.can_work_case(actor, case):
        raise NotPermitted("You can claim only cases of your departments.")
    if case.assignee_id == actor.pk:
        return case
    if case.assignee_id is not None:
        raise AlreadyClaimed(f"{case.reference} is already assigned.")
    case.assignee = actor
    case.save(update_fields=["assignee", "updated_at"])
    record_event(
        case=case,
        kind=CaseEvent.Kind.CLAIMED,
        actor=actor,
        before={"assignee": None},
        after={"assignee": actor.pk},
    )
    _announce(case, "assigned", actor=actor)
    webhooks_out.emit("case.assigned", webhooks_out.case_payload(case))
    return case


@transaction.atomic
def case_transfer(
    *,
    case: Case,
    to_department: Department,
    actor,
    reason: str,
    note: str = "",
    kind: str = CaseEvent.Kind.TRANSFERRED,
    permitted: bool = False,
) -> Case:
    """Hand ``case`` to another department, with a reason on record and an optional hand-off note.

    ``actor`` must be allowed the move by ``permissions.can_transfer`` unless the caller
    has already checked a rule of its own (``permitted``: a hand-back goes against the
    path). The previous assignee keeps following the case; the receiving department picks it up
    unassigned. The customer's service clocks are not reset.
    """
    reason = _require_reason(reason)
    case = _locked(case)
    if to_department.pk == case.department_id:
        raise ServiceError("The case is already in that department.", field="to_department")
    if actor is not None and not permitted and not permissions.can_transfer(actor, case, to_department.pk):
        raise NotPermitted("No escalation path allows that transfer; ask a supervisor.")
    previous_department, previous_assignee = case.department_id, case.assignee_id
    if previous_assignee:
        case.followers.add(previous_assignee)
    case.department = to_department
    case.assignee = None
    case.handoff_note = (note or "").strip()
    case.save(update_fields=["department", "assignee", "handoff_note", "updated_at"])
    record_event(
        case=case,
        kind=kind,
        actor=actor,
        reason=reason,
        before={"department": previous_department, "assignee": previous_assignee},
        after={"department": to_department.pk, "assignee": None, "note": case.handoff_note},
    )
    publish_on_commit(
        event={"type": "case.left", "case_id": case.pk, "reference": case.reference},
        groups=[groups.department_group(previous_department)],
    )
    _announce(case, "transferred", previous_assignee)
    return case


@transaction.atomic
def case_set_status(*, case: Case, status: str, actor, reason: str = "") -> Case:
    """Change the case's status; resolving stops every clock, reopening restarts what is owed."""
    if status not in Case.Status.values:
        raise ServiceError(f"'{status}' is not a case status.", field="status")
    case = _locked(case)
    if actor is not None and not permissions.can_work_case(actor, case):
        raise NotPermitted("You cannot change this case.")
    previous = case.status
    if previous == status:
        return case
    case.status = status
    now = _now()
    if status == Case.Status.RESOLVED:
        case.resolved_at = now
    elif status == Case.Status.CLOSED:
        case.closed_at = now
        case.resolved_at = case.resolved_at or now
    else:
        case.resolved_at = case.closed_at = None
    sla.on_status_change(case, previous=previous, at=now)
    case.save()
    record_event(
        case=case,
        kind=CaseEvent.Kind.STATUS,
        actor=actor,
        before={"status": previous},
        after={"status": status},
        reason=reason,
    )
    _announce(case, "status")
    if status == Case.Status.RESOLVED:
        from ..csat.services import survey_on_resolve

        survey_on_resolve(case=case)  # asks the customer after commit, once per case
    return case


@transaction.atomic
def case_set_priority(*, case: Case, priority: str, actor, reason: str = "") -> Case:
    """Change the case's priority; a tighter per-priority promise pulls the running response clock in."""
    if priority not in Case.Priority.values:
        raise ServiceError(f"'{priority}' is not a priority.", field="priority")
    case = _locked(case)
    if actor is not None and not permissions.can_work_case(actor, case):
        raise NotPermitted("You cannot change this case.")
    previous = case.priority
    if previous == priority:
        return case
    case.priority = priority
    sla.on_priority_change(case, previous=previous, at=_now())
    case.save()
    record_event(
        case=case,
        kind=CaseEvent.Kind.PRIORITY,
        actor=actor,
        before={"priority": previous},
        after={"priority": priority},
        reason=reason,
    )
    _announce(case, "priority")
    return case
