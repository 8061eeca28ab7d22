"""Input of the desk pages: queue filters and the case actions. Validation only; services write."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from connectors.models import Channel
from customers.models import Identity

from . import selectors
from .models import Case


class QueueFilterForm(forms.Form):
    """The queue's GET parameters. Departments offered are only those the user may see."""

    view = forms.ChoiceField(
        required=False,
        choices=[
            ("mine", _("My cases")),
            ("department", _("Department")),
            ("unassigned", _("Unassigned")),
            ("at_risk", _("At risk")),
            ("monitoring", _("Monitoring")),
        ],
    )
    kind = forms.ChoiceField(
        required=False, label=_("Channel"), choices=[("", _("Any channel")), *Channel.Kind.choices]
    )
    priority = forms.ChoiceField(required=False, choices=[("", _("Any priority")), *Case.Priority.choices])
    status = forms.ChoiceField(
        required=False,
        choices=[("", _("Any open status"))]
        + [(s.value, s.label) for s in map(Case.Status, Case.OPEN_STATUSES)],
    )
    department = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    q = forms.CharField(
        required=False,
        label=_("Search"),
        max_length=selectors.SEARCH_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Reference, @handle, e-mail, phone, words"), "size": 34}
        ),
    )
    after = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, departments, all_label: str = _("All my departments"), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", all_label)] + [(d.pk, d.name) for d in departments]

    def clean_after(self) -> selectors.QueueCursor | None:
        raw = self.cleaned_data.get("after") or ""
        if not raw:
            return None
        try:
            return selectors.QueueCursor.decode(raw)
        except ValueError:
            raise forms.ValidationError(_("That page link is not valid; showing the first page.")) from None


class NoteForm(forms.Form):
    text = forms.CharField(
        label=_("Internal note"), widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Case.Status.choices)
    reason = forms.CharField(required=False, max_length=500)


class PriorityForm(forms.Form):
    priority = forms.ChoiceField(choices=Case.Priority.choices)
    reason = forms.CharField(required=False, max_length=500)


REASON_REQUIRED = {"required": _("Say why; it stays on the case's record.")}


def _reason(label: str = _("Reason")) -> forms.CharField:
    return forms.CharField(label=label, max_length=1000, error_messages=REASON_REQUIRED)


# Platforms where a reply can be public (a post or comment everyone sees).
PUBLIC_KINDS = ("x", "facebook", "instagram")


class ReplyForm(forms.Form):
    """A reply to the customer: which company channel, to which of their identities, public or private."""

    channel = forms.TypedChoiceField(coerce=int, label=_("Channel"))
    identity = forms.TypedChoiceField(coerce=int, label=_("To"), required=False, empty_value=None)
    visibility = forms.ChoiceField(
        label=_("Visibility"),
        choices=[("private", _("Private message")), ("public", _("Public reply"))],
        initial="private",
        widget=forms.RadioSelect,
    )
    text = forms.CharField(label=_("Reply"), max_length=10_000, widget=forms.Textarea(attrs={"rows": 4}))
    # When the agent began this draft (server time): the reply is refused if the customer
    # wrote or a colleague replied after it.
    draft_started_at = forms.DateTimeField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, channels, identities, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels = {channel.pk: channel for channel in channels}
        self.identities = {identity.pk: identity for identity in identities}
        self.fields["channel"].choices = [(channel.pk, str(channel)) for channel in channels]
        self.fields["identity"].choices = [("", _("Their latest"))] + [
            (identity.pk, str(identity)) for identity in identities
        ]

    def clean(self):
        data = super().clean()
        channel = self.channels.get(data.get("channel"))
        identity = self.identities.get(data.get("identity")) if data.get("identity") else None
        data["channel_obj"], data["identity_obj"] = channel, identity
        if channel is None:
            return data
        if identity is not None and identity.kind != channel.kind:
            self.add_error(
                "identity",
                _("Choose one of the customer's %(platform)s identities, or none.")
                % {"platform": channel.get_kind_display()},
            )
        data["is_public"] = data.get("visibility") == "public"
        if data["is_public"] and channel.kind not in PUBLIC_KINDS:
            self.add_error(
                "visibility",
                _("A reply on %(platform)s is always private.") % {"platform": channel.get_kind_display()},
            )
        return data


def parse_duration(raw: str) -> int:
    """Seconds from "185", "3:05" or "1:02:05"; ``ValueError`` otherwise."""
    parts = (raw or "").strip().split(":")
    if not parts or len(parts) > 3 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(raw)
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


class DurationField(forms.CharField):
    default_error_messages = {"invalid": _("Write the length as minutes:seconds (3:05) or seconds (185).")}

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            return parse_duration(value)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class CallForm(forms.Form):
    direction = forms.ChoiceField(
        label=_("Direction"), choices=[("in", _("Customer called us")), ("out", _("We called the customer"))]
    )
    number = forms.CharField(label=_("Number"), max_length=40)
    duration = DurationField(
        label=_("Duration"), widget=forms.TextInput(attrs={"placeholder": "m:ss", "maxlength": 12})
    )
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3})
    )


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(label=_("Assignee"), coerce=int, required=False, empty_value=None)

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = {user.pk: user for user in members}
        self.fields["assignee"].choices = [("", _("Nobody (unassigned)"))] + [
            (user.pk, user.get_full_name() or user.email) for user in members
        ]


