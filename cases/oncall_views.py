"""The desk's on-call screens: the rota (supervisors add and remove shifts) and acknowledging a
page from its signed e-mail link. Writes go through :mod:`cases.oncall` and :mod:`cases.urgent`."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from . import oncall, urgent
from .errors import ServiceError
from .forms import error_messages
from .models import OnCallShift


class ShiftForm(forms.Form):
    department = forms.TypedChoiceField(label=gettext_lazy("Department"), coerce=int)
    user = forms.TypedChoiceField(label=gettext_lazy("Person on call"), coerce=int)
    starts_at = forms.DateTimeField(
        label=gettext_lazy("Starts"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    ends_at = forms.DateTimeField(
        label=gettext_lazy("Ends"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args, departments, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [(d.pk, d.name) for d in departments]
        seen, users = set(), []
        for membership in members:
            if membership.user_id not in seen:
                seen.add(membership.user_id)
                users.append(
                    (membership.user_id, membership.user.get_full_name() or membership.user.get_username())
                )
        self.fields["user"].choices = users

    def clean(self):
        data = super().clean()
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            self.add_error("ends_at", _("The shift must end after it starts."))
        return data


def _rota_page(request: HttpRequest, form: ShiftForm | None = None, status: int = 200) -> HttpResponse:
    departments = oncall.rota_departments(user=request.user)
    if not departments:
        raise PermissionDenied("Only supervisors and admins keep on-call rotas.")
    members = oncall.rota_members(departments=departments)
    shifts = oncall.rota_shifts(user=request.user)
    on_call = {}
    from django.utils import timezone

    now = timezone.now()
    for shift in shifts:
        if shift.starts_at <= now < shift.ends_at:
            on_call.setdefault(shift.department_id, shift)
    return render(
        request,
        "cases/oncall/rota.html",
        {
            "nav": "oncall",
            "form": form or ShiftForm(departments=departments, members=members),
            "shifts": shifts,
            "now_rows": [(d, on_call.get(d.pk)) for d in departments],
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def rota(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _rota_page(request)
    departments = oncall.rota_departments(user=request.user)
    if not departments:
        raise PermissionDenied("Only supervisors and admins keep on-call rotas.")
    form = ShiftForm(
        request.POST, departments=departments, members=oncall.rota_members(departments=departments)
    )
    if not form.is_valid():
        for text in error_messages(form):
            messages.error(request, text)
        return _rota_page(request, form, status=400)
    department = next(d for d in departments if d.pk == form.cleaned_data["department"])
    user = get_user_model().objects.get(pk=form.cleaned_data["user"])
    try:
        oncall.shift_add(
            actor=request.user,
            department=department,
            user=user,
            starts_at=form.cleaned_data["starts_at"],
            ends_at=form.cleaned_data["ends_at"],
        )
    except ServiceError as error:
        if error.field in form.fields:
            form.add_error(error.field, error.message)
        for text in error_messages(form) or [error.message]:
            messages.error(request, text)
        return _rota_page(request, form, status=error.status)
    messages.success(request, _("Shift added."))
    return redirect("desk:oncall")


@login_required
@require_POST
def shift_remove(request: HttpRequest, pk: int) -> HttpResponse:
    shift = get_object_or_404(OnCallShift, pk=pk)
    try:
        oncall.shift_remove(actor=request.user, shift=shift)
    except ServiceError as error:
        raise PermissionDenied(error.message) from error
    messages.success(request, _("Shift removed."))
    return redirect("desk:oncall")


@require_http_methods(["GET", "POST"])
def page_ack(request: HttpRequest, token: str) -> HttpResponse:
    """The e-mail's acknowledge link: the signed token is the credential (the person may be on a
    phone, signed out). GET shows the page and a button; POST acknowledges, as the person paged."""
    page = urgent.page_from_token(token)
    if page is None:
        raise Http404("This acknowledge link is not valid or has expired.")
    if request.method == "POST":
        if urgent.page_acknowledge(page=page, actor=page.user):
            messages.success(request, _("Page acknowledged."))
        page.refresh_from_db()
    return render(request, "cases/oncall/ack.html", {"page": page, "token": token})
