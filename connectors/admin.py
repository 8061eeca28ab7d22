from django.contrib import admin

from .models import Channel, InboundEvent


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "slug", "department", "account_id", "is_active")
    list_filter = ("kind", "department", "is_active")
    search_fields = ("name", "slug", "account_id", "handle")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin):
    list_display = ("received_at", "provider", "channel", "delivery_id", "status", "attempts")
    list_filter = ("status", "provider", "channel")
    search_fields = ("delivery_id", "error")
    readonly_fields = (
        "provider",
        "channel",
        "delivery_id",
        "headers",
        "content_type",
        "body_text",
        "received_at",
        "processed_at",
        "attempts",
        "error",
    )
    exclude = ("body",)
