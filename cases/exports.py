"""CSV files of the desk's lists, streamed: the one helper every CSV download of the desk uses.

:func:`csv_response` writes a header line and then one line per row as the rows are read,
never the whole file in memory: under WSGI Django iterates a generator; under ASGI (daphne,
how the desk is served) a synchronous generator would be read into a list before the first
byte leaves (Django's ``StreamingHttpResponse.__aiter__``), so the response gets an
asynchronous iterator that reads ``CHUNK_LINES`` lines at a time in the request's own
thread (``sync_to_async``, thread-sensitive: the same database connection as the view).
Row sources read querysets with ``.iterator(chunk_size=CHUNK_ROWS)`` (a server-side cursor on
PostgreSQL), so a list of any length costs the same statements as a list of five (one per
``CHUNK_ROWS`` for a prefetched relation).

Every text cell that a spreadsheet would read as a formula (one starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) is written with a leading ``'`` (CSV injection).

The row sources of the queue, the customers a search finds and the incidents list are here
too: reads only, each over the selector its page uses, so a file lists what the page lists
(the same filters, the same visibility from ``cases.permissions``).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Prefetch
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from customers.models import Customer, Identity

from . import incident_selectors, selectors
from . import search as desk_search
from .models import Case

# Rows read per round trip of a server-side cursor.
CHUNK_ROWS = 1000
# Lines handed to the server per piece of the response.
CHUNK_LINES = 200
# What makes a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """``value`` as a CSV cell: datetimes in ISO 8601 (local time), formula-like text defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file that hands back what is written to it: ``csv.writer`` then returns each line."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The header line, then one line per row, each cell through :func:`safe_cell`."""
    writer = csv.writer(_Echo())
    yield writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def _pieces(lines: Iterator[str]) -> Iterator[str]:
    while piece := "".join(islice(lines, CHUNK_LINES)):
        yield piece


async def _async_pieces(lines: Iterator[str]) -> AsyncIterator[str]:
    take = sync_to_async(lambda: "".join(islice(lines, CHUNK_LINES)), thread_sensitive=True)
    while piece := await take():
        yield piece


def csv_response(
    request: HttpRequest, *, header: Iterable[str], rows: Iterable[Iterable], filename: str
) -> StreamingHttpResponse:
    """A streamed CSV download of ``rows`` (read lazily: nothing is read before the first piece)."""
    lines = csv_lines(header, rows)
    content = _async_pieces(lines) if isinstance(request, ASGIRequest) else _pieces(lines)
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def lazy_rows(make: Callable[[], Iterable]) -> Iterator:
    """Rows from ``make()``, called only when the first row is wanted (while streaming)."""
    yield from make()


# --- The queue ---------------------------------------------------------------------------------------

QUEUE_HEADER = (
    "reference",
    "subject",
    "customer",
    "customer_handle",
    "channel",
    "status",
    "priority",
    "service_promise",
    "due_at",
    "department",
    "assignee",
    "customer_wrote_at",
    "opened_at",
)
_QUEUE_COLUMNS = (
    *("reference", "subject", "opening_words", "customer_id", "customer__name", "last_identity_label"),
    *("last_channel__kind", "status", "priority", "sla_state", "due_at", "department__name"),
    *("assignee_id", "assignee__first_name", "assignee__last_name", "assignee__email", "assignee__username"),
    *("last_inbound_at", "created_at"),
)
_STATUS = dict(Case.Status.choices)
_PRIORITY = dict(Case.Priority.choices)
_SLA = dict(Case.SlaState.choices)


def queue_rows(**filters) -> Iterator[tuple]:
    """Every case of the queue ``selectors.case_queue(**filters)`` lists (all its pages), in its order."""

    def make():
        cases = selectors.case_queue(**filters).values_list(*_QUEUE_COLUMNS)
        for (
            reference,
            subject,
            opening_words,
            customer_id,
            customer_name,
            handle,
            channel_kind,
            status,
            priority,
            sla_state,
            due_at,
            department,
            assignee_id,
            first_name,
            last_name,
            email,
            username,
            last_inbound_at,
            created_at,
        ) in cases.iterator(chunk_size=CHUNK_ROWS):
            yield (
                reference,
                subject or " ".join((opening_words or "").split()),
                Customer.label(customer_name, customer_id),
                handle or "",
                channel_kind or "",
                _STATUS.get(status, status),
                _PRIORITY.get(priority, priority),
                _SLA.get(sla_state, sla_state),
                due_at,
                department,
                selectors.person_name(
                    first_name=first_name, last_name=last_name, email=email, username=username
                )
                if assignee_id is not None
                else "",
                last_inbound_at,
                created_at,
            )

    return lazy_rows(make)


# --- Customers a search finds --------------------------------------------------------------------------

CUSTOMERS_HEADER = ("customer_id", "name", "tier", "identities", "created_at")
_TIER = dict(Customer.Tier.choices)


def customer_rows(*, user, q: str) -> Iterator[tuple]:
    """Every customer the search box finds for ``q`` that ``user`` may see (the results page
    shows the first ``search.CUSTOMER_LIMIT``), by name, with their identities."""

    def make():
        text = desk_search.search_text(q)
        customers = desk_search.customers_matching(user=user, text=text) if text else None
        if customers is None:
            return
        identities = Prefetch(
            "identities", queryset=Identity.objects.order_by("kind", "handle", "platform_id")
        )
        for customer in (
            customers.only("id", "name", "tier", "created_at", "erased_at")
            .prefetch_related(identities)
            .order_by("name", "id")
            .iterator(chunk_size=CHUNK_ROWS)
        ):
            yield (
                customer.pk,
                str(customer),
                _TIER.get(customer.tier, customer.tier),
                "; ".join(f"{i.kind}: {i.handle or i.platform_id}" for i in customer.identities.all()),
                customer.created_at,
            )

    return lazy_rows(make)


# --- Incidents -----------------------------------------------------------------------------------------

INCIDENTS_HEADER = (
    "incident_id",
    "channel",
    "title",
    "status",
    "urgent",
    "detected_at",
    "mentions",
    "usual_mentions",
    "cases",
    "closed_at",
    "closed_by",
    "close_note",
)


def incident_rows(*, user) -> Iterator[tuple]:
    """Every incident the incidents page lists for ``user`` (open ones and recent ones), in its order."""

    def make():
        incidents = incident_selectors.incidents_listed(user=user).values_list(
            *("pk", "channel__name", "title", "status", "is_urgent", "detected_at", "mention_count"),
            *("baseline", "case_count", "closed_at", "closed_by_id", "closed_by__first_name"),
            *("closed_by__last_name", "closed_by__email", "closed_by__username", "close_note"),
        )
        for row in incidents.iterator(chunk_size=CHUNK_ROWS):
            (pk, channel, title, status, urgent, detected_at, mentions, baseline, cases, closed_at) = row[:10]
            (closer_id, first_name, last_name, email, username, note) = row[10:]
            yield (
                pk,
                channel,
                title,
                status,
                "yes" if urgent else "no",
                detected_at,
                mentions,
                round(baseline, 1),
                cases,
                closed_at,
                selectors.person_name(
                    first_name=first_name, last_name=last_name, email=email, username=username
                )
                if closer_id is not None
                else "",
                note,
            )

    return lazy_rows(make)
