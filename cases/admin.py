from django.contrib import admin

from .models import (
    Attachment,
    BusinessCalendar,
    Case,
    CaseEvent,
    Department,
    EscalationPath,
    Membership,
    Message,
    ServicePromise,
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
