"""Admin configuration of the contact centre: departments and who is in them, escalation paths,
calendars and service promises, triage, canned replies. Forms explain what they refuse."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.utils.html import format_html

from .models import (
    Attachment,
    BusinessCalendar,
    CannedReply,
    Case,
    CaseEvent,
    Department,
    EscalationPath,
    Incident,
    Membership,
    Message,
    ServicePromise,
    TriageSettings,
)

WEEKDAYS = {
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
}
CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


# --- Departments ---------------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


class EscalationPathInline(admin.TabularInline):
    model = EscalationPath
    fk_name = "from_department"
    extra = 0
    fields = ("to_department", "trigger", "order", "priority_threshold", "category", "is_active")
    show_change_link = True


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "members", "supervisors", "open_cases", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline, EscalationPathInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=Count("memberships", distinct=True),
                supervisor_count=Count(
                    "memberships", filter=Q(memberships__role=Membership.Role.SUPERVISOR), distinct=True
                ),
            )
        )

    @admin.display(description="Members", ordering="member_count")
    def members(self, obj):
        return obj.member_count

    @admin.display(description="Supervisors", ordering="supervisor_count")
    def supervisors(self, obj):
        return obj.supervisor_count

    @admin.display(description="Open cases")
    def open_cases(self, obj):
        return obj.cases.filter(status__in=Case.OPEN_STATUSES).count()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "department", "role", "created_at")
    list_filter = ("department", "role")
    search_fields = ("user__email", "user__username", "user__first_name", "user__last_name")
    autocomplete_fields = ("user",)
    list_select_related = ("user", "department")


class EscalationPathForm(forms.ModelForm):
    class Meta:
        model = EscalationPath
        fields = (
            "from_department", "to_department", "trigger", "order", "is_active", "priority_threshold", "category",
            "warn_after_minutes", "notify_after_minutes", "escalate_after_minutes",
        )  # fmt: skip

    def clean(self):
        data = super().clean()
        trigger = data.get("trigger")
        if data.get("from_department") and data.get("from_department") == data.get("to_department"):
            self.add_error("to_department", "A path leads to another department.")
        if (
            trigger == EscalationPath.Trigger.PRIORITY
            and data.get("priority_threshold") not in Case.Priority.values
        ):
            choices = ", ".join(Case.Priority.values)
            self.add_error(
                "priority_threshold", f"A priority path needs the lowest priority that escalates: {choices}."
            )
        if trigger == EscalationPath.Trigger.CATEGORY and data.get("category") not in [
            c for c in Case.Category.values if c
        ]:
            choices = ", ".join(c for c in Case.Category.values if c)
            self.add_error("category", f"A category path needs a category: {choices}.")
        ladder = ("warn_after_minutes", "notify_after_minutes", "escalate_after_minutes")
        steps = [data.get(name) for name in ladder]
        if trigger == EscalationPath.Trigger.SLA_BREACH:
            given = [step for step in steps if step is not None]
            if given != sorted(given):
                self.add_error(
                    "escalate_after_minutes",
                    "The ladder's steps come in order: warn, then notify, then escalate.",
                )
        return data


@admin.register(EscalationPath)
class EscalationPathAdmin(admin.ModelAdmin):
    form = EscalationPathForm
    list_display = ("from_department", "to_department", "trigger", "order", "is_active")
    list_filter = ("trigger", "from_department", "is_active")
    list_select_related = ("from_department", "to_department")
    fieldsets = (
        (None, {"fields": ("from_department", "to_department", "trigger", "order", "is_active")}),
        (
            "Trigger details",
            {
                "fields": ("priority_threshold", "category"),
                "description": "Priority paths: the lowest priority that escalates (low, normal, high, urgent). "
                "Category paths: the category (rant, minor, major, question, praise).",
            },
        ),
        (
            "Breach ladder (service promise breached)",
            {
                "fields": ("warn_after_minutes", "notify_after_minutes", "escalate_after_minutes"),
                "description": "Minutes after the promise broke; leave a step empty to skip it.",
            },
        ),
    )


# --- Calendars and promises ---------------------------------------------------------------------------


class BusinessCalendarForm(forms.ModelForm):
    class Meta:
        model = BusinessCalendar
        fields = ("name", "time_zone", "always_open", "weekly_hours", "holiday_country", "extra_closed_dates")
        help_texts = {
            "weekly_hours": 'Open hours per ISO weekday ("1" is Monday), e.g. '
            '{"1": [["09:00", "17:30"]], "6": [["10:00", "14:00"]]}. Split shifts are several pairs.',
            "extra_closed_dates": 'Extra closed days as ISO dates, e.g. ["2026-12-24"].',
        }

    def clean_time_zone(self):
        value = self.cleaned_data["time_zone"].strip()
        if value not in available_timezones():
            raise forms.ValidationError(f"“{value}” is not an IANA time zone such as Europe/London.")
        ZoneInfo(value)
        return value

    def clean_weekly_hours(self):
        value = self.cleaned_data.get("weekly_hours") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Write an object of weekdays, e.g. {"1": [["09:00", "17:00"]]}.')
        problems = []
        for day, spans in value.items():
            name = WEEKDAYS.get(str(day))
            if name is None:
                problems.append(f"“{day}” is not a weekday number (1 is Monday, 7 is Sunday).")
                continue
            if not isinstance(spans, list):
                problems.append(f"{name}: write a list of [start, end] pairs.")
                continue
            for span in spans:
                if not (
                    isinstance(span, list)
                    and len(span) == 2
                    and all(isinstance(t, str) and CLOCK.match(t) for t in span)
                ):
                    problems.append(f'{name}: {span!r} is not a pair of times like ["09:00", "17:30"].')
        if problems:
            raise forms.ValidationError(problems)
        return value

    def clean_extra_closed_dates(self):
        value = self.cleaned_data.get("extra_closed_dates") or []
        if not isinstance(value, list):
            raise forms.ValidationError('Write a list of dates, e.g. ["2026-12-24"].')
        bad = []
        for item in value:
            try:
                date.fromisoformat(str(item))
            except ValueError:
                bad.append(str(item))
        if bad:
            raise forms.ValidationError(f"Not ISO dates (YYYY-MM-DD): {', '.join(bad)}.")
        return value

    def clean(self):
        data = super().clean()
        if not data.get("always_open") and not data.get("weekly_hours") and not self.errors:
            self.add_error(
                "weekly_hours", "A calendar that is not open around the clock needs its open hours."
            )
        return data


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    form = BusinessCalendarForm
    list_display = ("name", "time_zone", "always_open", "holiday_country")
    list_filter = ("always_open", "holiday_country")
    search_fields = ("name",)


PROMISE_FIELDS = ("first_response_minutes", "next_response_minutes", "resolution_minutes")


class ServicePromiseForm(forms.ModelForm):
    class Meta:
        model = ServicePromise
        fields = ("channel", "calendar", *PROMISE_FIELDS, "at_risk_ratio", "priority_overrides")
        help_texts = {
            "priority_overrides": 'Tighter targets per priority, in working minutes, e.g. {"urgent": {"first_response_minutes": 15}}.',
            "at_risk_ratio": "Share of a target used after which a case shows as at risk (0.75 is 75%).",
        }

    def clean_priority_overrides(self):
        value = self.cleaned_data.get("priority_overrides") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError(
                'Write an object of priorities, e.g. {"urgent": {"first_response_minutes": 15}}.'
            )
        problems = []
        for priority, targets in value.items():
            if priority not in Case.Priority.values:
                problems.append(f"“{priority}” is not a priority ({', '.join(Case.Priority.values)}).")
                continue
            if not isinstance(targets, dict):
                problems.append(f"{priority}: write an object of targets.")
                continue
            for name, minutes in targets.items():
                if name not in PROMISE_FIELDS:
                    problems.append(f"{priority}: “{name}” is not a target ({', '.join(PROMISE_FIELDS)}).")
                elif not isinstance(minutes, int) or minutes <= 0:
                    problems.append(f"{priority}: {name} is a whole number of minutes above zero.")
        if problems:
            raise forms.ValidationError(problems)
        return value

    def clean(self):
        data = super().clean()
        ratio = data.get("at_risk_ratio")
        if ratio is not None and not 0 < ratio < 1:
            self.add_error("at_risk_ratio", "Between 0 and 1, e.g. 0.75.")
        for name in PROMISE_FIELDS:
            if data.get(name) is not None and data[name] <= 0:
                self.add_error(name, "A target is at least one minute.")
        return data


@admin.register(ServicePromise)
class ServicePromiseAdmin(admin.ModelAdmin):
    form = ServicePromiseForm
    list_display = (
        "channel",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "calendar",
    )
    list_filter = ("calendar", "channel__kind")
    search_fields = ("channel__name", "channel__slug")
    list_select_related = ("channel", "calendar")
    fieldsets = (
        (None, {"fields": ("channel", "calendar")}),
        ("Targets (working minutes)", {"fields": (*PROMISE_FIELDS, "at_risk_ratio", "priority_overrides")}),
    )


# --- Triage ---------------------------------------------------------------------------------------------


class TriageSettingsForm(forms.ModelForm):
    class Meta:
        model = TriageSettings
        fields = (
            "intent_keywords", "monitor_categories", "monitor_max_followers", "monitor_quiet_days",
            "repeat_window_days", "surge_window_minutes", "surge_baseline_hours", "surge_factor", "surge_min_mentions",
        )  # fmt: skip
        help_texts = {
            "intent_keywords": 'Phrases per intent, matched as whole words in any case, e.g. {"refund": ["money back"]}.',
            "monitor_categories": 'Categories that go to monitoring when the author has little reach, e.g. ["rant", "praise"].',
        }

    def clean_intent_keywords(self):
        value = self.cleaned_data.get("intent_keywords") or {}
        if not isinstance(value, dict) or not all(
            isinstance(phrases, list) and all(isinstance(p, str) and p.strip() for p in phrases)
            for phrases in value.values()
        ):
            raise forms.ValidationError(
                'Write an object of intents, each a list of phrases: {"refund": ["money back"]}.'
            )
        return value

    def clean_monitor_categories(self):
        value = self.cleaned_data.get("monitor_categories") or []
        known = [c for c in Case.Category.values if c]
        if not isinstance(value, list) or any(c not in known for c in value):
            raise forms.ValidationError(f"A list of categories from: {', '.join(known)}.")
        return value


@admin.register(TriageSettings)
class TriageSettingsAdmin(admin.ModelAdmin):
    form = TriageSettingsForm
    fieldsets = (
        ("Intent", {"fields": ("intent_keywords",)}),
        (
            "Monitoring",
            {
                "fields": (
                    "monitor_categories",
                    "monitor_max_followers",
                    "monitor_quiet_days",
                    "repeat_window_days",
                )
            },
        ),
        (
            "Surge alerts",
            {
                "fields": (
                    "surge_window_minutes",
                    "surge_baseline_hours",
                    "surge_factor",
                    "surge_min_mentions",
                )
            },
        ),
    )

    def has_add_permission(self, request):
        return not TriageSettings.objects.exists()  # one row: the settings


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("detected_at", "channel", "status", "mention_count", "baseline", "title")
    list_filter = ("status", "channel")
    readonly_fields = ("window_start", "window_end", "mention_count", "baseline", "detected_at")
    raw_id_fields = ("cases",)
    list_select_related = ("channel",)
    date_hierarchy = "detected_at"


# --- Canned replies ---------------------------------------------------------------------------------------


class CannedReplyForm(forms.ModelForm):
    class Meta:
        model = CannedReply
        fields = ("title", "body", "is_active", "department", "channel_kind")
        widgets = {"body": forms.Textarea(attrs={"rows": 6, "cols": 80})}


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    form = CannedReplyForm
    list_display = ("title", "department", "channel_kind", "preview", "is_active", "updated_at")
    list_filter = ("is_active", "department", "channel_kind")
    list_editable = ("is_active",)
    search_fields = ("title", "body")
    list_select_related = ("department",)
    fieldsets = (
        (None, {"fields": ("title", "body", "is_active")}),
        (
            "Where it is offered",
            {
                "fields": ("department", "channel_kind"),
                "description": "Leave the department empty to offer it everywhere; the channel, to offer it on "
                "every platform.",
            },
        ),
    )

    @admin.display(description="Text")
    def preview(self, obj):
        text = obj.body if len(obj.body) <= 90 else obj.body[:89] + "…"
        return format_html('<span title="{}">{}</span>', obj.body, text)


# --- Cases and their records ----------------------------------------------------------------------------


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("sent_at", "direction", "kind", "channel", "text", "delivery_state")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel")


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "customer",
        "department",
        "assignee",
        "status",
        "priority",
        "sla_state",
        "due_at",
    )
    list_filter = ("status", "priority", "sla_state", "department", "category", "last_channel__kind")
    search_fields = ("reference", "subject", "customer__name")
    raw_id_fields = ("customer", "assignee", "followers", "origin_channel", "last_channel")
    readonly_fields = (
        "reference",
        "created_at",
        "updated_at",
        "first_inbound_at",
        "last_inbound_at",
        "last_outbound_at",
        "first_responded_at",
        "first_response_due_at",
        "next_response_due_at",
        "resolution_due_at",
        "due_at",
        "at_risk_at",
        "sla_state",
        "breach_step",
    )
    list_select_related = ("customer", "department", "assignee")
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over every case on each page
    inlines = [MessageInline]
    fieldsets = (
        (None, {"fields": ("reference", "subject", "customer", "department", "assignee", "followers")}),
        ("State", {"fields": ("status", "priority", "category", "handoff_note")}),
        ("Channels", {"fields": ("origin_channel", "last_channel")}),
        (
            "Service clocks (kept by the services)",
            {
                "classes": ("collapse",),
                "fields": (
                    "sla_state",
                    "due_at",
                    "at_risk_at",
                    "first_response_due_at",
                    "next_response_due_at",
                    "resolution_due_at",
                    "breach_step",
                ),
            },
        ),
        (
            "Timestamps",
            {
                "classes": ("collapse",),
                "fields": (
                    "created_at",
                    "updated_at",
                    "first_inbound_at",
                    "last_inbound_at",
                    "last_outbound_at",
                    "first_responded_at",
                ),
            },
        ),
    )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("case", "sent_at", "direction", "kind", "channel", "delivery_state")
    list_filter = ("direction", "kind", "delivery_state", "channel")
    search_fields = ("external_id", "case__reference")
    raw_id_fields = ("case", "identity", "author", "reply_to")
    list_select_related = ("case", "channel")
    show_full_result_count = False


@admin.register(CaseEvent)
class CaseEventAdmin(admin.ModelAdmin):
    list_display = ("case", "kind", "actor", "created_at", "reason")
    list_filter = ("kind",)
    search_fields = ("case__reference", "reason")
    raw_id_fields = ("case", "actor", "message")
    list_select_related = ("case", "actor")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False  # the audit trail is append-only


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "message", "content_type", "size")
    search_fields = ("filename", "message__case__reference")
    raw_id_fields = ("message",)


from . import signals_admin  # noqa: E402, F401  (the urgent-signal models' pages)
