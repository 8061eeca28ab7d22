"""The customer page and its actions (links, suggestions, merges), as the case page does them."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Customer, Identity

from . import (
    forms,
    permissions,
    selectors,
    services,
)
from . import suggestion_services as suggestions
from .errors import ServiceError

# How the customer page names the input a refusal is about (the services name their arguments).
CUSTOMER_FIELDS = {
    "source": "Customer number",
    "target": "This customer",
    "customer": "Customer",
    "suggestion": "Suggestion",
    "reason": "Reason",
    "identity": "Handle, address or number",
}


def _customer_or_404(request: HttpRequest, pk: int) -> Customer:
    customer = selectors.customer_for_page(user=request.user, customer_id=pk)
    if customer is None:
        raise Http404("No such customer.")
    return customer


def _customer_context(
    request: HttpRequest,
    customer: Customer,
    *,
    merge_form: forms.CustomerMergeForm | None = None,
    unmerge_form: forms.CustomerUnmergeForm | None = None,
    link_form: forms.IdentityLinkForm | None = None,
) -> dict:
    user = request.user
    cases = selectors.customer_cases(user=user, customer=customer)
    merges = selectors.customer_merges(customer=customer)
    can_merge = permissions.can_merge_customers(user)
    merged_away = customer.merged_into_id is not None
    can_link = permissions.can_link_identities(user) and not merged_away
    return {
        "customer": customer,
        "identities": selectors.customer_identities_with_provenance(customer=customer),
        "cases": cases,
        "open_count": sum(1 for case in cases if case.is_open),
        "cases_limit": selectors.CUSTOMER_CASES_LIMIT,
        "suggestions": selectors.customer_suggestions(user=user, customer=customer),
        "suggestions_limit": selectors.CUSTOMER_SUGGESTIONS_LIMIT,
        # A customer merged away takes no links: they go to the one it was merged into.
        "can_link": can_link,
        "link_form": (link_form or forms.IdentityLinkForm()) if can_link else None,
        "can_merge": can_merge,
        "merged_in": merges.merged_in,
        "merged_away": merges.merged_away,
        "merge_form": (merge_form or forms.CustomerMergeForm(target=customer))
        if can_merge and not merged_away
        else None,
        "unmerge_form": (unmerge_form or forms.CustomerUnmergeForm()) if can_merge and merged_away else None,
        "can_privacy": permissions.can_erase_customer(user)
        or permissions.can_export_customer(user, customer),
    }


@login_required
@require_GET
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer_or_404(request, pk)
    return render(request, "cases/customer_detail.html", _customer_context(request, customer))


def _customer_refusal(request: HttpRequest, field: str | None, message: str) -> None:
    label = CUSTOMER_FIELDS.get(field or "", (field or "").replace("_", " ").capitalize())
    messages.error(request, f"{label}: {message}" if label else message)


def _customer_act(
    request: HttpRequest,
    pk: int,
    action: Callable[[Customer, dict], str],
    *,
    form_class: type | None = None,
    form_kwargs: Callable[[Customer], dict] | None = None,
    allowed: Callable[[object], bool] | None = None,
    denied: str = "",
    form_name: str = "",
) -> HttpResponse:
    """The customer page's version of ``_act``: check the rule, validate, call one service, report
    the outcome as a message. Success redirects to the customer page, or with htmx renders it;
    a refusal renders the page with its status and the form as it was typed."""
    customer = _customer_or_404(request, pk)
    status, form = 200, None
    if allowed is not None and not allowed(request.user):
        messages.error(request, denied)
        status = 403
    else:
        form = (
            form_class(request.POST, **(form_kwargs(customer) if form_kwargs else {})) if form_class else None
        )
        if form is not None and not form.is_valid():
            for text in forms.error_messages(form):
                messages.error(request, text)
            status = 400
        else:
            try:
                done = action(customer, form.cleaned_data if form is not None else {})
            except ServiceError as error:
                _customer_refusal(request, error.field, error.message)
                status = error.status
            except CustomerRefused as error:
                _customer_refusal(request, error.field, error.reason)
                status = 409 if error.field == "suggestion" else 400
            else:
                messages.success(request, done)
    if status == 200 and not request.htmx:
        return redirect("desk:customer", pk=pk)
    shown = _customer_or_404(request, pk)  # re-read: the service changed it
    kept = {form_name: form} if form_name and status == 400 else {}
    return render(
        request, "cases/customer_detail.html", _customer_context(request, shown, **kept), status=status
    )


def _suggestion_or_404(customer: Customer, suggestion_id: int):
    suggestion = selectors.customer_suggestion(customer=customer, suggestion_id=suggestion_id)
    if suggestion is None:
        raise Http404("No such suggestion.")
    return suggestion


@login_required
@require_POST
def customer_suggestion_accept(request: HttpRequest, pk: int, suggestion_id: int) -> HttpResponse:
    def accept(customer: Customer, _data: dict) -> str:
        suggestion = _suggestion_or_404(customer, suggestion_id)
        identity = suggestions.suggestion_accept(suggestion=suggestion, actor=request.user)
        return f"{identity} is now linked to {customer} (suggested, confirmed by you)."

    return _customer_act(
        request,
        pk,
        accept,
        allowed=permissions.can_link_identities,
        denied="Only members of a department link identities.",
    )


@login_required
@require_POST
def customer_suggestion_dismiss(request: HttpRequest, pk: int, suggestion_id: int) -> HttpResponse:
    def dismiss(customer: Customer, _data: dict) -> str:
        suggestion = _suggestion_or_404(customer, suggestion_id)
        suggestions.suggestion_dismiss(suggestion=suggestion, actor=request.user)
        return f"Dismissed: {suggestion.value} will not be suggested for {customer} again."

    return _customer_act(
        request,
        pk,
        dismiss,
        allowed=permissions.can_link_identities,
        denied="Only members of a department link identities.",
    )


@login_required
@require_POST
def customer_link(request: HttpRequest, pk: int) -> HttpResponse:
    """Link an identity (of a customer the agent sees) to this customer, as linked by an agent."""

    def link(customer: Customer, data: dict) -> str:
        identity = selectors.identity_for_link(user=request.user, kind=data["kind"], value=data["identifier"])
        if identity is None:
            raise ServiceError(
                f"No {Identity.Kind(data['kind']).label} identity '{data['identifier']}' that you can see.",
                field="identity",
            )
        if identity.customer_id == customer.pk:
            raise ServiceError(f"{identity} is already {customer}'s.", field="identity")
        previous = identity.customer
        customer_services.identity_link(
            identity=identity, customer=customer, actor=request.user, source=Identity.LinkSource.AGENT
        )
        return f"{identity} is now linked to {customer}; {previous} keeps their cases."

    return _customer_act(
        request,
        pk,
        link,
        form_class=forms.IdentityLinkForm,
        allowed=permissions.can_link_identities,
        denied="Only members of a department link identities.",
        form_name="link_form",
    )


@login_required
@require_POST
def customer_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge another customer (by number) into this one: supervisors and admins who see both."""

    def merge(customer: Customer, data: dict) -> str:
        source = selectors.customer_for_page(user=request.user, customer_id=data["source"])
        if source is None:
            raise ServiceError(f"There is no customer #{data['source']} that you can see.", field="source")
        services.customer_merge(source=source, target=customer, actor=request.user)
        return f"{source} (#{source.pk}) was merged into {customer}: their identities and cases are here now."

    return _customer_act(
        request,
        pk,
        merge,
        form_class=forms.CustomerMergeForm,
        form_kwargs=lambda customer: {"target": customer},
        allowed=permissions.can_merge_customers,
        denied="Only supervisors and admins merge customers.",
        form_name="merge_form",
    )


@login_required
@require_POST
def customer_unmerge(request: HttpRequest, pk: int) -> HttpResponse:
    """Undo the merge of this customer into another: it becomes a customer of its own again."""

    def unmerge(customer: Customer, data: dict) -> str:
        services.customer_unmerge(source=customer, actor=request.user, reason=data["reason"])
        return f"{customer} is a customer of their own again, with the identities and cases the merge moved."

    return _customer_act(
        request,
        pk,
        unmerge,
        form_class=forms.CustomerUnmergeForm,
        allowed=permissions.can_merge_customers,
        denied="Only supervisors and admins undo merges.",
        form_name="unmerge_form",
    )
