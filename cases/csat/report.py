"""CSAT figures per channel, department and agent: one GROUP BY statement each.

Over a period ``[start, end)``, the population is the surveys *sent* in the period (their
answers count whenever they came, so a survey's response and its rating stay in the
period it was sent in). Each row:

- **sent**: surveys sent; **answered**: of those, answered;
- **response rate**: answered / sent, in per cent;
- **average**: the mean rating of the answered (1-5);
- **satisfied**: answers rated 4 or 5; **CSAT**: satisfied / answered, in per cent (the
  usual definition of a CSAT score).

The department and agent are those the case had when it was resolved (the survey's own
columns), so a later transfer does not move the credit. ``department_ids`` (None: every
department) scopes by the survey's department.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Count, Q, Sum

from ..models import SatisfactionSurvey
from ..selectors import person_name

GROUPS = ("channel", "department", "agent")
GROUP_LABELS = {"channel": "Channel", "department": "Department", "agent": "Agent"}
CSV_HEADER = [
    "Grouping",
    "Name",
    "Sent",
    "Answered",
    "Response rate %",
    "Average rating",
    "Satisfied (4-5)",
    "CSAT %",
]


@dataclass(frozen=True)
class CsatRow:
    label: str
    sent: int
    answered: int
    rating_sum: int
    satisfied: int

    @property
    def response_rate(self) -> float | None:
        return round(100 * self.answered / self.sent, 1) if self.sent else None

    @property
    def average(self) -> float | None:
        return round(self.rating_sum / self.answered, 2) if self.answered else None

    @property
    def csat(self) -> float | None:
        return round(100 * self.satisfied / self.answered, 1) if self.answered else None

    def as_csv(self, grouping: str) -> list:
        blank = ""
        return [
            GROUP_LABELS[grouping],
            self.label,
            self.sent,
            self.answered,
            blank if self.response_rate is None else self.response_rate,
            blank if self.average is None else self.average,
            self.satisfied,
            blank if self.csat is None else self.csat,
        ]


def _surveys(*, start, end, department_ids):
    surveys = SatisfactionSurvey.objects.filter(sent_at__gte=start, sent_at__lt=end)
    if department_ids is not None:
        surveys = surveys.filter(department_id__in=department_ids)
    return surveys


_FIGURES = {
    "sent": Count("pk"),
    "answered": Count("pk", filter=Q(rating__isnull=False)),
    "rating_sum": Sum("rating", default=0),
    "satisfied": Count("pk", filter=Q(rating__gte=4)),
}
_COLUMNS = {
    "channel": ("channel_id", "channel__name", "channel__kind"),
    "department": ("department_id", "department__name"),
    "agent": ("agent_id", "agent__first_name", "agent__last_name", "agent__email", "agent__username"),
}


def _label(grouping: str, row: dict) -> str:
    if grouping == "channel":
        return row["channel__name"] or "No channel"
    if grouping == "department":
        return row["department__name"]
    if row["agent_id"] is None:
        return "Unassigned"
    return person_name(
        first_name=row["agent__first_name"],
        last_name=row["agent__last_name"],
        email=row["agent__email"],
        username=row["agent__username"],
    )


def csat_rows(grouping: str, *, start, end, department_ids=None) -> list[CsatRow]:
    """The rows of one grouping (``channel``, ``department`` or ``agent``), by name; one statement."""
    columns = _COLUMNS[grouping]
    rows = (
        _surveys(start=start, end=end, department_ids=department_ids)
        .values(*columns)
        .annotate(**_FIGURES)
        .order_by(*columns)
    )
    made = [
        CsatRow(
            label=_label(grouping, row),
            sent=row["sent"],
            answered=row["answered"],
            rating_sum=row["rating_sum"],
            satisfied=row["satisfied"],
        )
        for row in rows
    ]
    return sorted(made, key=lambda r: r.label.casefold())


def csat_report(*, start, end, department_ids=None) -> dict[str, list[CsatRow]]:
    """Every grouping's rows: three statements."""
    return {
        grouping: csat_rows(grouping, start=start, end=end, department_ids=department_ids)
        for grouping in GROUPS
    }


def total(rows: list[CsatRow]) -> CsatRow:
    """All of one grouping's rows added up (every grouping adds up to the same)."""
    return CsatRow(
        label="All",
        sent=sum(r.sent for r in rows),
        answered=sum(r.answered for r in rows),
        rating_sum=sum(r.rating_sum for r in rows),
        satisfied=sum(r.satisfied for r in rows),
    )


def csv_rows(*, start, end, department_ids=None) -> Iterator[list]:
    """The CSV's rows after its header: each grouping's rows, then the total."""
    report = csat_report(start=start, end=end, department_ids=department_ids)
    for grouping in GROUPS:
        for row in report[grouping]:
            yield row.as_csv(grouping)
    yield ["Total", "All", *total(report["channel"]).as_csv("channel")[2:]]


def recent_comments(*, start, end, department_ids=None, limit: int = 20) -> list[SatisfactionSurvey]:
    """The latest answered surveys with a comment, newest first, with their case; one statement."""
    return list(
        _surveys(start=start, end=end, department_ids=department_ids)
        .filter(rating__isnull=False)
        .exclude(comment="")
        .select_related("case", "channel")
        .order_by("-answered_at", "-id")[:limit]
    )
