"""What every case service shares: the audit trail, the announcement, the row lock.

``record_event`` appends one CaseEvent inside the service's transaction; ``_announce``
tells every screen showing the case that it changed, after commit, on the groups
``_case_groups`` names; ``_locked`` re-reads the case under a row lock; ``_require_reason``
is the rule for changes that must say why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from channels_app import groups
from channels_app.publish import publish_on_commit

from .. import selectors
from ..errors import ReasonRequired
from ..models import Case, CaseEvent, Message


def _now() -> datetime:
    return datetime.now(UTC)


def _user_label(user) -> str | None:
    return None if user is None else selectors.user_name(user)


def _case_groups(case: Case, *extra_users) -> list[str]:
    names = [groups.case_group(case.pk), groups.department_group(case.department_id)]
    for user_id in (case.assignee_id, *extra_users):
        if user_id:
            names.append(groups.user_group(user_id))
    return names


def case_changed_event(case: Case, change: str, **extra) -> dict:
    """The live ``case.changed`` event: what a queue row, a board and a case header show."""
    return {
        "type": "case.changed",
        "change": change,
        "case_id": case.pk,
        "reference": case.reference,
        "department_id": case.department_id,
        "assignee_id": case.assignee_id,
        "status": case.status,
        "priority": case.priority,
        **extra,
        "sla_state": case.sla_state,
        "due_at": case.due_at.isoformat() if case.due_at else None,
    }


def _announce(case: Case, change: str, *extra_users, actor=None) -> None:
    """Tell every screen showing ``case`` that it changed (after commit).

    An assignment names who made it (``actor_id``): the new assignee's desk notifies them
    unless they took the case themselves."""
    event = case_changed_event(case, change)
    if change == "assigned":
        event["actor_id"] = actor.pk if actor is not None else None
    publish_on_commit(event=event, groups=_case_groups(case, *extra_users))


def record_event(
    *,
    case: Case,
    kind: str,
    actor=None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    message: Message | None = None,
) -> CaseEvent:
    """Append one row to the case's audit trail (call inside the service's transaction)."""
    return CaseEvent.objects.create(
        case=case,
        kind=kind,
        actor=actor,
        before=before or {},
        after=after or {},
        reason=reason,
        message=message,
    )


def _locked(case: Case) -> Case:
    """Re-read ``case`` under a row lock so concurrent services apply one after the other."""
    return Case.objects.select_for_update().get(pk=case.pk)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return reason
