"""What the case page's customer panel shows: one context for the page and its live push.

The panel names the customer, their identities, their other cases the viewer may see and
their newest open identity suggestions, each worded for its kind: an address or number that
is another customer's ("… is another customer's phone", reviewed on the customer page,
where that customer is named only to who sees them) or one that is nobody's ("Add … as
this customer's phone?", with Add / Not theirs right there).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from customers.models import IdentitySuggestion

from . import permissions, selectors
from .models import Case

# Open suggestions the panel lists (the customer page lists them all).
PANEL_SUGGESTIONS_LIMIT = 3
# How the panel names a contact detail of each kind ("this customer's phone").
CONTACT_LABELS = {
    "email": _("e-mail address"),
    "phone": _("phone"),
    "whatsapp": _("WhatsApp number"),
}


def panel_suggestions(*, case: Case, limit: int = PANEL_SUGGESTIONS_LIMIT) -> list[IdentitySuggestion]:
    """The newest ``limit`` open suggestions of the case's customer (one more is read, to say
    there are more), each with ``contact_label``. One query, and none when the case as read by
    ``selectors.case_page`` says the customer has none (``customer_has_suggestions``)."""
    if not getattr(case, "customer_has_suggestions", False):
        return []
    rows = list(
        IdentitySuggestion.objects.filter(customer_id=case.customer_id, status=IdentitySuggestion.Status.OPEN)
        .only("pk", "customer_id", "kind", "platform_id", "identity_id", "value", "created_at")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    for row in rows:
        row.contact_label = CONTACT_LABELS.get(row.kind, row.kind)
    return rows


def panel_context(*, user, page: selectors.CasePage, identities: list) -> dict:
    """The customer panel's context for ``user`` (the page's own, or a push's)."""
    suggestions = panel_suggestions(case=page.case)
    return {
        "case": page.case,
        "identities": identities,
        "other_cases": page.other_cases,
        "panel_suggestions": suggestions[:PANEL_SUGGESTIONS_LIMIT],
        "panel_suggestions_more": len(suggestions) > PANEL_SUGGESTIONS_LIMIT,
        "can_decide_suggestions": permissions.can_link_identities(user)
        and page.case.customer.merged_into_id is None,
    }


def panel_for_push(*, user, reference: str) -> dict | None:
    """The panel's whole context for a live push to ``user``'s page of case ``reference``, or None
    when they may no longer see the case."""
    page = selectors.case_page(user=user, reference=reference)
    if page is None:
        return None
    return panel_context(
        user=user, page=page, identities=selectors.customer_identities(customer=page.case.customer)
    )
