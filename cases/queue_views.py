"""The queue page: one tab of open cases with its filters, over ``cases.selectors``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from . import (
    forms,
    permissions,
    selectors,
)
from .templatetags.desk import quick_widget_renderer


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    departments = selectors.queue_departments(user=request.user)
    form = forms.QueueFilterForm(
        request.GET,
        departments=departments,
        all_label="All departments" if permissions.is_admin(request.user) else "All my departments",
        renderer=quick_widget_renderer,  # the same markup as Django's widget templates, quicker
    )
    form.is_valid()  # invalid filters are dropped and reported; the rest still apply
    data = form.cleaned_data
    q = (data.get("q") or "").strip()
    reference = selectors.search_reference(q) if q else None
    # A reference typed in full opens the case itself when the agent may see it.
    if (
        reference
        and q.upper().startswith("C-")
        and selectors.case_for_page(user=request.user, reference=reference) is not None
    ):
        return redirect("desk:case", reference=reference)
    view = data.get("view") or ("mine" if selectors.user_has_open_cases(user=request.user) else "department")
    seq = selectors.live_seq()
    after = data.get("after")
    page = selectors.case_queue_page(
        user=request.user,
        view=view,
        channel_kind=data.get("kind") or "",
        priority=data.get("priority") or "",
        status=data.get("status") or "",
        department_id=data.get("department"),
        q=q,
        after=after,
    )
    return render(
        request,
        "cases/queue.html",
        {
            "form": form,
            "view": view,
            "q": q,
            "nav": "mine" if view == "mine" else "queues",
            "views": form.fields["view"].choices,
            "cases": page.cases,
            "next_cursor": page.next_cursor.encode() if page.next_cursor else "",
            "after_cursor": after.encode() if after else "",
            "is_later_page": after is not None,
            "filter_errors": forms.error_messages(form),
            "seq": seq,
        },
    )
