"""Reads that more than one caller needs; each owns its joins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Case as DbCase
from django.db.models import CharField, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, NullIf, Substr

from customers.models import Identity

from . import permissions
from .models import QUEUE_NO_DUE, QUEUE_WORK_STATUSES, Case, Department, Message

# Queue paging: keyset ("rows after the last one shown", by (queue_due, id)), not OFFSET
# pages with a total. A Paginator counts the whole queue on every view and OFFSET reads
# and throws away every earlier row, so page 200 of 100,000 open cases would cost 200
# times page 1. Keyset reads one page plus one row (to know a next page exists) at any
# depth; the price is "next page" / "first page" links instead of numbered pages, which
# is how agents work a queue anyway (its head is what is due next).
QUEUE_PAGE_SIZE = 50
# Where cases without a running clock sort: after every real deadline.
NO_DUE = QUEUE_NO_DUE

# Queue tabs. Work queues hold cases someone still has to act on; monitoring (venting
# that needs no answer, no clock) has its own tab so it never crowds them.
QUEUE_VIEWS = ("mine", "department", "unassigned", "at_risk", "monitoring")
WORK_STATUSES = tuple(QUEUE_WORK_STATUSES)


def user_department_ids(*, user) -> list[int]:
    return sorted(permissions.department_ids(user))


def user_departments(*, user) -> list[Department]:
    """The departments ``user`` belongs to, by name; cached on the user for the request."""
    cached = getattr(user, "_caseline_departments", None)
    if cached is None:
        ids = permissions.department_ids(user)
        cached = list(Department.objects.filter(pk__in=ids).order_by("name")) if ids else []
        user._caseline_departments = cached
    return cached


def queue_departments(*, user) -> list[Department]:
    """Departments whose queues ``user`` may filter on: all active ones for admins, else their own."""
    if permissions.is_admin(user):
        return list(Department.objects.filter(is_active=True).order_by("name"))
    return user_departments(user=user)


def user_has_open_cases(*, user) -> bool:
    return Case.objects.filter(assignee=user, status__in=WORK_STATUSES).exists()


@dataclass(frozen=True)
class QueueCursor:
    """Where the next page of a queue starts: the last row's (due_at, id).

    Serialised as ``<epoch microseconds>_<id>`` or ``n_<id>`` when the row had no due time.
    """

    due_at: datetime | None
    id: int

    def encode(self) -> str:
        if self.due_at is None:
            return f"n_{self.id}"
        delta = self.due_at - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}_{self.id}"

    @classmethod
    def decode(cls, raw: str) -> QueueCursor:
        """Parse a cursor; raises ``ValueError`` on anything malformed."""
        due, sep, pk = (raw or "").partition("_")
        if not sep or not pk.isdigit():
            raise ValueError("malformed cursor")
        if due == "n":
            return cls(due_at=None, id=int(pk))
        if not due.lstrip("-").isdigit():
            raise ValueError("malformed cursor")
        micros = int(due)
        try:
            due_at = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("cursor time out of range") from None
        return cls(due_at=due_at.replace(microsecond=micros % 1_000_000), id=int(pk))


def queue_due() -> Coalesce:
    """The queue's sort key: the next deadline, or ``NO_DUE`` for a case with no running clock.

    One key without NULLs keeps "the rows after this cursor" a single range of an index on
    (this expression, id DESC), so a deep page is as cheap as the first.
    """
    return Coalesce("due_at", Value(NO_DUE))


def _after(cursor: QueueCursor) -> Q:
    """Rows strictly after ``cursor`` in the order (queue_due ASC, id DESC); needs the ``queue_due`` alias."""
    due = cursor.due_at or NO_DUE
    return Q(queue_due__gte=due) & (Q(queue_due__gt=due) | Q(id__lt=cursor.id))


def _last_identity_label() -> Subquery:
    """The handle (or name, or platform id) of the identity the customer last wrote from."""
    return Subquery(
        Message.objects.filter(case=OuterRef("pk"), direction=Message.Direction.IN, identity__isnull=False)
        .order_by("-sent_at", "-id")
        .annotate(
            label=Coalesce(
                NullIf(F("identity__handle"), Value("")),
                NullIf(F("identity__display_name"), Value("")),
                F("identity__platform_id"),
            )
        )
        .values("label")[:1],
        output_field=CharField(),
    )


def _opening_words() -> DbCase:
    """For cases without a subject: the start of the first customer message.

    Inside a CASE so PostgreSQL runs the subquery only for rows that lack a subject.
    """
    first = Subquery(
        Message.objects.filter(case=OuterRef("pk"), direction=Message.Direction.IN)
        .order_by("sent_at", "id")
        .annotate(snippet=Substr("text", 1, 140))
        .values("snippet")[:1],
        output_field=CharField(),
    )
    return DbCase(When(subject="", then=first), default=Value(""), output_field=CharField())


def _work_scope(user) -> Q:
    """Cases that are ``user``'s work: their departments' and their own (admins: all).

    Narrower than ``permissions.visible_cases_q`` (followed cases of other departments
    stay reachable on the case page but are not queue work), so it never shows more
    than the user may see, and it needs no join, hence no DISTINCT.
    """
    if permissions.is_admin(user):
        return Q()
    if not (user and user.is_authenticated):
        return Q(pk__in=[])
    return Q(department_id__in=permissions.department_ids(user)) | Q(assignee=user)


def _department_scope(user) -> Q:
    if permissions.is_admin(user):
        return Q()
    return Q(department_id__in=permissions.department_ids(user))


def case_queue(
    *,
    user,
    view: str = "department",
    channel_kind: str = "",
    priority: str = "",
    status: str = "",
    department_id: int | None = None,
    after: QueueCursor | None = None,
    limit: int | None = None,
) -> QuerySet[Case]:
    """Open cases of one queue tab that ``user`` may see, soonest due first, then newest.

    ``view`` is one of ``QUEUE_VIEWS``; filters are exact values (callers validate them).
    Rows carry what a queue row shows: customer, department, assignee, last channel,
    ``last_identity_label`` and ``opening_words``. Paging is by ``after`` (keyset),
    never by OFFSET, so a deep page costs what the first does.

    With ``limit``, the page is chosen on the case table alone (an id subquery) and only
    its rows are joined: sorting tens of thousands of open cases is then a narrow top-N
    sort instead of one over every joined customer row (one statement either way). An
    index on (``queue_due()``, id DESC) for open cases turns that sort into a range read.
    """
    if view not in QUEUE_VIEWS:
        raise ValueError(f"unknown queue view {view!r}")
    scope = {
        "mine": Q(assignee=user) if user and user.is_authenticated else Q(pk__in=[]),
        "department": _department_scope(user),
        "unassigned": _department_scope(user) & Q(assignee__isnull=True),
        "at_risk": _work_scope(user) & Q(sla_state__in=[Case.SlaState.AT_RISK, Case.SlaState.BREACHED]),
        "monitoring": _work_scope(user),
    }[view]
    if status:
        statuses = [status]
    elif view == "monitoring":
        statuses = [Case.Status.MONITORING]
    else:
        statuses = list(WORK_STATUSES)
    queryset = Case.objects.filter(scope, status__in=statuses)
    if channel_kind:
        queryset = queryset.filter(last_channel__kind=channel_kind)
    if priority:
        queryset = queryset.filter(priority=priority)
    if department_id is not None:
        queryset = queryset.filter(department_id=department_id)
    if after is not None:
        queryset = queryset.alias(queue_due=queue_due()).filter(_after(after))
    order = (queue_due().asc(), "-id")
    if limit is not None:
        queryset = Case.objects.filter(pk__in=queryset.order_by(*order).values("pk")[:limit])
    return (
        queryset.select_related("customer", "department", "assignee", "last_channel")
        .annotate(last_identity_label=_last_identity_label(), opening_words=_opening_words())
        .order_by(*order)
    )


@dataclass
class QueuePage:
    cases: list[Case]
    next_cursor: QueueCursor | None


def case_queue_page(*, page_size: int = QUEUE_PAGE_SIZE, **filters) -> QueuePage:
    """One page of ``case_queue``: fetches one row more than shown to know whether a next page exists."""
    rows = list(case_queue(limit=page_size + 1, **filters))
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    cursor = QueueCursor(due_at=rows[-1].due_at, id=rows[-1].pk) if has_more else None
    return QueuePage(cases=rows, next_cursor=cursor)


def case_for_page(*, user, reference: str) -> Case | None:
    """The case ``reference`` with what its page header shows, or None when ``user`` may not see it.

    Unknown and forbidden look the same to the caller, so pages answer 404 for both.
    """
    case = (
        Case.objects.select_related("customer", "department", "assignee", "last_channel", "origin_channel")
        .filter(reference=reference)
        .first()
    )
    if case is None or not permissions.can_view_case(user, case):
        return None
    return case


def case_timeline(*, case: Case) -> QuerySet[Message]:
    """Every message of ``case`` in time order, with author, identity, channel and attachments."""
    return (
        Message.objects.filter(case=case)
        .select_related("channel", "identity", "author")
        .prefetch_related(Prefetch("attachments"))
        .order_by("sent_at", "id")
    )


def customer_identities(*, customer) -> list[Identity]:
    return list(customer.identities.order_by("kind", "handle", "platform_id"))


def customer_other_cases(*, user, case: Case, limit: int = 10) -> list[Case]:
    """The customer's other cases that ``user`` may see, newest first."""
    return list(
        Case.objects.filter(permissions.visible_cases_q(user), customer_id=case.customer_id)
        .exclude(pk=case.pk)
        .select_related("department")
        .distinct()
        .order_by("-created_at")[:limit]
    )
