"""Supervisor reports, computed in the database from cases and their audit trail.

Definitions (per channel — the channel the case started on — and per department — the
department that owns the case now), over a period ``[start, end)``:

- **first responses given**: cases whose first response was sent in the period;
- **promises kept / broken**: of those, the ones whose first-response clock was
  (``broken``) or was not (``kept``) marked breached by the sweep (an ``sla`` CaseEvent
  with ``clock=first_response`` and ``sla_state=breached``);
- **breaches in the period**: every ``sla`` breached event in the period, any clock;
- **first-response time**: median and 90th percentile of first response minus first
  customer message, for the cases above (PostgreSQL's ``percentile_cont``; the embedded
  SQLite database has no percentile aggregate, so there the values are fetched and
  ranked in Python);
- **at risk now**: open cases whose clock is at risk or breached at this moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.aggregates import Aggregate
from django.db.models.fields import DurationField

from ..models import Case, CaseEvent

GROUPINGS = {"channel": "origin_channel__name", "department": "department__name"}


class Percentile(Aggregate):
    """``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`` (PostgreSQL)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass
class ReportRow:
    label: str
    responded: int = 0
    kept: int = 0
    broken: int = 0
    breaches: int = 0
    at_risk_now: int = 0
    median_first_response: timedelta | None = None
    p90_first_response: timedelta | None = None

    @property
    def kept_share(self) -> float | None:
        return self.kept / self.responded if self.responded else None

    @property
    def median_label(self) -> str:
        return duration_label(self.median_first_response)

    @property
    def p90_label(self) -> str:
        return duration_label(self.p90_first_response)


def duration_label(value: timedelta | None) -> str:
    """A wait as people say it: "45 min", "3 h 05 min", "2 d 4 h"."""
    if value is None:
        return "—"
    minutes = round(value.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@dataclass
class Report:
    start: datetime
    end: datetime
    group_by: str
    rows: list[ReportRow] = field(default_factory=list)


def _first_response_breached() -> Exists:
    return Exists(
        CaseEvent.objects.filter(
            case=OuterRef("pk"),
            kind=CaseEvent.Kind.SLA,
            after__clock="first_response",
            after__sla_state=Case.SlaState.BREACHED,
        )
    )


def _percentiles_in_python(cases: QuerySet[Case], key: str) -> dict[str, tuple[timedelta, timedelta]]:
    by_label: dict[str, list[timedelta]] = {}
    for label, first_in, first_out in cases.values_list(key, "first_inbound_at", "first_responded_at"):
        by_label.setdefault(label or "—", []).append(first_out - first_in)
    result = {}
    for label, values in by_label.items():
        values.sort()
        result[label] = (_rank(values, 0.5), _rank(values, 0.9))
    return result


def _rank(values: list[timedelta], fraction: float) -> timedelta:
    """Linear interpolation between closest ranks, as percentile_cont does."""
    position = (len(values) - 1) * fraction
    low, high = int(position), min(int(position) + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def promise_report(
    *, start: datetime, end: datetime, group_by: str = "channel", department_ids: set[int] | None = None
) -> Report:
    """Promises kept and broken, first-response times and cases at risk, grouped by channel or department.

    ``department_ids`` limits the report to cases those departments own (None: all).
    Seven queries on PostgreSQL whatever the period or the number of cases.
    """
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {sorted(GROUPINGS)}")
    key = GROUPINGS[group_by]
    scope = Q() if department_ids is None else Q(department_id__in=department_ids)
    case_scope = Q() if department_ids is None else Q(case__department_id__in=department_ids)
    responded = Case.objects.filter(
        scope, first_responded_at__gte=start, first_responded_at__lt=end, first_inbound_at__isnull=False
    ).annotate(broken=_first_response_breached())
    wait = F("first_responded_at") - F("first_inbound_at")
    aggregates = {
        "responded": Count("pk"),
        "broken_count": Count("pk", filter=Q(broken=True)),
    }
    if settings.IS_POSTGRES:
        aggregates["p50"] = Percentile(wait, 0.5)
        aggregates["p90"] = Percentile(wait, 0.9)
    rows: dict[str, ReportRow] = {}
    for values in responded.values(key).annotate(**aggregates).order_by(key):
        label = values[key] or "—"
        rows[label] = ReportRow(
            label=label,
            responded=values["responded"],
            broken=values["broken_count"],
            kept=values["responded"] - values["broken_count"],
            median_first_response=values.get("p50"),
            p90_first_response=values.get("p90"),
        )
    if not settings.IS_POSTGRES:
        for label, (p50, p90) in _percentiles_in_python(responded, key).items():
            rows[label].median_first_response, rows[label].p90_first_response = p50, p90

    event_key = f"case__{key}"
    breaches = (
        CaseEvent.objects.filter(
            case_scope,
            kind=CaseEvent.Kind.SLA,
            after__sla_state=Case.SlaState.BREACHED,
            created_at__gte=start,
            created_at__lt=end,
        )
        .values(event_key)
        .annotate(n=Count("pk"))
        .order_by(event_key)
    )
    for values in breaches:
        label = values[event_key] or "—"
        rows.setdefault(label, ReportRow(label=label)).breaches = values["n"]

    at_risk = (
        Case.objects.filter(
            scope,
            status__in=Case.OPEN_STATUSES,
            sla_state__in=[Case.SlaState.AT_RISK, Case.SlaState.BREACHED],
        )
        .values(key)
        .annotate(n=Count("pk"))
        .order_by(key)
    )
    for values in at_risk:
        label = values[key] or "—"
        rows.setdefault(label, ReportRow(label=label)).at_risk_now = values["n"]
    return Report(start=start, end=end, group_by=group_by, rows=[rows[k] for k in sorted(rows)])
