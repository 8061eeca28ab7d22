from django.contrib import admin

from .models import (
    Attachment,
    BusinessCalendar,
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


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


class EscalationPathInline(admin.TabularInline):
    model = EscalationPath
    fk_name = "from_department"
    extra = 0


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline, EscalationPathInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "department", "role")
    list_filter = ("department", "role")
    search_fields = ("user__email", "user__username")
    raw_id_fields = ("user",)


@admin.register(EscalationPath)
class EscalationPathAdmin(admin.ModelAdmin):
    list_display = ("from_department", "to_department", "trigger", "order", "is_active")
    list_filter = ("trigger", "from_department", "is_active")
    fieldsets = (
        (None, {"fields": ("from_department", "to_department", "trigger", "order", "is_active")}),
        ("Trigger details", {"fields": ("priority_threshold", "category")}),
        (
            "Breach ladder (service promise breached)",
            {
                "fields": ("warn_after_minutes", "notify_after_minutes", "escalate_after_minutes"),
                "description": "Minutes after the promise broke; leave a step empty to skip it.",
            },
        ),
    )


@admin.register(TriageSettings)
class TriageSettingsAdmin(admin.ModelAdmin):
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


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ("name", "time_zone", "always_open", "holiday_country")


@admin.register(ServicePromise)
class ServicePromiseAdmin(admin.ModelAdmin):
    list_display = (
        "channel",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "calendar",
    )
    list_filter = ("calendar",)


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("sent_at", "direction", "kind", "channel", "text", "delivery_state")
    readonly_fields = fields
    show_change_link = True


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
    list_filter = ("status", "priority", "sla_state", "department", "category")
    search_fields = ("reference", "subject", "customer__name")
    raw_id_fields = ("customer", "assignee", "followers")
    readonly_fields = ("reference",)
    list_select_related = ("customer", "department", "assignee")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("case", "sent_at", "direction", "kind", "channel", "delivery_state")
    list_filter = ("direction", "kind", "delivery_state", "channel")
    search_fields = ("text", "external_id", "case__reference")
    raw_id_fields = ("case", "identity", "author", "reply_to")
    list_select_related = ("case", "channel")


@admin.register(CaseEvent)
class CaseEventAdmin(admin.ModelAdmin):
    list_display = ("case", "kind", "actor", "created_at", "reason")
    list_filter = ("kind",)
    raw_id_fields = ("case", "actor", "message")
    list_select_related = ("case", "actor")

    def has_change_permission(self, request, obj=None):
        return False  # the audit trail is append-only


admin.site.register(Attachment)
