"""The admins' settings pages in the desk: service promises, breach ladders, business calendars.

Thin, over ``cases.promise_settings`` (reads, the services that write, the due-time preview).
Admins only (``cases.permissions.can_configure``): everyone else gets 403. Every form is a
plain POST that redirects back (works without JavaScript); the preview also answers htmx,
with the promise form's unsaved values, as the admin types.

The forms are in ``cases.settings_forms`` and the audit trail's rows in ``cases.settings_audit``;
this module re-exports the names other modules use from them (``audit_rows``).
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connectors.models import Channel

from . import permissions
from . import promise_settings as ps
from .errors import ServiceError
from .models import BusinessCalendar, Case, Department, EscalationPath, ServicePromise
from .settings_audit import _names, _value_text, audit_rows  # noqa: F401
from .settings_forms import (  # noqa: F401
    ARRIVAL_FORMATS,
    HOURS_HELP,
    MINUTES_INVALID,
    CalendarForm,
    LadderCreateForm,
    LadderForm,
    PreviewForm,
    PromiseForm,
    _minutes_field,
    _refusal,
)

# What a first message on each kind of channel is, for the preview's sentence.
ARRIVALS = {
    "x": gettext_lazy("A tweet"),
    "facebook": gettext_lazy("A Facebook message"),
    "instagram": gettext_lazy("An Instagram message"),
    "whatsapp": gettext_lazy("A WhatsApp message"),
    "email": gettext_lazy("An e-mail"),
    "phone": gettext_lazy("A call"),
}


def _admin_or_403(request: HttpRequest) -> None:
    if not permissions.can_configure(request.user):
        raise PermissionDenied("Settings are for admins.")


# --- The settings overview ---------------------------------------------------------------------------


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    _admin_or_403(request)
    channels = ps.channels_with_promises()
    calendars = ps.calendars()
    entries = ps.every_settings_entry()
    return render(
        request,
        "settings/index.html",
        {
            "nav": "settings",
            "channels": channels,
            "calendars": [
                {
                    "calendar": calendar,
                    "hours": _value_text("weekly_hours", calendar.weekly_hours or {}, {}),
                }
                for calendar in calendars
            ],
            "audit": audit_rows(entries, names=_names(calendars=calendars, channels=channels)),
        },
    )


# --- A channel: its promise, its department's breach ladder, the preview --------------------------------


def _channel_or_404(pk: int) -> Channel:
    channel = ps.channel_for_settings(pk)
    if channel is None:
        raise Http404("No such channel.")
    return channel


def _promise_of(channel: Channel) -> ServicePromise | None:
    try:
        return channel.promise
    except ServicePromise.DoesNotExist:
        return None


def _default_arrival(calendar: BusinessCalendar | None) -> datetime:
    zone = ps.display_zone(calendar, timezone.get_current_timezone_name())
    return timezone.now().astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)


def _preview(channel: Channel, promise: ServicePromise | None, data) -> dict:
    """The preview's context: the arrival form and, when it is valid, the due times."""
    calendar = promise.calendar if promise is not None else None
    form = PreviewForm(
        data
        if data and data.get("arrival")
        else {"arrival": _default_arrival(calendar).strftime(ARRIVAL_FORMATS[0]), "priority": "normal"}
    )
    context = {
        "preview_form": form,
        "preview": None,
        "preview_problem": "",
        "arrival_noun": ARRIVALS.get(channel.kind, _("A message")),
    }
    if promise is None:
        context["preview_problem"] = _(
            "This channel has no promise yet: save one to see when answers are due."
        )
        return context
    if not form.is_valid():
        context["preview_problem"] = " ".join(e for errors in form.errors.values() for e in errors)
        return context
    zone = ps.display_zone(calendar, timezone.get_current_timezone_name())
    arrival = form.cleaned_data["arrival"].replace(tzinfo=zone)
    try:
        context["preview"] = ps.due_preview(
            promise=promise, arrival=arrival, priority=form.cleaned_data["priority"] or Case.Priority.NORMAL
        )
    except ValueError as exc:
        context["preview_problem"] = str(exc)
    return context


