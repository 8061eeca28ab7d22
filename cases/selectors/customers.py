"""The customer page: who the customer is and what the viewer may see of them.

The customer when the viewer sees one of their cases, their cases, their identities with
who linked each, the open identity suggestions, and the merges in force into or out of
them; and the identity an agent means when linking one by handle or platform id.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Lower

from customers.identifiers import normalize_platform_id
from customers.models import Customer, CustomerMerge, Identity, IdentitySuggestion

from .. import permissions
from ..models import Case, Message
from .timeline import _with_profile_links

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
