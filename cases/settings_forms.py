"""The forms of the admins' settings pages: a channel's service promise (targets, at-risk
share, calendar, tighter targets by priority), a breach ladder, a business calendar (one
field per weekday), and the due-time preview's arrival; each bad value is named beside its
field, and a service's refusal is put on the field it names (``_refusal``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy

from . import promise_settings as ps
from .errors import ServiceError
from .models import BusinessCalendar, Case, Department, ServicePromise

MINUTES_INVALID = gettext_lazy("a whole number of working minutes")
ARRIVAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


def _minutes_field(label: str, *, required: bool = True, **kwargs) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=required,
        error_messages={
            "required": format_lazy(gettext_lazy("{label} is required, in working minutes."), label=label),
            "invalid": format_lazy("{}: {}.", label, MINUTES_INVALID),
        },
        widget=forms.NumberInput(attrs={"min": kwargs.pop("min_value", 1), "step": 1, "class": "num"}),
        **kwargs,
    )


# --- Forms ---------------------------------------------------------------------------------------


class PromiseForm(forms.Form):
    """A channel's promise: three targets, the at-risk share, the calendar, per-priority overrides."""

    calendar = forms.ChoiceField(label=gettext_lazy("Business calendar"), required=False)
    first_response_minutes = _minutes_field(gettext_lazy("First response target"))
    next_response_minutes = _minutes_field(gettext_lazy("Next response target"))
    resolution_minutes = _minutes_field(gettext_lazy("Resolution target"))
    at_risk_ratio = forms.DecimalField(
        label=gettext_lazy("At-risk share"),
        required=False,
        help_text=gettext_lazy("Share of a target used after which a case shows as at risk (0.75 is 75%)."),
        error_messages={"invalid": gettext_lazy("At-risk share is a number such as 0.75.")},
        widget=forms.NumberInput(attrs={"min": "0.01", "max": "0.99", "step": "0.01", "class": "num"}),
    )

    def __init__(self, *args, calendars: list[BusinessCalendar], **kwargs):
        super().__init__(*args, **kwargs)
        self.calendars = {str(c.pk): c for c in calendars}
        self.fields["calendar"].choices = [("", gettext_lazy("24/7 (no calendar)"))] + [
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
    to_department = forms.ChoiceField(label=gettext_lazy("Escalate to"))

    field_order = ["to_department", *ps.LADDER_STEPS]

    def __init__(self, *args, departments: list[Department], **kwargs):
        super().__init__(*args, **kwargs)
        self.departments = {str(d.pk): d for d in departments}
        self.fields["to_department"].choices = [(pk, d.name) for pk, d in self.departments.items()]

    def clean_to_department(self) -> Department:
        return self.departments[self.cleaned_data["to_department"]]


HOURS_HELP = gettext_lazy("e.g. 09:00-12:30, 13:30-17:30 — empty: closed. 22:00-06:00 runs past midnight.")


class CalendarForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120)
    time_zone = forms.CharField(
        label=gettext_lazy("Time zone"),
        max_length=64,
        initial="UTC",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"}),
    )
    always_open = forms.BooleanField(
        label=gettext_lazy("Open around the clock (24/7; ignores the rest)"), required=False
    )
    holiday_country = forms.CharField(
        label=gettext_lazy("Public holidays of"),
        max_length=16,
        required=False,
        help_text=gettext_lazy(
            "A country code such as GB, or with a subdivision, such as US-NY. Empty: none."
        ),
    )
    extra_closed_dates = forms.CharField(
        label=gettext_lazy("Extra closed days"),
        required=False,
        help_text=gettext_lazy("Dates as YYYY-MM-DD, separated by commas or lines."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for day, label in ps.WEEKDAYS.items():
            self.fields[f"hours_{day}"] = forms.CharField(
                label=label,
                required=False,
                max_length=200,
                widget=forms.TextInput(
                    attrs={"placeholder": gettext_lazy("closed"), "size": 34, "spellcheck": "false"}
                ),
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
                None,
                gettext_lazy("Weekly hours: a calendar that is not open around the clock needs open hours."),
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
        label=gettext_lazy("A first message arriving at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}),
    )
    priority = forms.ChoiceField(
        label=gettext_lazy("Priority"),
        choices=Case.Priority.choices,
        initial=Case.Priority.NORMAL,
        required=False,
    )

    def clean_arrival(self) -> datetime:
        value = self.cleaned_data["arrival"].strip()
        for pattern in ARRIVAL_FORMATS:
            try:
                return datetime.strptime(value, pattern)  # noqa: DTZ007 - a wall-clock time in the calendar's zone
            except ValueError:
                continue
        raise forms.ValidationError(gettext_lazy("Arrival: a date and time such as 2026-12-04 17:55."))


def _refusal(form: forms.Form, error: ServiceError) -> None:
    """A service's refusal, shown on the field it names (or above the form)."""
    field = error.field if error.field in form.fields else None
    if error.field and error.field.startswith("priority_overrides."):
        priority, _, name = error.field.removeprefix("priority_overrides.").partition(".")
        field = PromiseForm.override_name(priority, name) if isinstance(form, PromiseForm) else None
        field = field if field in form.fields else None
    form.add_error(field, error.message)
