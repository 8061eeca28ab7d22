"""Input of the desk pages: queue filters and the case actions. Validation only; services write."""

from __future__ import annotations

from django import forms

from connectors.models import Channel

from . import selectors
from .models import Case


class QueueFilterForm(forms.Form):
    """The queue's GET parameters. Departments offered are only those the user may see."""

    view = forms.ChoiceField(
        required=False,
        choices=[
            ("mine", "My cases"),
            ("department", "Department"),
            ("unassigned", "Unassigned"),
            ("at_risk", "At risk"),
            ("monitoring", "Monitoring"),
        ],
    )
    kind = forms.ChoiceField(
        required=False, label="Channel", choices=[("", "Any channel"), *Channel.Kind.choices]
    )
    priority = forms.ChoiceField(required=False, choices=[("", "Any priority"), *Case.Priority.choices])
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any open status")]
        + [(s.value, s.label) for s in map(Case.Status, Case.OPEN_STATUSES)],
    )
    department = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    after = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, departments, all_label: str = "All my departments", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", all_label)] + [(d.pk, d.name) for d in departments]

    def clean_after(self) -> selectors.QueueCursor | None:
        raw = self.cleaned_data.get("after") or ""
        if not raw:
            return None
        try:
            return selectors.QueueCursor.decode(raw)
        except ValueError:
            raise forms.ValidationError("That page link is not valid; showing the first page.") from None


class NoteForm(forms.Form):
    text = forms.CharField(label="Internal note", widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000)


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Case.Status.choices)
    reason = forms.CharField(required=False, max_length=500)


class PriorityForm(forms.Form):
    priority = forms.ChoiceField(choices=Case.Priority.choices)
    reason = forms.CharField(required=False, max_length=500)


def error_messages(form: forms.Form) -> list[str]:
    """Each form error as one sentence naming its field, for the messages framework."""
    out = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label or name.replace("_", " ").capitalize()) if field is not None else ""
        for error in errors:
            out.append(f"{label}: {error}" if label else str(error))
    return out
