"""Reads that more than one caller needs; each owns its joins."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from . import permissions
from .models import Case, Message


def user_department_ids(*, user) -> list[int]:
    return sorted(permissions.department_ids(user))


def case_queue(*, user) -> QuerySet[Case]:
    """Open cases ``user`` may see, soonest due first, with what a queue row shows."""
    return (
        Case.objects.filter(permissions.visible_cases_q(user), status__in=Case.OPEN_STATUSES)
        .select_related("customer", "department", "assignee", "last_channel")
        .distinct()
        .order_by("due_at", "-created_at")
    )


def case_timeline(*, case: Case) -> QuerySet[Message]:
    """Every message of ``case`` in time order, with author, identity, channel and attachments."""
    return (
        Message.objects.filter(case=case)
        .select_related("channel", "identity", "author")
        .prefetch_related(Prefetch("attachments"))
        .order_by("sent_at", "id")
    )
