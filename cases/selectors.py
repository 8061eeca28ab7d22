"""Reads that more than one caller needs; each owns its joins."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case as DbCase
from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    FilteredRelation,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Lower, NullIf, Substr

from customers.identifiers import normalize_platform_id
from customers.models import Customer, CustomerMerge, Identity, IdentitySuggestion

from . import department_clock, fulltext, handoff_selectors, permissions
from .models import (
    QUEUE_NO_DUE,
    QUEUE_WORK_STATUSES,
    REFERENCE_PATTERN,
    Attachment,
    Case,
    CaseEvent,
    Department,
    EscalationPath,
    Incident,
    Membership,
    Message,
)

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


def all_departments(*, user) -> list[Department]:
    """Every department, by name (a short list); one query, cached on the user for the request."""
    cached = getattr(user, "_caseline_all_departments", None)
    if cached is None:
        cached = list(Department.objects.order_by("name"))
        user._caseline_all_departments = cached
    return cached


def user_departments(*, user) -> list[Department]:
    """The departments ``user`` belongs to, by name."""
    ids = permissions.department_ids(user)
    return [department for department in all_departments(user=user) if department.pk in ids] if ids else []


def queue_departments(*, user) -> list[Department]:
    """Departments whose queues ``user`` may filter on: all active ones for admins, else their own."""
    if permissions.is_admin(user):
        return [department for department in all_departments(user=user) if department.is_active]
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


OTHER_CASES_LIMIT = 10


@dataclass
class CasePage:
    """The case a page shows and the customer's other cases the viewer may see, newest first."""

    case: Case
    other_cases: list[Case]


def case_page(*, user, reference: str, others: int = OTHER_CASES_LIMIT) -> CasePage | None:
    """:func:`case_for_page` and the customer's other cases that ``user`` may see (the newest
    ``others``), in one statement; None when ``user`` may not see the case.

    The rows are the case itself (whatever the viewer may see: ``can_view_case`` decides
    after) and the same customer's cases the viewer may see, the case first; each read is
    an index read (the reference's unique index, the customer's cases), OR-ed together.
    """
    customer = Subquery(Case.objects.filter(reference=reference).order_by().values("customer_id")[:1])
    # Visibility as a semi-join on the customer's few cases: no DISTINCT over the joined rows, and
    # the OR stays two index reads (reference, customer) instead of a scan.
    visible = Case.objects.filter(permissions.visible_cases_q(user), customer_id=customer).values("pk")
    rows = list(
        Case.objects.filter(Q(reference=reference) | (Q(customer_id=customer) & Q(pk__in=visible)))
        .select_related("customer", "department", "assignee", "last_channel", "origin_channel")
        .annotate(
            is_page_case=DbCase(When(reference=reference, then=Value(1)), default=Value(0)),
            # The live regions' sequence number: the newest case event the page was rendered with,
            # so a reconnecting page asks for a replay from exactly there.
            latest_event_id=Subquery(
                CaseEvent.objects.filter(case_id=OuterRef("pk")).order_by("-id").values("id")[:1]
            ),
            # The customer panel's notice: links waiting for an agent (the partial index of open ones).
            customer_has_suggestions=Exists(
                IdentitySuggestion.objects.filter(
                    customer_id=OuterRef("customer_id"), status=IdentitySuggestion.Status.OPEN
                )
            ),
            awaiting_acceptance=handoff_selectors.awaiting_acceptance(),  # the hand-off banner
        )
        .order_by("-is_page_case", "-created_at", "-id")[: others + 1]
    )
    if not rows or rows[0].reference != reference or not permissions.can_view_case(user, rows[0]):
        return None
    return CasePage(case=rows[0], other_cases=rows[1:])


# --- Links taken from customers' payloads -----------------------------------------------------------


def safe_url(url: str | None) -> str:
    r"""``url`` when a page may link to it, else ``""``.

    Allowed: ``http``/``https`` URLs with a host, and paths under our own ``MEDIA_URL``
    (stored attachments). Everything else a payload might carry -- ``javascript:``,
    ``data:``, ``vbscript:``, protocol-relative ``//host``, backslash tricks, and URLs with
    control characters or whitespace a browser would drop before reading the scheme
    (``java\tscript:``) -- gives ``""``, so it can never reach an ``href`` or ``src``.
    """
    text = (url or "").strip()
    if not text or "\\" in text or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() in ("http", "https"):
        return text if parts.hostname else ""
    media = "/" + settings.MEDIA_URL.lstrip("/")
    if not parts.scheme and not parts.netloc and text.startswith(media) and not text.startswith("//"):
        return text
    return ""


