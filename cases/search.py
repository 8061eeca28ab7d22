"""The search box: one text that may be a case reference, a customer (name, handle, e-mail
address, phone number) or words from messages, limited to what the user may see.

Builds on the queue's search (:mod:`cases.selectors`): the same reading of references and of
identifiers (e-mail addresses and phone numbers normalised as ``customers.identifiers``
stores them), and the same full-text configuration and GIN index over message texts
(:mod:`cases.fulltext`). Every part is an index read:

- the reference: the unique index on ``Case.reference``;
- customers: ``identity_unique_kind_platform_id`` / ``identity_handle_lower_idx`` for an
  identifier, ``customer_name_search_idx`` for words of a name (each word a prefix);
- messages: ``message_text_search_idx`` (GIN), its matches sorted newest first, when the
  planner expects at most ``BITMAP_MAX_ROWS`` of them; for a commoner word
  ``message_recent_idx`` is read newest first and stops after a page (see
  :func:`_newest_first`).

Off PostgreSQL (the embedded SQLite default) names and texts are matched with LIKE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import (
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
)

from customers.models import Customer, Identity

from . import fulltext, permissions, selectors
from .models import Case, Message

CUSTOMER_LIMIT = 10
MESSAGE_LIMIT = 20
SEARCH_MAX_LENGTH = selectors.SEARCH_MAX_LENGTH
# Up to this many expected matches, messages are fetched through the GIN index and sorted (the
# cost grows with the matches); above it, read newest first until a page is found.
BITMAP_MAX_ROWS = 20_000


@dataclass(frozen=True)
class MessageHit:
    """One message that matched, as the results page lists it."""

    id: int
    sent_at: datetime
    direction: str
    kind: str
    channel_kind: str
    reference: str
    customer_id: int
    customer_name: str
    # Escaped HTML with the matched words in <mark>.
    snippet: str

    @property
    def customer_label(self) -> str:
        return Customer.label(self.customer_name, self.customer_id)

    @property
    def direction_label(self) -> str:
        return Message.Direction(self.direction).label


@dataclass
class SearchResults:
    """What one search found: the case a reference names, customers, and messages newest first."""

    q: str
    case: Case | None = None
    customers: list[Customer] = field(default_factory=list)
    more_customers: bool = False
    messages: list[MessageHit] = field(default_factory=list)
    # Where the next (older) page of messages starts; "" when there is none.
    next_cursor: str = ""

    @property
    def is_empty(self) -> bool:
        return self.case is None and not self.customers and not self.messages


def search_text(q: str) -> str:
    """The part of ``q`` that is searched: trimmed, at most ``SEARCH_MAX_LENGTH`` characters."""
    return (q or "").strip()[:SEARCH_MAX_LENGTH]


def reference_case(*, user, q: str) -> Case | None:
    """The case whose reference ``q`` spells, when ``user`` may see it."""
    reference = selectors.search_reference(q)
    if reference is None:
        return None
    return selectors.case_for_page(user=user, reference=reference)


def is_full_reference(q: str) -> bool:
    """``C-7Q4K2`` rather than ``7q4k2``: only the full form opens the case at once (a bare
    five-letter word can spell a reference too)."""
    return selectors.search_reference(q) is not None and q.strip().upper().startswith("C-")


def desk_search(
    *, user, q: str, before: selectors.QueueCursor | None = None, with_reference: bool = True
) -> SearchResults:
    """Everything ``q`` finds that ``user`` may see. ``before`` pages the messages (older ones);
    ``with_reference=False`` skips the reference (the caller looked it up already).

    Queries: the reference's case (when ``q`` spells one; and its followers for a user
    outside its department), the user's departments (once per request), customers and their
    identities (when any matched), and one for the messages.
    """
    text = search_text(q)
    results = SearchResults(q=text)
    if not text:
        return results
    if before is None:
        results.case = reference_case(user=user, q=text) if with_reference else None
        results.customers, results.more_customers = search_customers(user=user, text=text)
    results.messages, results.next_cursor = search_messages(user=user, text=text, before=before)
    return results


def _visible_customers_q(user) -> Q:
    """Customers with a case ``user`` sees, or merged into one who has (as ``customer_for_page``)."""
    if permissions.is_admin(user):
        return Q()
    visible = Case.objects.filter(permissions.visible_cases_q(user))
    return Q(Exists(visible.filter(customer_id=OuterRef("pk")))) | Q(
        Exists(visible.filter(customer_id=OuterRef("merged_into_id")))
    )


def search_customers(*, user, text: str, limit: int | None = None) -> tuple[list[Customer], bool]:
    """Customers whose handle, e-mail address or phone number is ``text`` (in any spelling the
    identifiers accept), or whose name has its words; and whether there are more than ``limit``."""
    limit = limit or CUSTOMER_LIMIT
    customers = customers_matching(user=user, text=text)
    if customers is None:
        return [], False
    found = list(
        customers.prefetch_related(
            Prefetch("identities", queryset=Identity.objects.order_by("kind", "handle", "platform_id"))
        ).order_by("name", "id")[: limit + 1]
    )
    return found[:limit], len(found) > limit


def customers_matching(*, user, text: str) -> QuerySet[Customer] | None:
    """Every customer :func:`search_customers` finds for ``text`` that ``user`` may see, unordered
    (also the search's CSV); None when ``text`` can match no customer."""
    matching = []
    by_identity = selectors._identity_customers(text)
    if by_identity is not None:
        matching.append(by_identity.values_list("customer_id", flat=True))
    if settings.IS_POSTGRES:
        query = fulltext.prefix_query(text)
        if query is not None:
            named = Customer.objects.alias(name_search=fulltext.vector("name")).filter(name_search=query)
            matching.append(named.values_list("pk", flat=True))
    else:
        matching.append(Customer.objects.filter(name__icontains=text).values_list("pk", flat=True))
    if not matching:
        return None
    first, *rest = (part.order_by() for part in matching)
    ids = first.union(*rest) if rest else first
    return Customer.objects.filter(_visible_customers_q(user), pk__in=ids)


def _message_match(text: str) -> Q:
    if settings.IS_POSTGRES:
        return Q(search=fulltext.websearch(text))
    return fulltext.plain_match("text", text)


def _newest_first(messages: QuerySet, matching: QuerySet) -> QuerySet:
    """``messages`` newest first, in the order PostgreSQL reads them fastest.

    Left alone, the planner reads ``message_recent_idx`` newest first for nearly any word,
    assuming its matches are spread evenly over time, and recomputes each row's tsvector as
    it goes: for a word in 0.3% of a million messages, bunched in older cases, that was 40,000
    rows and over 700 ms (``bench/search.py``). So the planner's own estimate of the
    matches (one EXPLAIN of ``matching``, about a millisecond) decides: few enough, and the
    sort key is an expression no index serves, so the GIN index is read and its matches
    sorted; many, and the newest-first read stops after a page.
    """
    order = ("-sent_at", "-id")
    if settings.IS_POSTGRES:
        plan = json.loads(matching.explain(format="json"))
        if plan[0]["Plan"]["Plan Rows"] <= BITMAP_MAX_ROWS:
            unindexed = ExpressionWrapper(F("sent_at") + Value(timedelta(0)), output_field=DateTimeField())
            return messages.order_by(unindexed.desc(), "-id")
    return messages.order_by(*order)


def search_messages(
    *, user, text: str, before: selectors.QueueCursor | None = None, limit: int | None = None
) -> tuple[list[MessageHit], str]:
    """Messages whose text has the words of ``text``, on cases ``user`` sees, newest first, with a
    highlighted snippet each; and the cursor of the next page ("" when this is the last)."""
    limit = limit or MESSAGE_LIMIT
    messages = Message.objects.all()
    if settings.IS_POSTGRES:
        messages = messages.alias(search=fulltext.vector("text"))
    messages = messages.filter(_message_match(text))
    matching = messages
    if not permissions.is_admin(user):
        messages = messages.filter(
            case_id__in=Case.objects.filter(permissions.visible_cases_q(user)).values("pk")
        )
    if before is not None:
        messages = messages.filter(Q(sent_at__lt=before.due_at) | Q(sent_at=before.due_at, id__lt=before.id))
    columns = ["id", "sent_at", "direction", "kind", "channel__kind", "case__reference", "case__customer_id"]
    columns.append("case__customer__name")
    if settings.IS_POSTGRES:
        rows = messages.annotate(marked=fulltext.headline("text", fulltext.websearch(text)))
        rows = rows.values(*columns, "marked")
    else:
        rows = messages.values(*columns, "text")
    rows = list(_newest_first(rows, matching.values("pk"))[: limit + 1])
    hits = [
        MessageHit(
            id=row["id"],
            sent_at=row["sent_at"],
            direction=row["direction"],
            kind=row["kind"],
            channel_kind=row["channel__kind"] or "",
            reference=row["case__reference"],
            customer_id=row["case__customer_id"],
            customer_name=row["case__customer__name"],
            snippet=fulltext.snippet_html(row["marked"])
            if "marked" in row
            else fulltext.plain_snippet(row["text"], text),
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    next_cursor = selectors.QueueCursor(due_at=hits[-1].sent_at, id=hits[-1].id).encode() if more else ""
    return hits, next_cursor
