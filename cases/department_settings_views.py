"""The department clock's setting in the desk: each department's handling target
(``/desk/settings/departments/``), for admins (every department) and supervisors (their own).

Thin, over :func:`cases.department_clock.department_target_save`; beside the forms, the recent
entries of the configuration audit trail for the departments on screen.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import department_clock, permissions
from . import promise_settings as ps
from .errors import ServiceError
from .models import Department
from .settings_audit import audit_rows


class DepartmentTargetForm(forms.Form):
    handling_target_minutes = forms.IntegerField(
        label="Handling target (minutes)",
        required=False,
        min_value=1,
        max_value=department_clock.TARGET_MAX_MINUTES,
        help_text="How long a case may stay with the department before the desk warns. Empty: no target.",
        error_messages={
            "invalid": "Handling target: a whole number of minutes, or empty for no target.",
            "min_value": "Handling target: at least 1 minute, or empty for no target.",
            "max_value": "Handling target: at most a year (525600 minutes).",
        },
        widget=forms.NumberInput(attrs={"min": 1, "step": 1, "class": "num"}),
    )


def _departments(request: HttpRequest) -> list[Department]:
    """The departments whose target the user may set, by name; 403 when there are none."""
    ids = permissions.target_department_ids(request.user)
    departments = Department.objects.order_by("name")
    if ids is not None:
        departments = departments.filter(pk__in=sorted(ids))
    departments = list(departments)
    if not departments:
        raise PermissionDenied("Department targets are for admins and supervisors.")
    return departments


def _form(department: Department, data=None) -> DepartmentTargetForm:
    return DepartmentTargetForm(
        data,
        prefix=f"department-{department.pk}",
        initial={"handling_target_minutes": department.handling_target_minutes},
    )


def _page(
    request: HttpRequest,
    departments: list[Department],
    *,
    bound: DepartmentTargetForm | None = None,
    status=200,
) -> HttpResponse:
    rows = [
        {
            "department": department,
            "form": bound
            if bound is not None and bound.prefix == f"department-{department.pk}"
            else _form(department),
        }
        for department in departments
    ]
    entries = ps.recent_audit_entries([(Department, department.pk) for department in departments])
    return render(
        request,
        "settings/departments.html",
        {
            "nav": "settings" if permissions.is_admin(request.user) else "board",
            "rows": rows,
            "at_risk_percent": round(department_clock.AT_RISK_SHARE * 100),
            "audit": audit_rows(entries, names={}),
        },
        status=status,
    )


@login_required
@require_GET
def department_targets(request: HttpRequest) -> HttpResponse:
    return _page(request, _departments(request))


@login_required
@require_POST
def department_target_save(request: HttpRequest, pk: int) -> HttpResponse:
    departments = _departments(request)
    department = next((d for d in departments if d.pk == pk), None)
    if department is None:
        raise Http404("No such department.")
    form = _form(department, request.POST)
    if form.is_valid():
        minutes = form.cleaned_data["handling_target_minutes"]
        try:
            department_clock.department_target_save(
                department=department, actor=request.user, minutes=minutes
            )
        except ServiceError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(
                request,
                f"{department.name}'s handling target is now {minutes} minutes."
                if minutes is not None
                else f"{department.name} has no handling target now.",
            )
            return redirect("settings:departments")
    return _page(request, departments, bound=form, status=400)
