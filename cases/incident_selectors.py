"""Reads for the desk's incident screens: the list, one incident's mentions and its cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Case as DbCase
from django.db.models import Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from . import permissions
from .models import Case, Incident, Message

# Closed incidents stay on the list this long after they were detected.
RECENT_DAYS = 30
INCIDENT_LIST_LIMIT = 100
# An incident page shows at most this many mentions (the oldest first).
MENTIONS_LIMIT = 300


def incidents_listed(*, user, recent_days: int = RECENT_DAYS) -> QuerySet[Incident]:
    """Open incidents and those detected in the last ``recent_days`` that ``user`` may see, open
    first, then newest; each with its channel, who closed it and ``case_count`` (the list page
    and its CSV)."""
    since = timezone.now() - timedelta(days=recent_days)
    return (
        Incident.objects.filter(permissions.visible_incidents_q(user))
        .filter(Q(status=Incident.Status.OPEN) | Q(detected_at__gte=since))
        .select_related("channel", "closed_by")
        .annotate(
            case_count=Count("cases"),
            is_open=DbCase(
                When(status=Incident.Status.OPEN, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
        )
        .order_by("is_open", "-detected_at", "-id")
    )


def incident_list(
    *, user, recent_days: int = RECENT_DAYS, limit: int = INCIDENT_LIST_LIMIT
) -> list[Incident]:
    """The first ``limit`` of :func:`incidents_listed`. One statement."""
    return list(incidents_listed(user=user, recent_days=recent_days)[:limit])


def incident_for_page(*, user, pk: int) -> Incident | None:
    """The incident with its channel and closer, or None when ``user`` may not see it (pages 404)."""
    return (
        Incident.objects.filter(permissions.visible_incidents_q(user), pk=pk)
        .select_related("channel", "closed_by")
        .first()
    )


def incident_mentions(*, incident: Incident, limit: int = MENTIONS_LIMIT) -> tuple[list[Message], bool]:
    """What customers wrote on the incident's channel on its cases since the surge began, in time
    order, with case, customer and identity; and whether there were more than ``limit``."""
    rows = list(
        Message.objects.filter(
            case__incidents=incident,
            channel_id=incident.channel_id,
            direction=Message.Direction.IN,
            sent_at__gte=incident.window_start,
        )
        .select_related("case", "case__customer", "identity")
        .order_by("sent_at", "id")[: limit + 1]
    )
    return rows[:limit], len(rows) > limit


def incident_cases(*, incident: Incident) -> QuerySet[Case]:
    """The incident's cases with customer, assignee and department, oldest first."""
    return (
        Case.objects.filter(incidents=incident)
        .select_related("customer", "assignee", "department")
        .order_by("pk")
    )


@dataclass(frozen=True)
class CaseRow:
    """One affected case as the incident page lists it, with what the bulk reply does to it."""

    case: Case
    gets_reply: bool
    skipped_why: str  # "", "closed" or "same_customer"
    answered_on: Case | None
    may_work: bool


def incident_alerts(*, incident: Incident) -> list:
    """The monitoring alerts linked to ``incident`` with their source, firing first, newest first."""
    return list(incident.alerts.select_related("source").order_by("-status", "-starts_at", "-id"))


def incident_pages(*, incident: Incident) -> list:
    """Who was paged for ``incident`` and who acknowledged, oldest first."""
    return list(incident.pages.select_related("user", "acknowledged_by").order_by("sent_at", "id"))
