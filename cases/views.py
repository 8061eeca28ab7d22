"""The agent desk pages: thin views over cases.selectors (reads) and cases.services (writes).

Every action is a plain POST form that redirects back to the case (works without
JavaScript); with htmx the same POST answers with the case body partial instead.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import forms, permissions, selectors, services
from .errors import ServiceError
from .models import Case


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    departments = selectors.queue_departments(user=request.user)
    form = forms.QueueFilterForm(
        request.GET,
        departments=departments,
        all_label="All departments" if permissions.is_admin(request.user) else "All my departments",
    )
    form.is_valid()  # invalid filters are dropped and reported; the rest still apply
    data = form.cleaned_data
    view = data.get("view") or ("mine" if selectors.user_has_open_cases(user=request.user) else "department")
    page = selectors.case_queue_page(
        user=request.user,
        view=view,
        channel_kind=data.get("kind") or "",
        priority=data.get("priority") or "",
        status=data.get("status") or "",
        department_id=data.get("department"),
        after=data.get("after"),
    )
    return render(
        request,
        "cases/queue.html",
        {
            "form": form,
            "view": view,
            "nav": "mine" if view == "mine" else "queues",
            "views": form.fields["view"].choices,
            "cases": page.cases,
            "next_cursor": page.next_cursor.encode() if page.next_cursor else "",
            "is_later_page": data.get("after") is not None,
            "filter_errors": forms.error_messages(form),
        },
    )


def _case_or_404(request: HttpRequest, reference: str) -> Case:
    case = selectors.case_for_page(user=request.user, reference=reference)
    if case is None:
        raise Http404("No such case.")
    return case


def _case_context(request: HttpRequest, case: Case) -> dict:
    return {
        "case": case,
        "timeline": list(selectors.case_timeline(case=case)),
        "identities": selectors.customer_identities(customer=case.customer),
        "other_cases": selectors.customer_other_cases(user=request.user, case=case),
        "can_work": permissions.can_work_case(request.user, case),
        "note_form": forms.NoteForm(),
        "statuses": Case.Status.choices,
        "priorities": Case.Priority.choices,
    }


@login_required
@require_GET
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    case = _case_or_404(request, reference)
    return render(request, "cases/case_detail.html", _case_context(request, case))


def _act(
    request: HttpRequest,
    reference: str,
    form_class: type | None,
    action: Callable[[Case, dict], str],
) -> HttpResponse:
    """Validate, call one service, report the outcome as a message, then show the case again."""
    case = _case_or_404(request, reference)
    form = form_class(request.POST) if form_class else None
    if form is not None and not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
    else:
        try:
            done = action(case, form.cleaned_data if form is not None else {})
        except ServiceError as error:
            field = f"{error.field.replace('_', ' ').capitalize()}: " if error.field else ""
            messages.error(request, f"{field}{error.message}")
        else:
            messages.success(request, done)
    if request.htmx:
        case = _case_or_404(request, reference)  # re-read: the service changed it
        return render(request, "cases/partials/case_swap.html", _case_context(request, case))
    return redirect("desk:case", reference=reference)


@login_required
@require_POST
def case_claim(request: HttpRequest, reference: str) -> HttpResponse:
    def claim(case: Case, _data: dict) -> str:
        services.case_claim(case=case, actor=request.user)
        return f"{case.reference} is yours."

    return _act(request, reference, None, claim)


@login_required
@require_POST
def case_note(request: HttpRequest, reference: str) -> HttpResponse:
    def note(case: Case, data: dict) -> str:
        services.note_add(case=case, author=request.user, text=data["text"])
        return "Note added."

    return _act(request, reference, forms.NoteForm, note)


@login_required
@require_POST
def case_status(request: HttpRequest, reference: str) -> HttpResponse:
    def set_status(case: Case, data: dict) -> str:
        changed = services.case_set_status(
            case=case, status=data["status"], actor=request.user, reason=data["reason"]
        )
        return f"Status is now {changed.get_status_display().lower()}."

    return _act(request, reference, forms.StatusForm, set_status)


@login_required
@require_POST
def case_priority(request: HttpRequest, reference: str) -> HttpResponse:
    def set_priority(case: Case, data: dict) -> str:
        changed = services.case_set_priority(
            case=case, priority=data["priority"], actor=request.user, reason=data["reason"]
        )
        return f"Priority is now {changed.get_priority_display().lower()}."

    return _act(request, reference, forms.PriorityForm, set_priority)