def _channel_page(
    request: HttpRequest,
    channel: Channel,
    *,
    promise_form: PromiseForm | None = None,
    ladder_forms: dict[int, LadderForm] | None = None,
    create_form: LadderCreateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    promise = _promise_of(channel)
    calendars = ps.calendars()
    departments = list(Department.objects.order_by("name"))
    paths = channel.department.breach_paths
    targets = [d for d in departments if d.is_active and d.pk != channel.department_id]
    ladder_forms = ladder_forms or {}
    ladder = [
        {
            "path": path,
            "form": ladder_forms.get(path.pk)
            or LadderForm(
                prefix=f"ladder-{path.pk}", initial={name: getattr(path, name) for name in ps.LADDER_STEPS}
            ),
        }
        for path in paths
    ]
    entries = ps.recent_audit_entries(
        ([(ServicePromise, promise.pk)] if promise is not None else [])
        + [(EscalationPath, p.pk) for p in paths]
    )
    context = {
        "nav": "settings",
        "channel": channel,
        "promise": promise,
        "promise_form": promise_form
        or PromiseForm(initial=PromiseForm.initial_for(promise), calendars=calendars),
        "ladder": ladder,
        "applying": ps.applying_path(paths),
        "create_form": create_form
        or LadderCreateForm(
            prefix="new-ladder",
            departments=targets,
            initial={"warn_after_minutes": 0, "notify_after_minutes": 15, "escalate_after_minutes": 30},
        ),
        "can_create_ladder": bool(targets),
        "siblings": [ch for ch in channel.department.all_channels if ch.pk != channel.pk],
        "audit": audit_rows(
            entries, names=_names(calendars=calendars, departments=departments, channels=[channel])
        ),
        **_preview(channel, promise, request.GET),
    }
    return render(request, "settings/channel.html", context, status=status)


@login_required
@require_GET
def channel_settings(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_403(request)
    return _channel_page(request, _channel_or_404(pk))


@login_required
@require_POST
def promise_save(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_403(request)
    channel = _channel_or_404(pk)
    form = PromiseForm(request.POST, calendars=ps.calendars())
    if form.is_valid():
        try:
            ps.promise_save(channel=channel, actor=request.user, **form.promise_values())
        except ServiceError as error:
            _refusal(form, error)
        else:
            messages.success(request, _("The promise of %(channel)s is saved.") % {"channel": channel.name})
            return redirect("settings:channel", pk=channel.pk)
    return _channel_page(request, channel, promise_form=form, status=400)


@login_required
@require_POST
def ladder_save(request: HttpRequest, pk: int, path_id: int) -> HttpResponse:
    _admin_or_403(request)
    channel = _channel_or_404(pk)
    path = next((p for p in channel.department.breach_paths if p.pk == path_id), None)
    if path is None:
        raise Http404("No such breach ladder.")
    form = LadderForm(request.POST, prefix=f"ladder-{path.pk}")
    if form.is_valid():
        try:
            ps.ladder_save(path=path, actor=request.user, **form.steps())
        except ServiceError as error:
            _refusal(form, error)
        else:
            messages.success(
                request,
                _("The breach ladder to %(department)s is saved.") % {"department": path.to_department.name},
            )
            return redirect("settings:channel", pk=channel.pk)
    return _channel_page(request, channel, ladder_forms={path.pk: form}, status=400)


@login_required
@require_POST
def ladder_create(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_403(request)
    channel = _channel_or_404(pk)
    targets = Department.objects.filter(is_active=True).exclude(pk=channel.department_id).order_by("name")
    form = LadderCreateForm(request.POST, prefix="new-ladder", departments=list(targets))
    if form.is_valid():
        try:
            path = ps.ladder_create(
                department=channel.department,
                to_department=form.cleaned_data["to_department"],
                actor=request.user,
                **form.steps(),
            )
        except ServiceError as error:
            _refusal(form, error)
        else:
            messages.success(
                request,
                _("%(department)s now escalates breaches to %(target)s.")
                % {"department": channel.department.name, "target": path.to_department.name},
            )
            return redirect("settings:channel", pk=channel.pk)
    return _channel_page(request, channel, create_form=form, status=400)


@login_required
@require_GET
def promise_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The preview alone (htmx): with the promise form's values when they come along, else the saved promise."""
    _admin_or_403(request)
    channel = _channel_or_404(pk)
    promise = _promise_of(channel)
    problem = ""
    if "first_response_minutes" in request.GET:
        form = PromiseForm(request.GET, calendars=ps.calendars())
        if form.is_valid():
            values = form.promise_values()
            promise = ServicePromise(channel=channel, **values)
        else:
            promise = None
            problem = (
                _("Fix the promise to preview it:")
                + " "
                + " ".join(e for errors in form.errors.values() for e in errors)
            )
    context = _preview(channel, promise, request.GET)
    if problem:
        context["preview_problem"] = problem
    return render(request, "settings/partials/preview.html", {"channel": channel, **context})


# --- Calendars -------------------------------------------------------------------------------------------


def _calendar_page(
    request: HttpRequest, calendar: BusinessCalendar | None, form: CalendarForm, *, status: int = 200
) -> HttpResponse:
    used_by = ps.calendar_users(calendar) if calendar is not None else []
    entries = ps.recent_audit_entries([(BusinessCalendar, calendar.pk)]) if calendar is not None else []
    return render(
        request,
        "settings/calendar.html",
        {
            "nav": "settings",
            "calendar": calendar,
            "form": form,
            "time_zones": ps.time_zones(),
            "used_by": used_by,
            "closed_days": ps.upcoming_closed_days(calendar, start=timezone.localdate())
            if calendar is not None
            else [],
            "audit": audit_rows(entries, names={}),
        },
        status=status,
    )


def _save_calendar(request: HttpRequest, calendar: BusinessCalendar | None) -> HttpResponse:
    form = CalendarForm(request.POST)
    if form.is_valid():
        try:
            saved = ps.calendar_save(calendar=calendar, actor=request.user, **form.calendar_values())
        except ServiceError as error:
            _refusal(form, error)
        else:
            messages.success(request, _("The calendar “%(name)s” is saved.") % {"name": saved.name})
            return redirect("settings:calendar", pk=saved.pk)
    return _calendar_page(request, calendar, form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def calendar_new(request: HttpRequest) -> HttpResponse:
    _admin_or_403(request)
    if request.method == "POST":
        return _save_calendar(request, None)
    return _calendar_page(request, None, CalendarForm(initial=CalendarForm.initial_for(None)))


@login_required
@require_http_methods(["GET", "POST"])
def calendar_settings(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_403(request)
    calendar = BusinessCalendar.objects.filter(pk=pk).first()
    if calendar is None:
        raise Http404("No such calendar.")
    if request.method == "POST":
        return _save_calendar(request, calendar)
    return _calendar_page(request, calendar, CalendarForm(initial=CalendarForm.initial_for(calendar)))