class TransferForm(forms.Form):
    to_department = forms.TypedChoiceField(label=_("To department"), coerce=int)
    reason = _reason()
    note = forms.CharField(label=_("Hand-off note"), required=False, max_length=2000)

    def __init__(self, *args, departments, **kwargs):
        super().__init__(*args, **kwargs)
        self.departments = {department.pk: department for department in departments}
        self.fields["to_department"].choices = [("", _("Choose…"))] + [(d.pk, d.name) for d in departments]


class EscalateForm(forms.Form):
    reason = _reason()
    note = forms.CharField(label=_("Hand-off note"), required=False, max_length=2000)


class ReasonForm(forms.Form):
    """Monitor only / needs an answer: a reason on record."""

    reason = _reason()


class MovePrivateForm(forms.Form):
    channel = forms.IntegerField(label=_("Public channel"))
    private_channel_kind = forms.ChoiceField(
        label=_("Continue by"), choices=[("dm", _("Direct message")), ("email", _("E-mail"))], initial="dm"
    )


class IdentityLinkForm(forms.Form):
    """Link an identity to the customer on the page, named as an agent knows it."""

    kind = forms.ChoiceField(label=_("Platform"), choices=Identity.Kind.choices)
    identifier = forms.CharField(
        label=_("Handle, address or number"),
        max_length=255,
        help_text=_("@handle, e-mail address, phone number or the platform's id."),
    )

    def clean_identifier(self) -> str:
        value = self.cleaned_data["identifier"].strip()
        if not value:
            raise forms.ValidationError(_("This field is required."))
        return value


# Customer ids are 64-bit: a longer number names no one (and the database would refuse it).
MAX_CUSTOMER_NUMBER = 2**63 - 1


class CustomerMergeForm(forms.Form):
    """Merge another customer into the one on the page: which one, and a deliberate yes."""

    source = forms.CharField(
        label=_("Customer number"),
        max_length=20,
        help_text=_("The number of the customer to merge into this one, as on their page (#123)."),
    )
    confirm = forms.BooleanField(
        label=_("Confirm"),
        error_messages={"required": _("Tick the box to confirm: their identities and cases move here.")},
    )

    def __init__(self, *args, target=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.target = target

    def clean_source(self) -> int:
        raw = self.cleaned_data["source"].strip().lstrip("#").strip()
        if not raw.isdigit() or int(raw) < 1:
            raise forms.ValidationError(_("Enter a customer number, such as 123."))
        number = int(raw)
        if number > MAX_CUSTOMER_NUMBER:
            raise forms.ValidationError(_("There is no customer #%(number)s.") % {"number": number})
        if self.target is not None and number == self.target.pk:
            raise forms.ValidationError(_("That is this customer; enter the number of the other one."))
        return number


class CustomerUnmergeForm(forms.Form):
    """Undo a customer's merge: why, on the record of every case that moves back."""

    reason = _reason()


class TakeOverForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)


class BoardFilterForm(forms.Form):
    department = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label=_("Department"))
    agent = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label=_("Agent"))
    sla = forms.ChoiceField(
        required=False,
        label=_("Promise"),
        choices=[
            ("", _("Any promise state")),
            ("breached", _("Breached")),
            ("at_risk", _("At risk")),
            ("ok", _("On track")),
        ],
    )
    unassigned = forms.BooleanField(required=False, label=_("Unassigned only"))

    def __init__(self, *args, departments, agents, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", _("All my departments"))] + [
            (d.pk, d.name) for d in departments
        ]
        self.fields["agent"].choices = [("", _("Any agent"))] + [(row.key, row.label) for row in agents]


class BulkReassignForm(forms.Form):
    cases = forms.TypedMultipleChoiceField(
        label=_("Cases"), coerce=int, error_messages={"required": _("Tick at least one case.")}
    )
    to_department = forms.TypedChoiceField(
        label=_("To department"), coerce=int, required=False, empty_value=None
    )
    assignee = forms.TypedChoiceField(label=_("Assignee"), coerce=int, required=False, empty_value=None)
    reason = _reason()
    note = forms.CharField(label=_("Hand-off note"), required=False, max_length=2000)

    def __init__(self, *args, case_ids, departments, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.departments = {department.pk: department for department in departments}
        self.users = {membership.user_id: membership.user for membership in members}
        self.fields["cases"].choices = [(pk, pk) for pk in case_ids]
        self.fields["to_department"].choices = [("", _("Keep their department"))] + [
            (d.pk, d.name) for d in departments
        ]
        self.fields["assignee"].choices = [("", _("Leave unassigned"))] + [
            (m.user_id, f"{m.user.get_full_name() or m.user.email} · {m.department.name}") for m in members
        ]

    def clean(self):
        data = super().clean()
        if not self.errors and data.get("to_department") is None and data.get("assignee") is None:
            self.add_error("to_department", _("Choose a department, an assignee or both."))
        return data


def error_messages(form: forms.Form) -> list[str]:
    """Each form error as one sentence naming its field, for the messages framework."""
    out = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label or name.replace("_", " ").capitalize()) if field is not None else ""
        for error in errors:
            out.append(f"{label}: {error}" if label else str(error))
    return out
