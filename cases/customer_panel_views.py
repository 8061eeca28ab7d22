"""The case page's customer panel actions: add a suggested contact detail, or say it is not
theirs, without leaving the case. Thin: check, call ``cases.suggestion_services``, answer as
every case action does (``views._act``: a message, the case's regions out of band for htmx,
else a redirect to the case)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from customers.errors import CustomerRefused
from customers.models import IdentitySuggestion

from . import customer_panel, permissions, selectors, views
from . import suggestion_services as suggestions
from .errors import NotPermitted
from .models import Case


def _suggestion(request: HttpRequest, case: Case, suggestion_id: int) -> IdentitySuggestion:
    """The suggestion made for the case's customer that ``request.user`` may decide, else refuse."""
    if not permissions.can_link_identities(request.user):
        raise NotPermitted(_("Only members of a department decide suggested contact details."))
    suggestion = selectors.customer_suggestion(customer=case.customer, suggestion_id=suggestion_id)
    if suggestion is None:
        raise Http404("No such suggestion.")
    return suggestion


@login_required
@require_POST
def case_suggestion_accept(request: HttpRequest, reference: str, suggestion_id: int) -> HttpResponse:
    def accept(case: Case, _data: dict) -> str:
        suggestion = _suggestion(request, case, suggestion_id)
        try:
            identity = suggestions.suggestion_accept(suggestion=suggestion, actor=request.user)
        except CustomerRefused as error:
            raise suggestions.as_service_error(error) from error
        return _("%(value)s is now %(customer)s's %(kind)s (suggested, confirmed by you).") % {
            "value": suggestion.value,
            "customer": case.customer,
            "kind": customer_panel.CONTACT_LABELS.get(identity.kind, identity.get_kind_display()),
        }

    return views._act(request, reference, None, accept)


@login_required
@require_POST
def case_suggestion_dismiss(request: HttpRequest, reference: str, suggestion_id: int) -> HttpResponse:
    def dismiss(case: Case, _data: dict) -> str:
        suggestion = _suggestion(request, case, suggestion_id)
        try:
            suggestions.suggestion_dismiss(suggestion=suggestion, actor=request.user)
        except CustomerRefused as error:
            raise suggestions.as_service_error(error) from error
        return _("Dismissed: %(value)s will not be suggested for %(customer)s again.") % {
            "value": suggestion.value,
            "customer": case.customer,
        }

    return views._act(request, reference, None, dismiss)
