"""Reads for the topics page: the top phrases of a range of weeks, one phrase's weeks and
examples, and the rows of the CSV export. Everything reads ``TopicWeek`` (the job's small
table); only the examples read messages, by id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from .. import permissions
from ..models import Case, Message, TopicState, TopicWeek

ORDERS = ("volume", "rising", "falling")
LIMIT = 50
EXAMPLES = 20


@dataclass(frozen=True)
class TopicFilters:
    """What the page shows: ``weeks`` weeks ending with the week of ``week`` (its Monday)."""

    week: date
    weeks: int = 8
    kind: str = TopicWeek.Kind.PHRASE
    channel_id: int | None = None
    department_id: int | None = None
    category: str | None = None
    words: int | None = None
    contains: str = ""
    order: str = "volume"
    # The departments the reader may see (None: all); a chosen department narrows it.
    department_ids: frozenset[int] | None = None

    @property
    def first_week(self) -> date:
        return self.week - timedelta(weeks=self.weeks - 1)

    @property
    def last_week(self) -> date:
        return self.week - timedelta(weeks=1)

    @property
    def week_list(self) -> list[date]:
        return [self.first_week + timedelta(weeks=i) for i in range(self.weeks)]

    def cells(self) -> QuerySet[TopicWeek]:
        """The table's rows these filters cover (all the weeks)."""
        q = Q(kind=self.kind, week__gte=self.first_week, week__lte=self.week)
        if self.department_ids is not None:
            q &= Q(department_id__in=self.department_ids)
        if self.department_id is not None:
            q &= Q(department_id=self.department_id)
        if self.channel_id is not None:
            q &= Q(channel_id=self.channel_id)
        if self.category is not None:
            q &= Q(category=self.category)
        if self.words is not None:
            q &= Q(words=self.words)
        if self.contains:
            q &= Q(phrase__contains=self.contains.lower())
        return TopicWeek.objects.filter(q)


@dataclass
class TopicRow:
    phrase: str
    words: int
    this_week: int
    last_week: int
    cases_this_week: int
    series: list[int] = field(default_factory=list)

    @property
    def change(self) -> int:
        return self.this_week - self.last_week

    @property
    def change_label(self) -> str:
        """ "+40%", "−25%", "new", "gone" or "±0"."""
        if not self.last_week:
            return "new" if self.this_week else "±0"
        if not self.this_week:
            return "gone"
        share = round(100 * self.change / self.last_week)
        return "±0" if share == 0 else (f"+{share}%" if share > 0 else f"−{-share}%")

    @property
    def trend(self) -> str:
        return "rising" if self.change > 0 else ("falling" if self.change < 0 else "steady")


def topic_list(filters: TopicFilters, *, limit: int = LIMIT) -> list[TopicRow]:
    """The top ``limit`` phrases by ``filters.order``, each with its weekly series. Two queries."""
    sums = {
        "this": Coalesce(Sum("messages", filter=Q(week=filters.week)), 0),
        "last": Coalesce(Sum("messages", filter=Q(week=filters.last_week)), 0),
        "cases_this": Coalesce(Sum("cases", filter=Q(week=filters.week)), 0),
    }
    # Ranked on the two weeks compared only: the earlier weeks are read for the 50 shown.
    two_weeks = filters.cells().filter(week__in=[filters.last_week, filters.week])
    grouped = two_weeks.values("phrase", "words").order_by().annotate(**sums)
    if filters.order == "rising":
        grouped = grouped.annotate(change=F("this") - F("last")).filter(change__gt=0)
        grouped = grouped.order_by("-change", "-this", "phrase")
    elif filters.order == "falling":
        grouped = grouped.annotate(change=F("this") - F("last")).filter(change__lt=0)
        grouped = grouped.order_by("change", "-last", "phrase")
    else:
        grouped = grouped.order_by("-this", "-last", "phrase")
    rows = [
        TopicRow(
            phrase=r["phrase"], words=r["words"], this_week=r["this"], last_week=r["last"],
            cases_this_week=r["cases_this"],
        )
        for r in grouped[:limit]
    ]  # fmt: skip
    if rows:
        weeks = {w: i for i, w in enumerate(filters.week_list)}
        by_phrase = {row.phrase: row for row in rows}
        for row in rows:
            row.series = [0] * filters.weeks
        per_week = (
            filters.cells()
            .filter(phrase__in=list(by_phrase))
            .values_list("phrase", "week")
            .order_by()
            .annotate(n=Sum("messages"))
        )
        for phrase, week, n in per_week:
            by_phrase[phrase].series[weeks[week]] += n
    return rows


@dataclass
class TopicDetail:
    phrase: str
    series: list[int]
    breakdown: list[tuple[str, str, str, int, int]]  # channel, department, category, messages, cases
    examples: list[Message]


def topic_detail(filters: TopicFilters, *, phrase: str, user) -> TopicDetail:
    """One phrase over the weeks: its count per week, this week's cells, and example messages
    (newest first) from cases ``user`` may see. Two queries."""
    cells = list(
        filters.cells()
        .filter(phrase=phrase)
        .select_related("channel", "department")
        .order_by("-week", "-messages", "pk")
    )
    weeks = {w: i for i, w in enumerate(filters.week_list)}
    series = [0] * filters.weeks
    breakdown = []
    ids: list[int] = []
    categories = dict(Case.Category.choices)
    for cell in cells:
        series[weeks[cell.week]] += cell.messages
        if cell.week == filters.week:
            breakdown.append(
                (
                    cell.channel.name if cell.channel else "—",
                    cell.department.name,
                    categories.get(cell.category) or "—",
                    cell.messages,
                    cell.cases,
                )
            )
        ids.extend(reversed(cell.examples))
    examples = []
    if ids:
        wanted = list(dict.fromkeys(ids))[: EXAMPLES * 3]
        found = {
            m.pk: m
            for m in Message.objects.filter(pk__in=wanted)
            .filter(case__in=Case.objects.filter(permissions.visible_cases_q(user)))
            .select_related("case", "channel")
        }
        examples = [found[i] for i in wanted if i in found][:EXAMPLES]
    return TopicDetail(phrase=phrase, series=series, breakdown=breakdown, examples=examples)


CSV_HEADER = ["phrase", "kind", "week", "channel", "department", "category", "messages", "cases"]


def topic_csv_rows(filters: TopicFilters) -> Iterator[tuple]:
    """Every cell the filters cover, week by week, read in chunks (for the streamed CSV)."""
    rows = (
        filters.cells()
        .order_by("week", "phrase", "channel__name", "department__name", "category")
        .values_list(
            "phrase", "kind", "week", "channel__name", "department__name", "category", "messages", "cases"
        )
    )
    for phrase, kind, week, channel, department, category, messages, cases in rows.iterator(chunk_size=2000):
        yield (phrase, kind, week.isoformat(), channel or "", department, category, messages, cases)


def topic_state() -> TopicState | None:
    return TopicState.objects.filter(pk=1).first()
