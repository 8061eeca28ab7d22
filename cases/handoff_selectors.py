"""Reads for hand-overs between departments: is a case waiting to be accepted, and what came with it.

A case waits for acceptance when the newest of its department moves (transferred,
escalated, handed back) and acceptances is a move: :func:`cases.escalation.handoff_pending`
states the same rule for one case; :func:`awaiting_acceptance` is it as an expression, so
the queue and the case page read it in the statement they already run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import BooleanField, IntegerField, OuterRef, Subquery, Value, When
from django.db.models import Case as DbCase
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from . import rules, sla
from .models import Case, CaseEvent, Department

HANDOFF_KINDS = (*sla.DEPARTMENT_MOVES, CaseEvent.Kind.ACCEPTED)


def awaiting_acceptance() -> Coalesce:
    """True for a case whose newest move or acceptance is a move (one index read per case on
    ``caseevent_case_idx``); False when it was accepted or never moved."""
    newest = (
        CaseEvent.objects.filter(case=OuterRef("pk"), kind__in=HANDOFF_KINDS)
        .order_by("-created_at", "-id")
        .annotate(
            waiting=DbCase(
                When(kind=CaseEvent.Kind.ACCEPTED, then=Value(False)),
                default=Value(True),
                output_field=BooleanField(),
            )
        )
        .values("waiting")[:1]
    )
    return Coalesce(Subquery(newest, output_field=BooleanField()), Value(False))


@dataclass(frozen=True)
class HandOff:
    """A hand-over waiting on the case's department, as the case page's banner shows it."""

    kind: str  # transferred, escalated or handed_back
    sender: object | None  # the user who moved it; None for the system (breach ladder, rules)
    at: datetime
    reason: str
    note: str
    from_department: str

    @property
    def handed_back(self) -> bool:
        return self.kind == CaseEvent.Kind.HANDED_BACK


def pending_handoff(*, case: Case) -> HandOff | None:
    """The hand-over ``case`` waits on, or None (accepted, never moved, or no longer open).

    A case read with the ``awaiting_acceptance`` annotation (the case page's statement)
    that is not waiting costs no query; otherwise one (the event, its actor and the name
    of the department it came from).
    """
    if not case.is_open or getattr(case, "awaiting_acceptance", True) is False:
        return None
    event = (
        CaseEvent.objects.filter(case=case, kind__in=HANDOFF_KINDS)
        .select_related("actor")
        .annotate(origin_id=Cast(KT("before__department"), IntegerField()))
        .annotate(
            from_department_name=Subquery(
                Department.objects.filter(pk=OuterRef("origin_id")).values("name")[:1]
            )
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if event is None or event.kind == CaseEvent.Kind.ACCEPTED:
        return None
    return HandOff(
        kind=event.kind,
        sender=event.actor,
        at=event.created_at,
        reason=event.reason,
        note=case.handoff_note,
        from_department=event.from_department_name or "",
    )


def handoff_actions(*, user, case: Case, handoff: HandOff | None) -> dict[str, bool]:
    """What ``user`` may do with the waiting hand-over: the services' own rules (members of the
    receiving department and admins). A case handed back is accepted, not handed back again."""
    if handoff is None:
        return {"can_accept": False, "can_hand_back": False}
    return {
        "can_accept": rules.can_accept(user, case),
        "can_hand_back": not handoff.handed_back and rules.can_hand_back(user, case),
    }
