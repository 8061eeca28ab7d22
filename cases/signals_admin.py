"""Admin pages of the urgent-signal models: alert sources (their secret's variable name, never the
secret), alerts, known-customer rules, on-call shifts, pages and channel health alerts."""

from __future__ import annotations

from django.contrib import admin

from .models import AlertSource, ChannelHealthAlert, KnownCustomerRule, MonitoringAlert, OnCallShift, Page


@admin.register(AlertSource)
class AlertSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "format", "department", "is_active")
    list_filter = ("format", "is_active")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(MonitoringAlert)
class MonitoringAlertAdmin(admin.ModelAdmin):
    list_display = ("title", "source", "status", "severity", "starts_at", "ends_at")
    list_filter = ("status", "source", "severity")
    search_fields = ("title", "fingerprint", "description")
    raw_id_fields = ("event",)
    readonly_fields = ("received_at", "updated_at")


@admin.register(KnownCustomerRule)
class KnownCustomerRuleAdmin(admin.ModelAdmin):
    list_display = ("department", "enabled", "count", "window_minutes")


@admin.register(OnCallShift)
class OnCallShiftAdmin(admin.ModelAdmin):
    list_display = ("department", "user", "starts_at", "ends_at")
    list_filter = ("department",)
    raw_id_fields = ("user", "created_by")


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ("incident", "user", "sent_at", "acknowledged_at", "acknowledged_by")
    raw_id_fields = ("incident", "user", "acknowledged_by")
    readonly_fields = ("sent_at",)


@admin.register(ChannelHealthAlert)
class ChannelHealthAlertAdmin(admin.ModelAdmin):
    list_display = ("channel", "kind", "status", "opened_at", "cleared_at", "detail")
    list_filter = ("kind", "status")
