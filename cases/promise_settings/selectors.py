"""Reads for the settings pages: channels with their promises, calendars and the channels that
use one, a channel with its promise and its department's breach ladder, the ladder step
that applies, and the recent configuration audit entries.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditlog.models import LogEntry
from django.db.models import Prefetch, Q

from connectors.models import Channel

from ..models import BusinessCalendar, EscalationPath, ServicePromise
from .rules import AUDIT_ENTRIES_SHOWN

# --- Reads for the settings pages -----------------------------------------------------------------


def channels_with_promises() -> list[Channel]:
    return list(
        Channel.objects.select_related("department", "promise", "promise__calendar").order_by("kind", "name")
    )


def calendars() -> list[BusinessCalendar]:
    return list(BusinessCalendar.objects.order_by("name"))


def calendar_users(calendar: BusinessCalendar) -> list[Channel]:
    """Channels whose promise counts on ``calendar``."""
    return list(Channel.objects.filter(promise__calendar=calendar).order_by("kind", "name"))


def channel_for_settings(channel_id: int) -> Channel | None:
    """A channel with its department, promise, calendar and its department's breach ladder rows."""
    ladder = EscalationPath.objects.filter(trigger=EscalationPath.Trigger.SLA_BREACH).select_related(
        "to_department"
    )
    return (
        Channel.objects.select_related("department", "promise", "promise__calendar")
        .prefetch_related(
            Prefetch(
                "department__paths_out", queryset=ladder.order_by("order", "id"), to_attr="breach_paths"
            ),
            Prefetch(
                "department__channels", queryset=Channel.objects.order_by("name"), to_attr="all_channels"
            ),
        )
        .filter(pk=channel_id)
        .first()
    )


def applying_path(paths: list[EscalationPath]) -> EscalationPath | None:
    """The path whose ladder the sweep climbs: the active one of lowest order to an active
    department (the rule of ``cases.escalation._ladder_paths``)."""
    return next((p for p in paths if p.is_active and p.to_department.is_active), None)


def recent_audit_entries(
    objects: Iterable[tuple[type, int]], *, limit: int = AUDIT_ENTRIES_SHOWN
) -> list[LogEntry]:
    """The newest audit entries of the given (model, pk) pairs, with their actors, in one query."""
    by_model: dict[type, set[int]] = {}
    for model, pk in objects:
        by_model.setdefault(model, set()).add(pk)
    if not by_model:
        return []
    which = Q()
    for model, pks in by_model.items():
        which |= Q(
            content_type__app_label=model._meta.app_label,
            content_type__model=model._meta.model_name,
            object_id__in=sorted(pks),
        )
    return list(
        LogEntry.objects.filter(which)
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-id")[:limit]
    )


def every_settings_entry(*, limit: int = AUDIT_ENTRIES_SHOWN) -> list[LogEntry]:
    """The newest audit entries of every promise, breach ladder and calendar."""
    kinds = Q()
    for model in (ServicePromise, BusinessCalendar):
        kinds |= Q(content_type__app_label=model._meta.app_label, content_type__model=model._meta.model_name)
    return list(
        LogEntry.objects.filter(kinds)
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-id")[:limit]
    )
