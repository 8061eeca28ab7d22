"""The figures of the desk's report page, each one or a few GROUP BY statements.

Every function takes a period ``[start, end)`` (aware datetimes), the time zone days and
hours are counted in, and ``department_ids`` (None: every department), and returns plain
rows (tuples) in the order the CSV writes them, so the page, the CSV and the API share them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, tzinfo

from django.db import connection
from django.db.models import Count, F, Q
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, TruncDate

from ..models import Case, CaseEvent, Department
from ..sla import DEPARTMENT_MOVES
from . import _first_response_breached

# First-response buckets: (label, upper bound in minutes; None: no bound).
BUCKETS = (
    ("<15m", 15),
    ("15-30m", 30),
    ("30-60m", 60),
    ("1-2h", 120),
    ("2-4h", 240),
    ("4-8h", 480),
    (">8h", None),
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DONE_STATUSES = (Case.Status.RESOLVED, Case.Status.CLOSED)


def _scope(department_ids: set[int] | None, prefix: str = "") -> Q:
    return Q() if department_ids is None else Q(**{f"{prefix}department_id__in": department_ids})


def days(start: datetime, end: datetime, zone: tzinfo) -> list[date]:
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def promises_per_day(*, start, end, zone, department_ids=None) -> list[tuple[date, str, int, int]]:
    """(day, channel, kept, broken) of first responses given that day; one statement."""
    rows = (
        Case.objects.filter(
            _scope(department_ids),
            first_responded_at__gte=start,
            first_responded_at__lt=end,
            first_inbound_at__isnull=False,
        )
        .annotate(broken=_first_response_breached(), day=TruncDate("first_responded_at", tzinfo=zone))
        .values("day", "origin_channel__name")
        .annotate(n=Count("pk"), broken_n=Count("pk", filter=Q(broken=True)))
        .order_by("day", "origin_channel__name")
    )
    return [(r["day"], r["origin_channel__name"] or "—", r["n"] - r["broken_n"], r["broken_n"]) for r in rows]


def first_response_buckets(*, start, end, zone, department_ids=None) -> list[tuple[str, int]]:
    """(bucket, cases) of first-response times for first responses given in the period; one statement."""
    wait = F("first_responded_at") - F("first_inbound_at")
    aggregates = {}
    low = None
    for i, (_label, high) in enumerate(BUCKETS):
        condition = Q()
        if low is not None:
            condition &= Q(wait__gte=timedelta(minutes=low))
        if high is not None:
            condition &= Q(wait__lt=timedelta(minutes=high))
        aggregates[f"b{i}"] = Count("pk", filter=condition)
        low = high
    totals = (
        Case.objects.filter(
            _scope(department_ids),
            first_responded_at__gte=start,
            first_responded_at__lt=end,
            first_inbound_at__isnull=False,
        )
        .annotate(wait=wait)
        .aggregate(**aggregates)
    )
    return [(label, totals[f"b{i}"]) for i, (label, _high) in enumerate(BUCKETS)]


def volume_by_hour(*, start, end, zone, department_ids=None) -> list[tuple[str, str, int, int]]:
    """(channel, weekday, hour, cases opened) for every hour of the week with cases; one statement."""
    rows = (
        Case.objects.filter(_scope(department_ids), created_at__gte=start, created_at__lt=end)
        .annotate(
            weekday=ExtractIsoWeekDay("created_at", tzinfo=zone), hour=ExtractHour("created_at", tzinfo=zone)
        )
        .values("origin_channel__name", "weekday", "hour")
        .annotate(n=Count("pk"))
        .order_by("origin_channel__name", "weekday", "hour")
    )
    return [(r["origin_channel__name"] or "—", WEEKDAYS[r["weekday"] - 1], r["hour"], r["n"]) for r in rows]


def backlog_per_day(*, start, end, zone, department_ids=None) -> list[tuple[date, int, int, int, int]]:
    """(day, opened, done, backlog at the end of the day, breaches) per day; three statements.

    Backlog: cases opened and not yet resolved or closed; a case counts as done at its
    resolution (else its closing) when it is resolved or closed now.
    """
    scope = _scope(department_ids)
    done_at = Q(status__in=DONE_STATUSES) & (
        Q(resolved_at__lt=start) | Q(resolved_at__isnull=True, closed_at__lt=start)
    )
    before = Case.objects.filter(scope, created_at__lt=start).aggregate(
        opened=Count("pk"), done=Count("pk", filter=done_at)
    )
    opened = dict(
        Case.objects.filter(scope, created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
        .order_by()
    )
    done: dict[date, int] = {}
    for field in ("resolved_at", "closed_at"):
        extra = Q(resolved_at__isnull=True) if field == "closed_at" else Q()
        for day, n in (
            Case.objects.filter(
                scope, extra, status__in=DONE_STATUSES, **{f"{field}__gte": start, f"{field}__lt": end}
            )
            .annotate(day=TruncDate(field, tzinfo=zone))
            .values("day")
            .annotate(n=Count("pk"))
            .values_list("day", "n")
            .order_by()
        ):
            done[day] = done.get(day, 0) + n
    breaches = dict(
        CaseEvent.objects.filter(
            _scope(department_ids, "case__"),
            kind=CaseEvent.Kind.SLA,
            after__sla_state=Case.SlaState.BREACHED,
            created_at__gte=start,
            created_at__lt=end,
        )
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
        .order_by()
    )
    backlog = before["opened"] - before["done"]
    result = []
    for day in days(start, end, zone):
        backlog += opened.get(day, 0) - done.get(day, 0)
        result.append((day, opened.get(day, 0), done.get(day, 0), backlog, breaches.get(day, 0)))
    return result


def _json_department(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"({column}->>'department')::integer"
    return f"CAST(json_extract({column}, '$.department') AS integer)"


def department_clock(*, start, end, zone, department_ids=None, now=None) -> list[tuple]:
    """(department, target minutes, stays, within target, over target, average minutes, longest minutes).

    A stay is the time a case spent with one department: from its creation (with the
    department before its first move) or from a move into the department (transferred,
    escalated, handed back) to the next move, its resolution or closing, or now. Stays that
    began in the period count; wall-clock time. One statement (a window over the moves).
    """
    from django.utils import timezone

    now = now or timezone.now()
    case_t, event_t = Case._meta.db_table, CaseEvent._meta.db_table
    kinds = [str(k) for k in DEPARTMENT_MOVES]
    placeholders = ", ".join(["%s"] * len(kinds))
    first_before = f"""(SELECT {_json_department("e0.before")} FROM {event_t} e0
        WHERE e0.case_id = c.id AND e0.kind IN ({placeholders}) ORDER BY e0.created_at, e0.id LIMIT 1)"""
    ended = "CASE WHEN c.status IN (%s, %s) THEN COALESCE(c.resolved_at, c.closed_at, %s) ELSE %s END"
    scope_sql, scope_params = "", []
    if department_ids is not None:
        ids = sorted(department_ids) or [-1]
        scope_sql = f"WHERE s.department_id IN ({', '.join(['%s'] * len(ids))})"
        scope_params = ids
    sql = f"""
    WITH moves AS (
        SELECT c.id AS case_id, c.created_at AS entered, COALESCE({first_before}, c.department_id) AS department_id,
               0 AS seq, {ended} AS case_end
        FROM {case_t} c
        WHERE c.created_at >= %s AND c.created_at < %s
        UNION ALL
        SELECT e.case_id, e.created_at, {_json_department("e.after")}, e.id,
               (SELECT {ended} FROM {case_t} c WHERE c.id = e.case_id)
        FROM {event_t} e
        WHERE e.kind IN ({placeholders}) AND e.created_at >= %s
    ), stays AS (
        SELECT department_id, entered,
               COALESCE(LEAD(entered) OVER (PARTITION BY case_id ORDER BY entered, seq), case_end) AS left_at
        FROM moves
    )
    SELECT s.department_id,
           COUNT(*),
           SUM(CASE WHEN d.handling_target_minutes IS NOT NULL
                    AND {_minutes("s.left_at - s.entered")} <= d.handling_target_minutes THEN 1 ELSE 0 END),
           SUM(CASE WHEN d.handling_target_minutes IS NOT NULL
                    AND {_minutes("s.left_at - s.entered")} > d.handling_target_minutes THEN 1 ELSE 0 END),
           AVG({_minutes("s.left_at - s.entered")}),
           MAX({_minutes("s.left_at - s.entered")})
    FROM stays s JOIN {Department._meta.db_table} d ON d.id = s.department_id
    {scope_sql}
    {"AND" if scope_sql else "WHERE"} s.entered >= %s AND s.entered < %s
    GROUP BY s.department_id
    """
    done = [str(s) for s in DONE_STATUSES]
    ended_params = [*done, now, now]
    # In the statement's order: first move's department, end, period; moves since the start; scope.
    params = [*kinds, *ended_params, start, end, *ended_params, *kinds, start, *scope_params, start, end]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {row[0]: row for row in cursor.fetchall()}
    departments = (
        Department.objects.filter(pk__in=found)
        .order_by("name")
        .values_list("pk", "name", "handling_target_minutes")
    )
    result = []
    for pk, name, target in departments:
        _id, stays, within, over, average, longest = found[pk]
        result.append(
            (
                name,
                target,
                stays,
                within or 0,
                over or 0,
                round(float(average or 0)),
                round(float(longest or 0)),
            )
        )
    return result


def _minutes(interval_sql: str) -> str:
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({interval_sql})) / 60.0)"
    # SQLite stores datetimes as text: julianday differences, in days.
    left, right = interval_sql.split(" - ")
    return f"((julianday({left}) - julianday({right})) * 1440.0)"


FIGURES = {
    "promises": (promises_per_day, ("day", "channel", "kept", "broken")),
    "first-response": (first_response_buckets, ("bucket", "cases")),
    "volume": (volume_by_hour, ("channel", "weekday", "hour", "cases")),
    "backlog": (backlog_per_day, ("day", "opened", "resolved_or_closed", "backlog", "breaches")),
    "department-clock": (
        department_clock,
        (
            "department",
            "target_minutes",
            "stays",
            "within_target",
            "over_target",
            "average_minutes",
            "longest_minutes",
        ),
    ),
}


def figure_rows(name: str, **period) -> Iterator[tuple]:
    function, _header = FIGURES[name]
    yield from function(**period)
