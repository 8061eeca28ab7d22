"""The queue page: one tab of open cases with its filters, over ``cases.selectors``.

Also an agent's saved views of the queue's filters (``cases.saved_views``: save, open, rename,
delete; plain POST forms that redirect back, answered with the saved-views region under htmx)
and the queue as CSV (``cases.exports``), with the filters on screen.
"""

from __future__ import annotations

from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from . import (
    exports,
    forms,
    permissions,
    saved_views,
    selectors,
)
from .errors import ServiceError
from .templatetags.desk import quick_widget_renderer


class SavedViewForm(django_forms.Form):
    name = django_forms.CharField(
        label="Name",
        max_length=saved_views.NAME_MAX_LENGTH,
        error_messages={
            "required": "Name: give the view a name.",
            "max_length": f"Name: at most {saved_views.NAME_MAX_LENGTH} characters.",
        },
    )
    # The queue's filters as the page shows them (checked again when the view is opened).
    query = django_forms.CharField(required=False, widget=django_forms.HiddenInput)


def _filter_form(request: HttpRequest, data: QueryDict) -> forms.QueueFilterForm:
    departments = selectors.queue_departments(user=request.user)
    return forms.QueueFilterForm(
        data,
        departments=departments,
        all_label="All departments" if permissions.is_admin(request.user) else "All my departments",
        renderer=quick_widget_renderer,  # the same markup as Django's widget templates, quicker
    )


def _queue_filters(request: HttpRequest, form: forms.QueueFilterForm) -> dict:
    """The validated filters of the queue as ``selectors.case_queue`` takes them."""
    data = form.cleaned_data
    q = (data.get("q") or "").strip()
    view = data.get("view") or ("mine" if selectors.user_has_open_cases(user=request.user) else "department")
    return {
        "user": request.user,
        "view": view,
        "channel_kind": data.get("kind") or "",
        "priority": data.get("priority") or "",
        "status": data.get("status") or "",
        "department_id": data.get("department"),
        "q": q,
    }


def _saved_views_context(request: HttpRequest, current_query: str, **extra) -> dict:
    return {
        "saved_views": saved_views.saved_views_of(user=request.user),
        "current_query": current_query,
        "save_form": extra.pop("save_form", None) or SavedViewForm(initial={"query": current_query}),
        "rename_error": extra.pop("rename_error", None),
        **extra,
    }


def _queue_page(request: HttpRequest, data: QueryDict, *, save_form=None, status: int = 200) -> HttpResponse:
    form = _filter_form(request, data)
    form.is_valid()  # invalid filters are dropped and reported; the rest still apply
    filters = _queue_filters(request, form)
    q = filters["q"]
    reference = selectors.search_reference(q) if q else None
    # A reference typed in full opens the case itself when the agent may see it.
    if (
        reference
        and q.upper().startswith("C-")
        and selectors.case_for_page(user=request.user, reference=reference) is not None
    ):
        return redirect("desk:case", reference=reference)
    view = filters["view"]
    seq = selectors.live_seq()
    after = form.cleaned_data.get("after")
    page = selectors.case_queue_page(**filters, after=after)
    current_query = saved_views.normalize_query({**form.cleaned_data, "view": view})
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
            "export_query": current_query,
            **_saved_views_context(request, current_query, save_form=save_form),
        },
        status=status,
    )


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    return _queue_page(request, request.GET)


@login_required
@require_GET
def queue_export(request: HttpRequest) -> HttpResponse:
    """The queue's cases under the filters on screen, every page of them, as CSV (streamed)."""
    form = _filter_form(request, request.GET)
    form.is_valid()  # as the page: invalid filters are dropped
    filters = _queue_filters(request, form)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return exports.csv_response(
        request,
        header=exports.QUEUE_HEADER,
        rows=exports.queue_rows(**filters),
        filename=f"queue-{filters['view']}-{stamp}.csv",
    )


# --- Saved views --------------------------------------------------------------------------------------


def _queue_url(query: str) -> str:
    return f"{reverse('desk:queue')}?{query}" if query else reverse("desk:queue")


def _view_or_404(request: HttpRequest, pk: int):
    view = saved_views.saved_view_of(user=request.user, pk=pk)
    if view is None:
        raise Http404("No such saved view.")
    return view


def _saved_views_region(
    request: HttpRequest, current_query: str, *, status: int = 200, **extra
) -> HttpResponse:
    context = _saved_views_context(request, current_query, **extra)
    return render(request, "cases/partials/saved_views.html", context, status=status)


@login_required
@require_GET
def saved_view_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Open a saved view: its query checked by the queue's own filter form, then the queue with it.

    A stored filter that no longer applies (a department the agent left, a value that is no
    longer a choice) is named in a message and left out; the rest of the view opens.
    """
    view = _view_or_404(request, pk)
    form = _filter_form(request, QueryDict(view.query))
    if form.is_valid():
        return redirect(_queue_url(view.query))
    problems = " ".join(forms.error_messages(form))
    messages.warning(
        request, f"The saved view “{view.name}” has filters that no longer apply, left out: {problems}"
    )
    valid = {key: value for key, value in form.cleaned_data.items() if key not in form.errors}
    return redirect(_queue_url(saved_views.normalize_query({**valid, "view": valid.get("view") or ""})))


@login_required
@require_POST
def saved_view_create(request: HttpRequest) -> HttpResponse:
    form = SavedViewForm(request.POST)
    query = saved_views.normalize_query(request.POST.get("query") or "")
    if form.is_valid():
        try:
            view = saved_views.saved_view_create(
                user=request.user, name=form.cleaned_data["name"], query=form.cleaned_data["query"]
            )
        except ServiceError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            if request.htmx:
                return _saved_views_region(request, view.query)
            messages.success(request, f"Saved the view “{view.name}”.")
            return redirect(_queue_url(view.query))
    if request.htmx:
        return _saved_views_region(request, query, save_form=form, status=400)
    return _queue_page(request, QueryDict(query), save_form=form, status=400)


@login_required
@require_POST
def saved_view_rename(request: HttpRequest, pk: int) -> HttpResponse:
    view = _view_or_404(request, pk)
    current = saved_views.normalize_query(request.POST.get("current") or "")
    try:
        saved_views.saved_view_rename(view=view, user=request.user, name=request.POST.get("name") or "")
    except ServiceError as error:
        if request.htmx:
            return _saved_views_region(
                request, current, status=400, rename_error={"pk": view.pk, "message": error.message}
            )
        messages.error(request, f"Renaming “{view.name}”: {error.message}")
        return redirect(_queue_url(current))
    if request.htmx:
        return _saved_views_region(request, current)
    messages.success(request, f"Renamed the view to “{view.name}”.")
    return redirect(_queue_url(current))


@login_required
@require_POST
def saved_view_delete(request: HttpRequest, pk: int) -> HttpResponse:
    view = _view_or_404(request, pk)
    current = saved_views.normalize_query(request.POST.get("current") or "")
    saved_views.saved_view_delete(view=view, user=request.user)
    if request.htmx:
        return _saved_views_region(request, current)
    messages.success(request, f"Deleted the view “{view.name}”.")
    return redirect(_queue_url(current))
