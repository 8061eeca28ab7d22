"""The desk search: which cases a search text matches.

A reference, a handle, e-mail address or phone number of any of the customer's
identities, the customer's name, or words in the subject or any message; each way is an
index read. ``search_q`` filters a queue as it reads, ``search_candidates`` lists the few
matching ids first when there are few.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from customers.identifiers import normalize_platform_id
from customers.models import Customer, Identity

from .. import fulltext
from ..models import REFERENCE_PATTERN, Case, Message

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
