"""The supervisors' board: departments, agents, the cases picked by its filters, bulk reassignment."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from . import (
    escalation,
    forms,
    health,
    permissions,
    selectors,
)
from .case_views import _report
from .errors import ServiceError
from .models import Case


def _board_departments_or_403(request: HttpRequest) -> list:
    departments = selectors.board_departments(user=request.user)
    if not departments:
        raise PermissionDenied("The board is for supervisors.")
    return departments


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    departments = _board_departments_or_403(request)
    seq = selectors.live_seq()
    stats = selectors.board_stats(departments=departments)
    agents = selectors.board_agent_rows(departments=departments, stats=stats)
    form = forms.BoardFilterForm(request.GET, departments=departments, agents=agents)
    form.is_valid()
    data = form.cleaned_data
    picked = selectors.board_cases(
        departments=departments,
        department_id=data.get("department"),
        assignee_id=data.get("agent"),
        sla_state=data.get("sla") or "",
        unassigned=bool(data.get("unassigned")),
    )
    targets, members = selectors.reassign_targets(user=request.user)
    return render(
        request,
        "cases/board.html",
        {
            "nav": "board",
            "department_rows": selectors.board_department_rows(departments=departments, stats=stats),
            "agent_rows": agents,
            "filter_form": form,
            "filter_errors": forms.error_messages(form),
            "picked": picked,
            "picked_limit": selectors.BOARD_CASES_LIMIT,
            "reassign_form": forms.BulkReassignForm(
                case_ids=[case.pk for case in picked], departments=targets, members=members
            ),
            "seq": seq,
            "now": datetime.now(UTC),
            # Channel health on the board's departments' channels (one statement).
            "health_alerts": health.open_health_alerts(department_ids={d.pk for d in departments}),
        },
    )


@login_required
@require_POST
def board_reassign(request: HttpRequest) -> HttpResponse:
    _board_departments_or_403(request)
    posted = [int(pk) for pk in request.POST.getlist("cases") if pk.isdigit()]
    visible = Case.objects.filter(permissions.visible_cases_q(request.user), pk__in=posted).distinct()
    case_ids = list(visible.values_list("pk", flat=True))
    targets, members = selectors.reassign_targets(user=request.user)
    form = forms.BulkReassignForm(request.POST, case_ids=case_ids, departments=targets, members=members)
    back = reverse("desk:board") + ("?" + urlencode(_board_query(request)) if _board_query(request) else "")
    if not form.is_valid():
        for text in forms.error_messages(form):
            messages.error(request, text)
        return redirect(back)
    data = form.cleaned_data
    try:
        moved = escalation.case_bulk_reassign(
            cases=Case.objects.filter(pk__in=data["cases"]),
            to_department=form.departments.get(data["to_department"]) if data["to_department"] else None,
            assignee=form.users.get(data["assignee"]) if data["assignee"] else None,
            actor=request.user,
            reason=data["reason"],
            note=data["note"],
        )
    except ServiceError as error:
        _report(request, error)
        return redirect(back)
    messages.success(request, f"{len(moved)} case{'s' if len(moved) != 1 else ''} reassigned.")
    return redirect(back)


def _board_query(request: HttpRequest) -> dict:
    return {
        name: request.POST[f"filter_{name}"]
        for name in ("department", "agent", "sla", "unassigned")
        if request.POST.get(f"filter_{name}")
    }
