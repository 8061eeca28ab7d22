"""Deciding identity suggestions from the desk and the API, with the live pages told.

``customers.services`` writes the decision (it imports none of the other apps); here the
same decision is taken inside a transaction that, after commit, tells the case pages of
every customer whose identities it changed, through ``channels_app.publish``:

    {"type": "customer.changed", "change": "identities" | "suggestions",
     "customer_ids": [...], "case_ids": [...]}

sent to the case groups of those customers' open cases (``case_ids``). A socket watching one
of those cases is pushed the case's customer panel again (``channels_app.consumers``); a
case page without a socket, or whose socket was down, shows the panel as it is on its next
load or refresh. The event carries no case event (a link changes no case), so the replay of a
reconnecting page does not repeat it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from channels_app import groups
from channels_app.publish import publish_on_commit
from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Identity, IdentitySuggestion

from .errors import ServiceError
from .models import Case


def customer_announce(*, customer_ids: Iterable[int], change: str) -> None:
    """After commit, tell the pages of the open cases of ``customer_ids`` that the customers
    changed (one query for the cases; nothing is published when none is open)."""
    customer_ids = sorted({pk for pk in customer_ids if pk is not None})
    case_ids = list(
        Case.objects.filter(customer_id__in=customer_ids, status__in=Case.OPEN_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not case_ids:
        return
    publish_on_commit(
        event={
            "type": "customer.changed",
            "change": change,
            "customer_ids": customer_ids,
            "case_ids": case_ids,
        },
        groups=[groups.case_group(pk) for pk in case_ids],
    )


@transaction.atomic
def suggestion_accept(*, suggestion: IdentitySuggestion, actor) -> Identity:
    """``customers.services.identity_suggestion_accept``, and after commit a ``customer.changed``
    event for the pages of the open cases of the suggested customer and of the customer the
    identity belonged to before (if any). Refusals are ``CustomerRefused``, as there."""
    before = (
        Identity.objects.filter(kind=suggestion.kind, platform_id=suggestion.platform_id)
        .values_list("customer_id", flat=True)
        .first()
    )
    identity = customer_services.identity_suggestion_accept(suggestion=suggestion, actor=actor)
    customer_announce(customer_ids=[identity.customer_id, before], change="identities")
    return identity


@transaction.atomic
def suggestion_dismiss(*, suggestion: IdentitySuggestion, actor) -> IdentitySuggestion:
    """``customers.services.identity_suggestion_dismiss``, and after commit a ``customer.changed``
    event for the pages of the suggested customer's open cases (their panel drops it)."""
    suggestion = customer_services.identity_suggestion_dismiss(suggestion=suggestion, actor=actor)
    customer_announce(customer_ids=[suggestion.customer_id], change="suggestions")
    return suggestion


def as_service_error(error: CustomerRefused) -> ServiceError:
    """A customers refusal as the case pages report one (409 for a suggestion decided already)."""
    refused = ServiceError(error.reason, field=error.field)
    if error.field == "suggestion":
        refused.status = 409
    return refused
