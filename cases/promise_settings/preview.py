"""The due-time preview: when a first message arriving at a given moment would be due under a
promise (and its calendar), each clock shown in the calendar's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from .. import sla
from ..models import BusinessCalendar, Case, ServicePromise

# --- The preview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockPreview:
    name: str
    label: str
    minutes: int
    due: datetime
    at_risk: datetime


@dataclass(frozen=True)
class DuePreview:
    arrival: datetime
    zone: str
    clocks: list[ClockPreview]

    @property
    def first(self) -> ClockPreview:
        return self.clocks[0]


def display_zone(calendar: BusinessCalendar | None, default: str) -> ZoneInfo:
    """Times of a promise are shown in its calendar's zone (24/7: the desk's display zone)."""
    return ZoneInfo(calendar.time_zone if calendar is not None and not calendar.always_open else default)


def due_preview(
    *, promise: ServicePromise, arrival: datetime, priority: str = Case.Priority.NORMAL
) -> DuePreview:
    """When each clock of ``promise`` started by a message arriving at ``arrival`` is due.

    Computed by the clock code itself (``cases.sla``: the target with its priority
    override, counted in working minutes on the calendar), so the preview is what a case
    would get. ``promise`` may be unsaved (the form's values). Raises ValueError when the
    calendar has no open hours within ``sla.MAX_SEARCH_DAYS``.
    """
    clocks = []
    for name, label in (
        ("first_response_due_at", "First response"),
        ("next_response_due_at", "Next response"),
        ("resolution_due_at", "Resolution"),
    ):
        due, risk = sla._clock(promise, name, arrival, priority)
        clocks.append(
            ClockPreview(
                name=sla.CLOCK_NAMES[name],
                label=label,
                minutes=sla.target_minutes(promise, name, priority),
                due=due.astimezone(arrival.tzinfo),
                at_risk=risk.astimezone(arrival.tzinfo),
            )
        )
    return DuePreview(arrival=arrival, zone=str(arrival.tzinfo), clocks=clocks)