@dataclass(frozen=True)
class AttachmentLink:
    """An attachment as a timeline entry shows it; ``href`` is empty when its URL is not safe to link."""

    pk: int
    filename: str
    href: str
    size: int | None


def _attachment_link(
    *, pk: int, file: str, external_url: str, filename: str, size: int | None
) -> AttachmentLink:
    stored = Attachment._meta.get_field("file").storage.url(file) if file else ""
    return AttachmentLink(pk=pk, filename=filename, href=safe_url(stored or external_url), size=size)


def _with_links(message: Message, attachments: list[AttachmentLink]) -> Message:
    """Set what a timeline entry links to: its attachments and its recording, each checked by
    :func:`safe_url`."""
    message.attachment_links = attachments
    message.recording_href = safe_url(message.recording_url)
    return message


_ATTACHMENT_COLUMNS = ("id", "file", "external_url", "filename", "size")


def case_page_timeline(*, case: Case) -> list[Message]:
    """The case page's timeline: every message in time order with author, identity, channel and
    its attachments (as ``attachment_links``), in one statement.

    Attachments come from a LEFT JOIN (a row per attachment, most messages have none)
    rather than a second query; links pass :func:`safe_url`.
    """
    rows = (
        Message.objects.filter(case=case)
        .select_related("channel", "identity", "author")
        .annotate(**{f"attachment_{name}": F(f"attachments__{name}") for name in _ATTACHMENT_COLUMNS})
        .order_by("sent_at", "id", "attachment_id")
    )
    messages: list[Message] = []
    for row in rows:
        if not messages or messages[-1].pk != row.pk:
            messages.append(_with_links(row, []))
        if row.attachment_id is not None:
            messages[-1].attachment_links.append(
                _attachment_link(
                    **{
                        name if name != "id" else "pk": getattr(row, f"attachment_{name}")
                        for name in _ATTACHMENT_COLUMNS
                    }
                )
            )
    return messages


def case_timeline(*, case: Case) -> QuerySet[Message]:
    """Every message of ``case`` in time order, with author, identity, channel and attachments."""
    return (
        Message.objects.filter(case=case)
        .select_related("channel", "identity", "author")
        .prefetch_related(Prefetch("attachments"))
        .order_by("sent_at", "id")
    )


def _with_profile_links(identity: Identity) -> Identity:
    """Set ``profile_href``: the profile link the platform reported, checked by :func:`safe_url`
    (the profile is whatever the payload said). Avatars are not shown: the pages' CSP keeps
    images to our own origin."""
    profile = identity.profile if isinstance(identity.profile, dict) else {}
    links = (
        safe_url(value)
        for key in ("url", "profile_url", "link")
        if isinstance(value := profile.get(key), str)
    )
    identity.profile_href = next((link for link in links if link), "")
    return identity


def customer_identities(*, customer) -> list[Identity]:
    return [_with_profile_links(i) for i in customer.identities.order_by("kind", "handle", "platform_id")]


# --- Search ------------------------------------------------------------------------------------

