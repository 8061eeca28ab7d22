"""Reads about customers and their identities that more than one caller needs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db.models import Q

from .identifiers import normalize_platform_id
from .models import Customer, Identity


def identity_find(*, kind: str, platform_id: str) -> Identity | None:
    """The identity of ``kind`` with this platform id (in any spelling), with its customer; or None.

    An id that cannot be normalised (a malformed phone number or address) matches nothing.
    """
    try:
        canonical = normalize_platform_id(kind, platform_id)
    except ValidationError:
        return None
    return Identity.objects.select_related("customer").filter(kind=kind, platform_id=canonical).first()


def identities_find(*, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Identity]:
    """The identities of many ``(kind, platform id)`` pairs in one query, with their customers.

    Keyed by ``(kind, canonical platform id)``; pairs that are unknown or cannot be
    normalised are simply absent.
    """
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, platform_id in keys:
        try:
            by_kind[kind].add(normalize_platform_id(kind, platform_id))
        except ValidationError:
            continue
    if not by_kind:
        return {}
    match = Q()
    for kind, ids in by_kind.items():
        match |= Q(kind=kind, platform_id__in=sorted(ids))
    return {(i.kind, i.platform_id): i for i in Identity.objects.select_related("customer").filter(match)}


def customer_current(*, customer: Customer) -> Customer:
    """The customer that ``customer`` now lives in, following merges (a merged customer is kept
    only so the merge can be undone)."""
    seen = {customer.pk}
    while customer.merged_into_id is not None and customer.merged_into_id not in seen:
        seen.add(customer.merged_into_id)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer
