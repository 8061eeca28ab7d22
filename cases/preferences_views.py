"""The "My settings" page: a desk user's own notifications, chime and theme.

Thin, over ``cases.preferences``. Every signed-in user has one (no role needed); a plain POST
that redirects back, so it works without JavaScript. A value the form cannot take is named
beside its field and nothing is saved.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import preferences
from .errors import ServiceError
from .models import DeskPreferences

# What a ticked and an unticked box may send (an unticked box sends nothing).
TICKED = {"on", "true", "1", "yes"}
UNTICKED = {"", "off", "false", "0", "no"}


class RawCheckbox(forms.CheckboxInput):
    """A tick box that hands the field what was sent (Django's turns anything into a bool)."""

    def value_from_datadict(self, data, files, name):
        return data.get(name)


class Checkbox(forms.Field):
    """A tick box that refuses anything but a box's own values, naming itself."""

    widget = RawCheckbox

    def __init__(self, *, label: str, **kwargs):
        super().__init__(label=label, required=False, **kwargs)

    def to_python(self, value):
        if value is None or value is False:
            return False
        if value is True:
            return True
        text = str(value).strip().lower()
        if text in TICKED:
            return True
        if text in UNTICKED:
            return False
        raise forms.ValidationError(f"{self.label}: tick or untick the box (not '{str(value)[:40]}').")


class PreferencesForm(forms.Form):
    notify_assigned = Checkbox(label="A case is assigned to me")
    notify_at_risk = Checkbox(label="A case of mine is at risk of breaking its promise")
    notify_replies = Checkbox(label="A customer replies on a case I own or follow")
    sound = Checkbox(label="Play a chime with each notification")
    theme = forms.ChoiceField(
        label="Theme",
        choices=DeskPreferences.Theme.choices,
        widget=forms.RadioSelect(attrs={"data-theme-choice": ""}),
        error_messages={
            "required": "Theme: choose Same as the system, Light or Dark.",
            "invalid_choice": "Theme: '%(value)s' is not one of Same as the system, Light or Dark.",
        },
    )

    @classmethod
    def initial_for(cls, prefs: DeskPreferences) -> dict:
        return {name: getattr(prefs, name) for name in cls.base_fields}


@login_required
@require_http_methods(["GET", "POST"])
def my_settings(request: HttpRequest) -> HttpResponse:
    prefs = preferences.preferences_get(user=request.user)
    status = 200
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            try:
                preferences.preferences_save(user=request.user, **form.cleaned_data)
            except ServiceError as error:
                form.add_error(error.field, error.message)
            else:
                messages.success(request, "Your settings are saved.")
                return redirect("desk:my_settings")
        status = 400
    else:
        form = PreferencesForm(initial=PreferencesForm.initial_for(prefs))
    return render(
        request,
        "cases/preferences/my_settings.html",
        {"form": form, "prefs": prefs, "nav": "my_settings"},
        status=status,
    )