REFERENCE_RE = re.compile(rf"^(?:C-)?({REFERENCE_PATTERN})$", re.IGNORECASE)
PHONE_RE = re.compile(r"^\+?[\d\s().-]{7,}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Longest search text taken; the rest is ignored.
SEARCH_MAX_LENGTH = 200


def search_reference(q: str) -> str | None:
    """The case reference ``q`` spells (``C-7Q4K2`` or ``7q4k2``), or None."""
    match = REFERENCE_RE.match((q or "").strip())
    return f"C-{match.group(1).upper()}" if match else None


def _identity_customers(q: str) -> QuerySet | None:
    """Customers with an identity matching a handle, e-mail address or phone number ``q``."""
    text = q.strip()
    if EMAIL_RE.match(text):
        try:
            address = normalize_platform_id("email", text)
        except ValidationError:
            return None
        return Identity.objects.filter(kind="email", platform_id=address).values("customer_id")
    if PHONE_RE.match(text) and sum(ch.isdigit() for ch in text) >= 7:
        try:
            number = normalize_platform_id("phone", text)
        except ValidationError:
            return None
        return Identity.objects.filter(kind__in=["phone", "whatsapp"], platform_id=number).values(
            "customer_id"
        )
    if " " not in text:
        handle = text.lower()
        bare = handle.removeprefix("@")
        return (
            Identity.objects.alias(handle_lower=Lower("handle"))
            .filter(handle_lower__in={handle, bare, f"@{bare}"})
            .values("customer_id")
        )
    return None


def _search_parts(text: str) -> list[QuerySet]:
    """One query per way a case can match a search, each giving case ids from an index read."""
    reference = search_reference(text)
    by_reference = Case.objects.filter(reference=reference).order_by().values_list("pk", flat=True)
    if reference and text.upper().startswith("C-"):
        return [by_reference]
    parts = [by_reference] if reference else []
    customers = _identity_customers(text)
    if customers is not None:
        parts.append(Case.objects.filter(customer_id__in=customers).order_by().values_list("pk", flat=True))
    named = Customer.objects.alias(name_lower=Lower("name")).filter(name_lower=text.lower()).values("pk")
    parts.append(Case.objects.filter(customer_id__in=named).order_by().values_list("pk", flat=True))
    if settings.IS_POSTGRES:
        query = fulltext.websearch(text)
        subjects = Case.objects.alias(search=fulltext.vector("subject")).filter(search=query)
        messages = Message.objects.alias(search=fulltext.vector("text")).filter(search=query)
    else:
        subjects = Case.objects.filter(subject__icontains=text)
        messages = Message.objects.filter(text__icontains=text)
    parts.append(subjects.order_by().values_list("pk", flat=True))
    parts.append(messages.order_by().values_list("case_id", flat=True))
    return parts


def search_q(q: str) -> Q:
    """Cases matching a desk search: a reference, a handle, e-mail or phone of any of the customer's
    identities, the customer's name, or words in the subject or any message.

    Every branch is an index read: the reference's unique index, the identity indexes
    (lower(handle), kind + platform_id), lower(customer name), and on PostgreSQL the GIN
    full-text indexes ``case_subject_search_idx`` / ``message_text_search_idx`` (the words as
    typed, see :mod:`cases.fulltext`; web-search syntax: quotes, ``or``, ``-word``). SQLite
    falls back to LIKE.
    As a filter it suits searches that match many cases: the queue reads in its order
    and stops at a page. See :func:`search_candidates` for the others.
    """
    text = (q or "").strip()[:SEARCH_MAX_LENGTH]
    if not text:
        return Q()
    found = Q(pk__in=[])
    for part in _search_parts(text):
        found |= Q(pk__in=part)
    return found


# At most this many cases are listed by id; a search matching more filters the queue as it reads.
SEARCH_CANDIDATES = 2000
SEARCH_SCAN_ROWS = 5000


def search_candidates(q: str) -> list[int] | None:
    """The ids of the cases a search matches, when they are few; None when they are many.

    Most searches (a reference, a handle, an address, a number, a rare word) match a
    handful of cases: listing them first (one UNION ALL of the index reads, stopped after
    ``SEARCH_SCAN_ROWS`` rows) lets the queue fetch just those rows by id instead of reading
    its whole order looking for them. A common word matches thousands: then None, and
    the queue filters with :func:`search_q` as it reads, stopping at a page.
    """
    text = (q or "").strip()[:SEARCH_MAX_LENGTH]
    first, *rest = _search_parts(text)
    found = first.union(*rest, all=True)[:SEARCH_SCAN_ROWS] if rest else first[:SEARCH_SCAN_ROWS]
    if settings.IS_POSTGRES:
        # Parallel workers take longer to start than these index reads take to run.
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            rows = list(found)
    else:
        rows = list(found)
    ids = set(rows)
    if len(rows) >= SEARCH_SCAN_ROWS or len(ids) > SEARCH_CANDIDATES:
        return None
    return sorted(ids)


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


def live_case(*, case_id: int) -> Case | None:
    """One case with what its page header shows; for live pushes (no permission check: callers do)."""
    return (
        Case.objects.select_related("customer", "department", "assignee", "last_channel", "origin_channel")
        .filter(pk=case_id)
        .first()
    )


def live_message(*, message_id: int) -> Message | None:
    """One timeline entry as :func:`case_page_timeline` loads it."""
    message = (
        Message.objects.filter(pk=message_id)
        .select_related("channel", "identity", "author", "case__customer")
        .prefetch_related("attachments")
        .first()
    )
    if message is None:
        return None
    links = [
        _attachment_link(
            pk=a.pk, file=a.file.name, external_url=a.external_url, filename=a.filename, size=a.size
        )
        for a in message.attachments.all()
    ]
    return _with_links(message, links)


def live_seq() -> int:
    """The newest case event's id: a page remembers it to ask later whether it missed anything."""
    return CaseEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def queue_changed_since(*, user, seq: int) -> bool:
    """Whether any of ``user``'s work cases has an event newer than ``seq`` (a page's render)."""
    return (
        CaseEvent.objects.filter(id__gt=seq)
        .filter(Q(case__in=Case.objects.filter(_work_scope(user)).values("pk")))
        .exists()
    )


def case_changed_since(*, case_id: int, at: datetime) -> bool:
    """Whether ``case`` has an event or a message stored after ``at`` (a page's render)."""
    return (
        CaseEvent.objects.filter(case_id=case_id, created_at__gt=at).exists()
        or Message.objects.filter(case_id=case_id, created_at__gt=at).exists()
    )


def incident_departments(*, incident_id: int) -> dict:
    """An incident's channel, its department and the number of cases linked so far."""
    return (
        Incident.objects.filter(pk=incident_id)
        .values("pk", "title", "mention_count", "channel__name", "channel__kind", "channel__department_id")
        .first()
    ) or {}


# --- The case page's choices ---------------------------------------------------------------------


def reply_channels(*, identities: list[Identity]) -> list:
    """The company's active channels on the platforms the customer has an identity on, by platform."""
    from connectors.models import Channel

    kinds = {identity.kind for identity in identities}
    if not kinds:
        return []
    return list(Channel.objects.filter(is_active=True, kind__in=kinds).order_by("kind", "name"))


def department_members(*, department_id: int) -> list:
    """The users of a department (for "assign to"), by name."""
    return [
        membership.user
        for membership in Membership.objects.filter(department_id=department_id, user__is_active=True)
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__email")
    ]


def transfer_departments(*, user, case: Case) -> list[Department]:
    """Active departments other than the case's own."""
    return [d for d in all_departments(user=user) if d.is_active and d.pk != case.department_id]


_PATH_COLUMNS = tuple(field.attname for field in EscalationPath._meta.concrete_fields)


def case_routes(*, user, case: Case) -> tuple[list[Department], EscalationPath | None]:
    """Every department by name (as :func:`all_departments`, whose per-request cache on ``user``
    it fills) and the escalation path ``case`` would follow now, in one statement.

    The path is the one ``escalation.next_path`` picks (active paths out of the case's
    department into an active one, lowest order first, the first whose trigger
    ``escalation.path_matches``); here the paths come LEFT JOINed to their target
    departments instead of from a query of their own.
    """
    from .escalation import path_matches

    paths_in = FilteredRelation(
        "paths_in", condition=Q(paths_in__from_department_id=case.department_id, paths_in__is_active=True)
    )
    rows = (
        Department.objects.annotate(path=paths_in)
        .annotate(**{f"path_{name}": F(f"path__{name}") for name in _PATH_COLUMNS})
        .order_by("name", "id")
    )
    departments: dict[int, Department] = {}
    paths: list[EscalationPath] = []
    for row in rows:
        department = departments.setdefault(row.pk, row)
        if row.path_id is not None and department.is_active:
            path = EscalationPath(**{name: getattr(row, f"path_{name}") for name in _PATH_COLUMNS})
            path.to_department = department
            paths.append(path)
    paths.sort(key=lambda path: (path.order, path.pk))
    if getattr(user, "_caseline_all_departments", None) is None:
        user._caseline_all_departments = list(departments.values())
    return list(departments.values()), next((path for path in paths if path_matches(path, case)), None)


def public_channels(*, case: Case, timeline: list[Message] | None = None) -> list:
    """The social channels where the customer wrote to us in public on this case (WhatsApp has no
    public side): where a reply can ask them to continue privately."""
    if timeline is None:
        timeline = list(
            Message.objects.filter(case=case, direction=Message.Direction.IN, is_public=True).select_related(
                "channel"
            )
        )
    found = {}
    for message in timeline:
        channel = message.channel
        if (
            message.direction == Message.Direction.IN
            and message.is_public
            and channel is not None
            and channel.is_social
            and channel.kind != "whatsapp"
        ):
            found[channel.pk] = channel
    return list(found.values())


def case_actions_context(*, user, case: Case, timeline: list[Message] | None = None) -> dict:
    """What the case page's action panel offers ``user`` (the page and live pushes render it alike).

    ``timeline``: the case's messages when the caller has them (saves a query)."""

    can_work = permissions.can_work_case(user, case)
    context = {
        "case": case,
        "can_work": can_work,
        "can_take_over": permissions.is_admin(user)
        or case.department_id in permissions.supervised_department_ids(user),
        "statuses": Case.Status.choices,
        "priorities": Case.Priority.choices,
        "members": [],
        "transfer_departments": [],
        "escalation_path": None,
        "public_channels": [],
    }
    if can_work:
        context["members"] = department_members(department_id=case.department_id)
        departments, context["escalation_path"] = case_routes(user=user, case=case)
        context["transfer_departments"] = [
            d for d in departments if d.is_active and d.pk != case.department_id
        ]
        if case.is_open:
            context["public_channels"] = public_channels(case=case, timeline=timeline)
    return context


# --- The customer page ----------------------------------------------------------------------------


def customer_for_page(*, user, customer_id: int) -> Customer | None:
    """The customer, or None when ``user`` may see none of their cases (admins see everyone).

    A customer merged into another has no cases left: whoever sees a case of the customer it
    was merged into sees it too, so that the merge can be read and undone from its page.
    """
    customer = Customer.objects.select_related("merged_into").filter(pk=customer_id).first()
    if customer is None or permissions.is_admin(user):
        return customer
    owners = [customer.pk, *([customer.merged_into_id] if customer.merged_into_id else [])]
    if not Case.objects.filter(permissions.visible_cases_q(user), customer_id__in=owners).exists():
        return None
    return customer


CUSTOMER_CASES_LIMIT = 200


def customer_cases(*, user, customer: Customer, limit: int = CUSTOMER_CASES_LIMIT) -> list[Case]:
    """The customer's cases ``user`` may see, on every channel, newest first."""
    return list(
        Case.objects.filter(permissions.visible_cases_q(user), customer_id=customer.pk)
        .select_related("department", "assignee", "origin_channel", "last_channel")
        .distinct()
        .order_by("-created_at", "-id")[:limit]
    )


def customer_identities_with_provenance(*, customer: Customer) -> list[Identity]:
    """The customer's identities with who linked each one."""
    return [
        _with_profile_links(identity)
        for identity in customer.identities.select_related("linked_by").order_by(
            "kind", "handle", "platform_id"
        )
    ]


def identity_for_link(*, user, kind: str, value: str) -> Identity | None:
    """The identity of ``kind`` an agent means by ``value`` (its handle, with or without "@", or its
    platform id in any spelling), when ``user`` sees its customer; else None (unknown and unseen
    look alike)."""
    handle = value.lstrip("@").lower()
    match = Q(handle_lower__in=[handle, f"@{handle}"])
    with suppress(ValidationError):  # not an id of that platform: handles only
        match |= Q(platform_id=normalize_platform_id(kind, value))
    identity = (
        Identity.objects.alias(handle_lower=Lower("handle"))
        .filter(match, kind=kind)
        .select_related("customer")
        .order_by("pk")
        .first()
    )
    if identity is None or customer_for_page(user=user, customer_id=identity.customer_id) is None:
        return None
    return identity


CUSTOMER_SUGGESTIONS_LIMIT = 50


def customer_suggestions(
    *, user, customer: Customer, limit: int = CUSTOMER_SUGGESTIONS_LIMIT
) -> list[IdentitySuggestion]:
    """The customer's open identity suggestions (the newest ``limit``), in one query.

    Each comes with the identity it matched and that identity's customer, and is annotated
    with ``source_case`` (the reference of the case whose message held the address or
    number, when ``user`` sees that case, else None), ``source_sent_at`` (when that
    message was written) and ``other_visible`` (whether ``user`` sees the customer the
    identity belongs to now: the page names them only then).
    """
    visible = Case.objects.filter(permissions.visible_cases_q(user))
    source = Message.objects.filter(pk=OuterRef("source_message_id")).order_by()
    return list(
        IdentitySuggestion.objects.filter(customer_id=customer.pk, status=IdentitySuggestion.Status.OPEN)
        .select_related("identity__customer")
        .annotate(
            source_case=Subquery(source.filter(case__in=visible.values("pk")).values("case__reference")[:1]),
            source_sent_at=Subquery(source.values("sent_at")[:1]),
            other_visible=Exists(visible.filter(customer_id=OuterRef("identity__customer_id"))),
        )
        .order_by("-created_at", "-id")[:limit]
    )


def customer_suggestion(*, customer: Customer, suggestion_id: int) -> IdentitySuggestion | None:
    """One suggestion made for ``customer`` (any status), or None."""
    return IdentitySuggestion.objects.filter(pk=suggestion_id, customer_id=customer.pk).first()


@dataclass
class CustomerMerges:
    """The customer's merges still in force: the customers merged into it (``merged_in``), and
    its own merge into another (``merged_away``, or None)."""

    merged_in: list[CustomerMerge]
    merged_away: CustomerMerge | None


def customer_merges(*, customer: Customer) -> CustomerMerges:
    """Merges in force into or out of ``customer``, with both customers and who merged, in one query."""
    rows = list(
        CustomerMerge.objects.filter(
            Q(target_id=customer.pk) | Q(source_id=customer.pk), undone_at__isnull=True
        )
        .select_related("source", "target", "actor")
        .order_by("-created_at", "-id")
    )
    return CustomerMerges(
        merged_in=[row for row in rows if row.target_id == customer.pk],
        merged_away=next((row for row in rows if row.source_id == customer.pk), None),
    )


# --- The supervisor board ---------------------------------------------------------------------------


def board_departments(*, user) -> list[Department]:
    """The departments on ``user``'s board: those they supervise (admins: every active one)."""
    if permissions.is_admin(user):
        return [department for department in all_departments(user=user) if department.is_active]
    ids = permissions.supervised_department_ids(user)
    return [department for department in all_departments(user=user) if department.pk in ids]


# The customer is waiting for us: they wrote after our last answer, on a running case.
WAITING_Q = Q(status__in=[Case.Status.NEW, Case.Status.OPEN], last_inbound_at__isnull=False) & (
    Q(last_outbound_at__isnull=True) | Q(last_inbound_at__gt=F("last_outbound_at"))
)


def _waiting_since() -> DbCase:
    """Since when the customer has been waiting: their first message if we never answered, else
    their latest (the clocks count from there too)."""
    return DbCase(
        When(last_outbound_at__isnull=True, then=F("first_inbound_at")),
        default=F("last_inbound_at"),
    )


def _board_counts() -> dict:
    # Counting a column of ``case_board_idx`` (not the id) lets PostgreSQL answer from the index.
    return {
        "open": Count("department"),
        "at_risk": Count("department", filter=Q(sla_state=Case.SlaState.AT_RISK)),
        "breached": Count("department", filter=Q(sla_state=Case.SlaState.BREACHED)),
        "unassigned": Count("department", filter=Q(assignee__isnull=True)),
        "oldest_waiting": Min(_waiting_since(), filter=WAITING_Q),
    }


@dataclass
class BoardRow:
    """One line of the board: a department or an agent, and their open work."""

    key: int
    label: str
    detail: str = ""
    open: int = 0
    at_risk: int = 0
    breached: int = 0
    unassigned: int = 0
    oldest_waiting: datetime | None = None


BoardStats = dict[tuple[int, int | None], dict]


def board_stats(*, departments: list[Department]) -> BoardStats:
    """The departments' open work per (department, assignee): open, at risk, breached,
    unassigned, longest wait.

    One aggregate over the departments' open cases, an index-only read of
    ``case_board_idx`` (department, assignee lead it); the department rows and the agent
    rows are both sums of these groups, so the board reads its cases once.
    """
    ids = [department.pk for department in departments]
    return {
        (row["department_id"], row["assignee_id"]): row
        for row in Case.objects.filter(department_id__in=ids, status__in=WORK_STATUSES)
        .order_by()
        .values("department_id", "assignee_id")
        .annotate(**_board_counts())
    }


def _board_figures(groups) -> dict:
    """The sum of some :func:`board_stats` groups (the earliest wait of them)."""
    figures = {"open": 0, "at_risk": 0, "breached": 0, "unassigned": 0, "oldest_waiting": None}
    for group in groups:
        for name in ("open", "at_risk", "breached", "unassigned"):
            figures[name] += group[name]
        waiting = group["oldest_waiting"]
        if waiting is not None and (figures["oldest_waiting"] is None or waiting < figures["oldest_waiting"]):
            figures["oldest_waiting"] = waiting
    return figures


def board_department_rows(
    *, departments: list[Department], stats: BoardStats | None = None
) -> list[BoardRow]:
    """Per department: open cases, at risk, breached, unassigned, and the longest-waiting customer
    (from ``stats``, :func:`board_stats` of the same departments, when the caller has it)."""
    if stats is None:
        stats = board_stats(departments=departments)
    return [
        BoardRow(
            key=department.pk,
            label=department.name,
            **_board_figures(
                row for (department_id, _), row in stats.items() if department_id == department.pk
            ),
        )
        for department in departments
    ]


def board_agent_rows(*, departments: list[Department], stats: BoardStats | None = None) -> list[BoardRow]:
    """Per member of the departments: their open cases there, at risk, breached, longest wait
    (from ``stats`` as :func:`board_department_rows`)."""
    if stats is None:
        stats = board_stats(departments=departments)
    ids = [department.pk for department in departments]
    people: dict[int, BoardRow] = {}
    names = {department.pk: department.name for department in departments}
    for membership in (
        Membership.objects.filter(department_id__in=ids, user__is_active=True)
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__email", "department_id")
    ):
        user = membership.user
        row = people.get(user.pk)
        role = " (supervisor)" if membership.role == Membership.Role.SUPERVISOR else ""
        if row is None:
            figures = _board_figures(
                group for (_, assignee_id), group in stats.items() if assignee_id == user.pk
            )
            figures["unassigned"] = 0
            people[user.pk] = BoardRow(
                key=user.pk,
                label=user_name(user),
                detail=names[membership.department_id] + role,
                **figures,
            )
        else:
            row.detail += f" · {names[membership.department_id]}{role}"
    return list(people.values())


BOARD_CASES_LIMIT = 100
# What a board row shows (templates/cases/board.html): loading only these halves the time
# Python spends turning 100 joined rows into objects (a case has some 20 timestamps).
BOARD_ROW_FIELDS = (
    *("id", "reference", "subject", "sla_state", "due_at", "customer_id", "department_id", "assignee_id"),
    *("customer__name", "customer__tier", "department__name"),
    *("assignee__first_name", "assignee__last_name", "assignee__email", "assignee__username"),
)


def board_cases(
    *,
    departments: list[Department],
    department_id: int | None = None,
    assignee_id: int | None = None,
    sla_state: str = "",
    unassigned: bool = False,
    limit: int = BOARD_CASES_LIMIT,
) -> list[Case]:
    """Open cases of the board's departments to pick for bulk reassignment, in queue order."""
    ids = [department.pk for department in departments]
    if department_id is not None:
        ids = [pk for pk in ids if pk == department_id]
    queryset = Case.objects.filter(department_id__in=ids, status__in=WORK_STATUSES)
    if assignee_id is not None:
        queryset = queryset.filter(assignee_id=assignee_id)
    if unassigned:
        queryset = queryset.filter(assignee__isnull=True)
    if sla_state:
        queryset = queryset.filter(sla_state=sla_state)
    page = queryset.order_by(queue_due().asc(), "-id").values("pk")[:limit]
    return list(
        Case.objects.filter(pk__in=page)
        .select_related("customer", "department", "assignee")
        .only(*BOARD_ROW_FIELDS)
        .order_by(queue_due().asc(), "-id")
    )


def reassign_targets(*, user) -> tuple[list[Department], list[Membership]]:
    """Where a supervisor may send cases: active departments, and their members (by department)."""
    departments = [department for department in all_departments(user=user) if department.is_active]
    members = list(
        Membership.objects.filter(department__is_active=True, user__is_active=True)
        .select_related("user", "department")
        .order_by("department__name", "user__first_name", "user__last_name")
    )
    return departments, members
