"""The admins' settings pages in the desk: service promises, breach ladders, business calendars.

Thin, over ``cases.promise_settings`` (reads, the services that write, the due-time preview).
Admins only (``cases.permissions.can_configure``): everyone else gets 403. Every form is a
plain POST that redirects back (works without JavaScript); the preview also answers htmx,
with the promise form's unsaved values, as the admin types.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connectors.models import Channel

from . import permissions, selectors
from . import promise_settings as ps
from .errors import ServiceError
from .models import BusinessCalendar, Case, Department, EscalationPath, ServicePromise

MINUTES_INVALID = "a whole number of working minutes"
ARRIVAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")
# What a first message on each kind of channel is, for the preview's sentence.
ARRIVALS = {
    "x": "A tweet",
    "facebook": "A Facebook message",
    "instagram": "An Instagram message",
    "whatsapp": "A WhatsApp message",
    "email": "An e-mail",
    "phone": "A call",
}


def _admin_or_403(request: HttpRequest) -> None:
    if not permissions.can_configure(request.user):
        raise PermissionDenied("Settings are for admins.")


def _minutes_field(label: str, *, required: bool = True, **kwargs) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=required,
        error_messages={
            "required": f"{label} is required, in working minutes.",
            "invalid": f"{label}: {MINUTES_INVALID}.",
        },
        widget=forms.NumberInput(attrs={"min": kwargs.pop("min_value", 1), "step": 1, "class": "num"}),
        **kwargs,
    )


# --- Forms ---------------------------------------------------------------------------------------


class PromiseForm(forms.Form):
    """A channel's promise: three targets, the at-risk share, the calendar, per-priority overrides."""

    calendar = forms.ChoiceField(label="Business calendar", required=False)
    first_response_minutes = _minutes_field("First response target")
    next_response_minutes = _minutes_field("Next response target")
    resolution_minutes = _minutes_field("Resolution target")
    at_risk_ratio = forms.DecimalField(
        label="At-risk share",
        required=False,
        help_text="Share of a target used after which a case shows as at risk (0.75 is 75%).",
        error_messages={"invalid": "At-risk share is a number such as 0.75."},
        widget=forms.NumberInput(attrs={"min": "0.01", "max": "0.99", "step": "0.01", "class": "num"}),
    )

    def __init__(self, *args, calendars: list[BusinessCalendar], **kwargs):
        super().__init__(*args, **kwargs)
        self.calendars = {str(c.pk): c for c in calendars}
        self.fields["calendar"].choices = [("", "24/7 (no calendar)")] + [
            (pk, c.name) for pk, c in self.calendars.items()
        ]
        for priority, priority_label in Case.Priority.choices:
            for name, target_label in ps.TARGETS.items():
                self.fields[self.override_name(priority, name)] = _minutes_field(
                    f"{priority_label} {target_label.lower()}", required=False
                )

    @staticmethod
    def override_name(priority: str, target: str) -> str:
        return f"override_{priority}_{target}"

    @classmethod
    def initial_for(cls, promise: ServicePromise | None) -> dict:
        promise = promise or ServicePromise()
        initial = {
            "calendar": str(promise.calendar_id or ""),
            "at_risk_ratio": Decimal(promise.at_risk_ratio),
            **{name: getattr(promise, name) for name in ps.TARGETS},
        }
        for priority, targets in (promise.priority_overrides or {}).items():
            for name, minutes in targets.items():
                initial[cls.override_name(priority, name)] = minutes
        return initial

    def override_rows(self) -> list[tuple[str, list]]:
        """Bound override fields by priority, for the template's table."""
        return [
            (label, [self[self.override_name(priority, name)] for name in ps.TARGETS])
            for priority, label in Case.Priority.choices
        ]

    def clean_calendar(self) -> BusinessCalendar | None:
        value = self.cleaned_data.get("calendar") or ""
        return self.calendars.get(value)

    def clean_at_risk_ratio(self) -> Decimal:
        value = self.cleaned_data.get("at_risk_ratio")
        if problem := ps.ratio_problem(value):
            raise forms.ValidationError(problem)
        return value

    def clean(self):
        data = super().clean()
        for name, label in ps.TARGETS.items():
            if name in data and (problem := ps.target_problem(label, data[name])):
                self.add_error(name, problem)
        overrides: dict[str, dict[str, int]] = {}
        for priority in Case.Priority.values:
            for name in ps.TARGETS:
                minutes = data.get(self.override_name(priority, name))
                if minutes is not None:
                    overrides.setdefault(priority, {})[name] = minutes
        targets = {name: data.get(name) for name in ps.TARGETS if name not in self.errors}
        for key, problem in ps.override_problems(targets, overrides).items():
            priority, _, name = key.partition(".")
            self.add_error(self.override_name(priority, name), problem)
        data["priority_overrides"] = overrides
        return data

    def promise_values(self) -> dict:
        data = self.cleaned_data
        return {
            "calendar": data["calendar"],
            **{name: data[name] for name in ps.TARGETS},
            "at_risk_ratio": data["at_risk_ratio"],
            "priority_overrides": data["priority_overrides"],
        }


