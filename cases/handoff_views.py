"""Accepting and handing back a hand-over from the case page's banner.

Plain POST forms that redirect back to the case (no JavaScript needed); with htmx the
answer is the case's regions out of band, as every other case action answers
(:func:`cases.views._answer`). The rules are the services': members of the receiving
department and admins (:mod:`cases.rules`).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import escalation, forms, selectors
from .errors import ServiceError
from .views import _answer, _case_context, _case_or_404, _page_or_404, _report


@login_required
@require_POST
def case_accept(request: HttpRequest, reference: str) -> HttpResponse:
    """Accept the hand-over; the case is claimed by the user when nobody has it."""
    case = _case_or_404(request, reference)
    try:
        accepted = escalation.case_accept(case=case, actor=request.user)
    except ServiceError as error:
        _report(request, error)
        return _answer(request, reference, status=error.status)
    if accepted.assignee_id == request.user.pk:
        messages.success(request, _("You accepted %(case)s; it is yours.") % {"case": accepted.reference})
    else:
        messages.success(request, _("You accepted %(case)s.") % {"case": accepted.reference})
    return _answer(request, reference)


def _refused(request: HttpRequest, reference: str, form, status: int) -> HttpResponse:
    """The case again with the hand-back form as it was filled in, its errors beside the fields."""
    page = _page_or_404(request, reference)
    context = {**_case_context(request, page), "handback_form": form}
    if request.htmx:
        return render(request, "cases/partials/case_swap.html", context, status=status)
    return render(request, "cases/case_detail.html", context, status=status)


@login_required
@require_POST
def case_hand_back(request: HttpRequest, reference: str) -> HttpResponse:
    """Return the case to the department it came from, with a reason (required) and a note."""
    case = _case_or_404(request, reference)
    form = forms.EscalateForm(request.POST)
    if not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        return _refused(request, reference, form, 400)
    try:
        moved = escalation.case_handback(
            case=case, actor=request.user, reason=form.cleaned_data["reason"], note=form.cleaned_data["note"]
        )
    except ServiceError as error:
        _report(request, error)
        if error.field in form.fields:
            form.add_error(error.field, error.message)
        return _refused(request, reference, form, error.status)
    messages.success(
        request,
        _("%(case)s handed back to %(department)s.")
        % {"case": moved.reference, "department": moved.department},
    )
    if selectors.case_for_page(user=request.user, reference=reference) is None:
        # Handed away from the user's departments: the queue, not a page they may no longer see.
        if request.htmx:
            response = HttpResponse()
            response["HX-Redirect"] = reverse("desk:queue")
            return response
        return redirect("desk:queue")
    return _answer(request, reference)
