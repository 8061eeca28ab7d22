"""The desk queues, as the queue page and live updates read them.

A queue tab (``QUEUE_VIEWS``) is a scope and a set of statuses over open cases, sorted by
the next deadline (``queue_due``) then newest, and paged by keyset (``QueueCursor``), never
by OFFSET. ``case_queue_page`` reads a page as plain ``QueueRow`` values; ``queue_match``
applies the same rules to one row in memory, and ``live_queue_rows`` / ``queue_row`` load and
print rows that live updates push.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Case as DbCase
from django.db.models import CharField, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, NullIf, Substr

from customers.models import Customer

from .. import department_clock, handoff_selectors, permissions
from ..models import QUEUE_NO_DUE, QUEUE_WORK_STATUSES, Case, Message
from .search import search_candidates, search_q

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
    q: str = "",
    after: QueueCursor | None = None,
    limit: int | None = None,
) -> QuerySet[Case]:
    """Open cases of one queue tab that ``user`` may see, soonest due first, then newest.

    ``view`` is one of ``QUEUE_VIEWS``; filters are exact values (callers validate them);
    ``q`` is a desk search (:func:`search_q`).
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
    if q:
        candidates = search_candidates(q)
        queryset = (
            queryset.filter(pk__in=candidates) if candidates is not None else queryset.filter(search_q(q))
        )
    if after is not None:
        queryset = queryset.alias(queue_due=queue_due()).filter(_after(after))
    order = (queue_due().asc(), "-id")
    if limit is not None:
        queryset = Case.objects.filter(pk__in=queryset.order_by(*order).values("pk")[:limit])
    return (
        queryset.select_related("customer", "department", "assignee", "last_channel")
        .annotate(last_identity_label=_last_identity_label(), opening_words=_opening_words())
        .annotate(awaiting_acceptance=handoff_selectors.awaiting_acceptance())
        .annotate(department_since=department_clock.since_if_targeted())
        .order_by(*order)
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    """What one queue row shows (``cases/partials/queue_row.html``), as plain values.

    A page reads these straight from its one query: turning 51 joined rows into Case,
    Customer, Department, User and Channel objects made reading a page 60% dearer.
    :func:`queue_row` makes the same from a loaded case (live updates).
    """

    id: int
    reference: str
    subject: str
    status: str
    priority: str
    sla_state: str
    due_at: datetime | None
    last_inbound_at: datetime | None
    customer_id: int
    customer: str  # as str(customer) prints it
    customer_is_vip: bool
    department: str
    assignee_id: int | None
    assignee: str  # the assignee's name as the desk prints people; "" when unassigned
    last_channel_kind: str | None  # None: no channel yet
    last_identity_label: str
    opening_words: str
    awaiting_acceptance: bool = False  # handed to its department, not accepted yet
    # The department clock (cases.department_clock): when the case came to its department, and
    # that department's handling target; both None when the department has no target.
    department_since: datetime | None = None
    department_target_minutes: int | None = None

    @property
    def pk(self) -> int:
        return self.id


def person_name(*, first_name: str, last_name: str, email: str, username: str) -> str:
    """A user as the desk prints people: full name, else e-mail address, else username."""
    return f"{first_name} {last_name}".strip() or email or username


def user_name(user) -> str:
    """``person_name`` of a loaded user (the desk, the API and case events all print people so)."""
    return person_name(
        first_name=user.first_name, last_name=user.last_name, email=user.email, username=user.get_username()
    )


def queue_row(case: Case) -> QueueRow:
    """The queue row of a case loaded as :func:`live_queue_rows` loads it."""
    assignee = case.assignee
    return QueueRow(
        id=case.pk,
        reference=case.reference,
        subject=case.subject,
        status=case.status,
        priority=case.priority,
        sla_state=case.sla_state,
        due_at=case.due_at,
        last_inbound_at=case.last_inbound_at,
        customer_id=case.customer_id,
        customer=str(case.customer),
        customer_is_vip=case.customer.is_vip,
        department=str(case.department),
        assignee_id=case.assignee_id,
        assignee=user_name(assignee) if assignee is not None else "",
        last_channel_kind=case.last_channel.kind if case.last_channel_id is not None else None,
        last_identity_label=getattr(case, "last_identity_label", None) or "",
        opening_words=getattr(case, "opening_words", None) or "",
        awaiting_acceptance=bool(getattr(case, "awaiting_acceptance", False)),
        department_since=getattr(case, "department_since", None),
        department_target_minutes=case.department.handling_target_minutes,
    )


# The columns of a queue row, in the order _queue_row_from_values takes them.
QUEUE_ROW_COLUMNS = (
    *("id", "reference", "subject", "status", "priority", "sla_state", "due_at", "last_inbound_at"),
    *("customer_id", "customer__name", "customer__tier", "department__name"),
    *("assignee_id", "assignee__first_name", "assignee__last_name", "assignee__email", "assignee__username"),
    *("last_channel_id", "last_channel__kind", "last_identity_label", "opening_words", "awaiting_acceptance"),
    *("department_since", "department__handling_target_minutes"),
)


def _queue_row_from_values(values: tuple) -> QueueRow:
    (pk, reference, subject, status, priority, sla_state, due_at, last_inbound_at) = values[:8]
    (customer_id, customer_name, customer_tier, department_name) = values[8:12]
    (assignee_id, first_name, last_name, email, username) = values[12:17]
    (last_channel_id, last_channel_kind, last_identity_label, opening_words, awaiting) = values[17:22]
    (department_since, department_target_minutes) = values[22:]
    return QueueRow(
        id=pk,
        reference=reference,
        subject=subject,
        status=status,
        priority=priority,
        sla_state=sla_state,
        due_at=due_at,
        last_inbound_at=last_inbound_at,
        customer_id=customer_id,
        customer=Customer.label(customer_name, customer_id),
        customer_is_vip=customer_tier == Customer.Tier.VIP,  # Customer.is_vip
        department=department_name,
        assignee_id=assignee_id,
        assignee=(
            person_name(first_name=first_name, last_name=last_name, email=email, username=username)
            if assignee_id is not None
            else ""
        ),
        last_channel_kind=last_channel_kind if last_channel_id is not None else None,
        last_identity_label=last_identity_label or "",
        opening_words=opening_words or "",
        awaiting_acceptance=bool(awaiting),
        department_since=department_since,
        department_target_minutes=department_target_minutes,
    )


@dataclass
class QueuePage:
    cases: list[QueueRow]
    next_cursor: QueueCursor | None


def case_queue_page(*, page_size: int = QUEUE_PAGE_SIZE, **filters) -> QueuePage:
    """One page of ``case_queue`` as queue rows: fetches one row more than shown to know whether a
    next page exists."""
    values = case_queue(limit=page_size + 1, **filters).values_list(*QUEUE_ROW_COLUMNS)
    rows = [_queue_row_from_values(row) for row in values]
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    cursor = QueueCursor(due_at=rows[-1].due_at, id=rows[-1].pk) if has_more else None
    return QueuePage(cases=rows, next_cursor=cursor)


# --- Live updates --------------------------------------------------------------------------------

SORT_ID_SPAN = 10**19


def queue_key(due_at: datetime | None, case_id: int) -> str:
    """A string that sorts like the queue (next deadline first, then newest): desk.js places a pushed
    row by comparing it with its neighbours' keys."""
    due = (due_at or NO_DUE) - datetime(1, 1, 1, tzinfo=UTC)
    micros = (due.days * 86_400 + due.seconds) * 1_000_000 + due.microseconds
    return f"{micros:020d}.{SORT_ID_SPAN - case_id:020d}"


@dataclass(frozen=True)
class QueueWindow:
    """What one open queue page shows: a tab, its filters, and the part of the order it covers."""

    view: str = "department"
    channel_kind: str = ""
    priority: str = ""
    status: str = ""
    department_id: int | None = None
    q: str = ""
    # Rows after this cursor (a later page) ...
    after: QueueCursor | None = None
    # ... up to and including this one (there is a next page); None: to the end.
    until: QueueCursor | None = None


def queue_match(case: Case, *, user, window: QueueWindow) -> bool:
    """Whether ``case`` belongs on the page ``window`` describes for ``user``: the same rules as
    :func:`case_queue`, evaluated on one row in memory (live updates test every pushed row).

    The search text is not evaluated here; pages with a search only update rows they show.
    """
    user_id = user.pk if user and user.is_authenticated else None
    admin = permissions.is_admin(user)
    mine_departments = permissions.department_ids(user)
    in_department = admin or case.department_id in mine_departments
    work = in_department or (user_id is not None and case.assignee_id == user_id)
    scope = {
        "mine": user_id is not None and case.assignee_id == user_id,
        "department": in_department,
        "unassigned": in_department and case.assignee_id is None,
        "at_risk": work and case.sla_state in (Case.SlaState.AT_RISK, Case.SlaState.BREACHED),
        "monitoring": work,
    }.get(window.view, False)
    if not scope:
        return False
    if window.status:
        statuses = {window.status}
    elif window.view == "monitoring":
        statuses = {Case.Status.MONITORING}
    else:
        statuses = set(WORK_STATUSES)
    if case.status not in statuses:
        return False
    if window.channel_kind and (case.last_channel is None or case.last_channel.kind != window.channel_kind):
        return False
    if window.priority and case.priority != window.priority:
        return False
    if window.department_id is not None and case.department_id != window.department_id:
        return False
    key = queue_key(case.due_at, case.pk)
    if window.after is not None and key <= queue_key(window.after.due_at, window.after.id):
        return False
    return not (window.until is not None and key > queue_key(window.until.due_at, window.until.id))


def live_queue_rows(*, case_ids) -> dict[int, Case]:
    """Cases by id with everything a queue row shows (as :func:`case_queue` annotates them)."""
    ids = sorted({int(pk) for pk in case_ids})
    if not ids:
        return {}
    rows = (
        Case.objects.filter(pk__in=ids)
        .select_related("customer", "department", "assignee", "last_channel")
        .annotate(last_identity_label=_last_identity_label(), opening_words=_opening_words())
        .annotate(awaiting_acceptance=handoff_selectors.awaiting_acceptance())
        .annotate(department_since=department_clock.since_if_targeted())
    )
    return {case.pk: case for case in rows}


def work_case_ids(*, user, case_ids) -> set[int]:
    """Which of ``case_ids`` are ``user``'s work (their departments' or their own): what a queue may show."""
    ids = {int(pk) for pk in case_ids}
    if not ids:
        return set()
    return set(Case.objects.filter(_work_scope(user), pk__in=ids).values_list("pk", flat=True))