class LadderForm(forms.Form):
    """The minutes of one breach ladder: after the breach, warn, notify, escalate (empty: skip)."""

    warn_after_minutes = _minutes_field(ps.LADDER_STEPS["warn_after_minutes"], required=False, min_value=0)
    notify_after_minutes = _minutes_field(
        ps.LADDER_STEPS["notify_after_minutes"], required=False, min_value=0
    )
    escalate_after_minutes = _minutes_field(
        ps.LADDER_STEPS["escalate_after_minutes"], required=False, min_value=0
    )

    def clean(self):
        data = super().clean()
        if not self.errors:
            for name, problem in ps.ladder_problems(data).items():
                self.add_error(name, problem)
        return data

    def steps(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in ps.LADDER_STEPS}


class LadderCreateForm(LadderForm):
    to_department = forms.ChoiceField(label="Escalate to")

    field_order = ["to_department", *ps.LADDER_STEPS]

    def __init__(self, *args, departments: list[Department], **kwargs):
        super().__init__(*args, **kwargs)
        self.departments = {str(d.pk): d for d in departments}
        self.fields["to_department"].choices = [(pk, d.name) for pk, d in self.departments.items()]

    def clean_to_department(self) -> Department:
        return self.departments[self.cleaned_data["to_department"]]


HOURS_HELP = "e.g. 09:00-12:30, 13:30-17:30 — empty: closed. 22:00-06:00 runs past midnight."


class CalendarForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120)
    time_zone = forms.CharField(
        label="Time zone",
        max_length=64,
        initial="UTC",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"}),
    )
    always_open = forms.BooleanField(label="Open around the clock (24/7; ignores the rest)", required=False)
    holiday_country = forms.CharField(
        label="Public holidays of",
        max_length=16,
        required=False,
        help_text="A country code such as GB, or with a subdivision, such as US-NY. Empty: none.",
    )
    extra_closed_dates = forms.CharField(
        label="Extra closed days",
        required=False,
        help_text="Dates as YYYY-MM-DD, separated by commas or lines.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for day, label in ps.WEEKDAYS.items():
            self.fields[f"hours_{day}"] = forms.CharField(
                label=label,
                required=False,
                max_length=200,
                widget=forms.TextInput(attrs={"placeholder": "closed", "size": 34, "spellcheck": "false"}),
            )

    @staticmethod
    def initial_for(calendar: BusinessCalendar | None) -> dict:
        if calendar is None:
            return {"time_zone": "UTC"}
        hours = calendar.weekly_hours or {}
        return {
            "name": calendar.name,
            "time_zone": calendar.time_zone,
            "always_open": calendar.always_open,
            "holiday_country": calendar.holiday_country,
            "extra_closed_dates": ", ".join(calendar.extra_closed_dates or []),
            **{f"hours_{day}": ps.format_day_hours(hours.get(day, [])) for day in ps.WEEKDAYS},
        }

    def hour_fields(self) -> list:
        return [self[f"hours_{day}"] for day in ps.WEEKDAYS]

    def clean_time_zone(self) -> str:
        try:
            return ps.check_time_zone(self.cleaned_data["time_zone"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_holiday_country(self) -> str:
        try:
            return ps.check_holiday_country(self.cleaned_data.get("holiday_country", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_extra_closed_dates(self) -> list[str]:
        try:
            return ps.parse_closed_dates(self.cleaned_data.get("extra_closed_dates", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        hours = {}
        for day, label in ps.WEEKDAYS.items():
            name = f"hours_{day}"
            if name not in data:
                continue
            try:
                spans = ps.parse_day_hours(data[name])
            except ValueError as exc:
                self.add_error(name, f"{label}: {exc}")
                continue
            if spans:
                hours[day] = spans
        data["weekly_hours"] = hours
        hour_errors = any(f"hours_{day}" in self.errors for day in ps.WEEKDAYS)
        if not data.get("always_open") and not hours and not hour_errors:
            self.add_error(
                None, "Weekly hours: a calendar that is not open around the clock needs open hours."
            )
        return data

    def calendar_values(self) -> dict:
        data = self.cleaned_data
        return {
            name: data[name]
            for name in (
                "name",
                "time_zone",
                "always_open",
                "weekly_hours",
                "holiday_country",
                "extra_closed_dates",
            )
        }


class PreviewForm(forms.Form):
    arrival = forms.CharField(
        label="A first message arriving at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}),
    )
    priority = forms.ChoiceField(
        label="Priority", choices=Case.Priority.choices, initial=Case.Priority.NORMAL, required=False
    )

    def clean_arrival(self) -> datetime:
        value = self.cleaned_data["arrival"].strip()
        for pattern in ARRIVAL_FORMATS:
            try:
                return datetime.strptime(value, pattern)  # noqa: DTZ007 - a wall-clock time in the calendar's zone
            except ValueError:
                continue
        raise forms.ValidationError("Arrival: a date and time such as 2026-12-04 17:55.")


def _refusal(form: forms.Form, error: ServiceError) -> None:
    """A service's refusal, shown on the field it names (or above the form)."""
    field = error.field if error.field in form.fields else None
    if error.field and error.field.startswith("priority_overrides."):
        priority, _, name = error.field.removeprefix("priority_overrides.").partition(".")
        field = PromiseForm.override_name(priority, name) if isinstance(form, PromiseForm) else None
        field = field if field in form.fields else None
    form.add_error(field, error.message)


# --- The audit trail, as people read it ----------------------------------------------------------

CHANGE_LABELS = {
    "calendar": "Calendar",
    "channel": "Channel",
    "first_response_minutes": "First response target",
    "next_response_minutes": "Next response target",
    "resolution_minutes": "Resolution target",
    "at_risk_ratio": "At-risk share",
    "priority_overrides": "Priority overrides",
    "name": "Name",
    "time_zone": "Time zone",
    "always_open": "Always open",
    "weekly_hours": "Weekly hours",
    "holiday_country": "Public holidays of",
    "extra_closed_dates": "Extra closed days",
    "warn_after_minutes": "Warn the assignee after",
    "notify_after_minutes": "Notify supervisors after",
    "escalate_after_minutes": "Escalate after",
    "to_department": "Escalate to",
    "from_department": "From department",
    "order": "Order",
    "trigger": "Trigger",
    "is_active": "Active",
    "handling_target_minutes": "Handling target",
}
ORDER = {field: n for n, field in enumerate(CHANGE_LABELS)}
ACTIONS = {0: "created", 1: "changed", 2: "deleted", 3: "accessed"}


def _value_text(field: str, value, names: dict) -> str:
    if value is None or value == "":
        return "skipped" if field in ps.LADDER_STEPS else ("24/7" if field == "calendar" else "—")
    if field in ("calendar", "to_department", "from_department", "channel"):
        return names.get((field, str(value)), f"#{value}")
    if field == "weekly_hours" and isinstance(value, dict):
        days = [f"{ps.WEEKDAYS[d][:3]} {ps.format_day_hours(s)}" for d, s in sorted(value.items()) if s]
        return "; ".join(days) or "closed every day"
    if field == "priority_overrides" and isinstance(value, dict):
        parts = [
            f"{priority}: " + ", ".join(f"{ps.TARGETS.get(n, n).lower()} {m}" for n, m in targets.items())
            for priority, targets in value.items()
            if targets
        ]
        return "; ".join(parts) or "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field in ps.TARGETS or field in ps.LADDER_STEPS or field == "handling_target_minutes":
        return f"{value} min"
    return str(value)


def _hours_changes(before: dict, after: dict) -> list[dict]:
    """A change of weekly hours, day by day: only the days that changed."""
    return [
        {
            "label": f"{ps.WEEKDAYS[day]} hours",
            "before": ps.format_day_hours(before.get(day) or []) or "closed",
            "after": ps.format_day_hours(after.get(day) or []) or "closed",
        }
        for day in ps.WEEKDAYS
        if (before.get(day) or []) != (after.get(day) or [])
    ]


def audit_rows(entries, *, names: dict) -> list[dict]:
    """Who, when, what, and each changed field's before and after, for the template."""
    rows = []
    for entry in entries:
        changes = []
        recorded = entry.changes or {}
        # Fields people set, in the forms' order (not the id, nor reverse relations).
        for field, pair in sorted(
            ((f, p) for f, p in recorded.items() if f in CHANGE_LABELS), key=lambda item: ORDER[item[0]]
        ):
            before, after = (pair + [None, None])[:2] if isinstance(pair, list) else (None, pair)
            if field == "weekly_hours" and isinstance(before, dict) and isinstance(after, dict):
                changes.extend(_hours_changes(before, after))
                continue
            changes.append(
                {
                    "label": CHANGE_LABELS[field],
                    "before": _value_text(field, before, names),
                    "after": _value_text(field, after, names),
                }
            )
        rows.append(
            {
                "when": entry.timestamp,
                "who": selectors.user_name(entry.actor) if entry.actor else (entry.actor_email or "System"),
                "what": entry.object_repr,
                "action": ACTIONS.get(entry.action, "changed"),
                "changes": changes,
                "created": entry.action == 0,
            }
        )
    return rows


def _names(*, calendars=(), departments=(), channels=()) -> dict:
    names = {("calendar", str(c.pk)): c.name for c in calendars}
    for department in departments:
        names[("to_department", str(department.pk))] = department.name
        names[("from_department", str(department.pk))] = department.name
    names |= {("channel", str(ch.pk)): ch.name for ch in channels}
    return names


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
        "arrival_noun": ARRIVALS.get(channel.kind, "A message"),
    }
    if promise is None:
        context["preview_problem"] = "This channel has no promise yet: save one to see when answers are due."
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
            messages.success(request, f"The promise of {channel.name} is saved.")
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
            messages.success(request, f"The breach ladder to {path.to_department.name} is saved.")
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
                request, f"{channel.department.name} now escalates breaches to {path.to_department.name}."
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
            problem = "Fix the promise to preview it: " + " ".join(
                e for errors in form.errors.values() for e in errors
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
            messages.success(request, f"The calendar “{saved.name}” is saved.")
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
