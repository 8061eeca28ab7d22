from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from . import api_tokens, webhooks_out
from .models import ApiToken, Channel, InboundEvent, WebhookDelivery, WebhookEvent, WebhookSubscription


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "slug", "department", "account_id", "reopen_window", "is_active")
    list_filter = ("kind", "department", "is_active")
    search_fields = ("name", "slug", "account_id", "handle")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "kind", "slug", "department", "is_active")}),
        ("Platform", {"fields": ("account_id", "handle", "email_provider", "secret_env", "api_base_url")}),
        ("Threading", {"fields": ("reopen_window_days",)}),
    )

    @admin.display(description="Reopen window")
    def reopen_window(self, channel: Channel) -> str:
        days = channel.reopen_window.days
        return f"{days} d" if channel.reopen_window_days is not None else f"{days} d (site-wide)"


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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made by their owners (API or desk); admins see them and can revoke them."""

    list_display = ("name", "user", "prefix", "scope", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "user__email", "user__username")
    readonly_fields = ("user", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)
    list_select_related = ("user",)
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        live = list(queryset.filter(revoked_at__isnull=True))
        for token in live:
            api_tokens.api_token_revoke(token=token, actor=request.user)
        self.message_user(request, f"{len(live)} token(s) revoked.", messages.SUCCESS)


class WebhookSubscriptionForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple, required=True
    )

    class Meta:
        model = WebhookSubscription
        fields = ("name", "url", "event_types", "is_active")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Saving goes through the webhook services; a new subscription's secret is shown once."""

    form = WebhookSubscriptionForm
    list_display = ("name", "url", "events", "is_active", "failure_count", "disabled_at", "deliveries_link")
    list_filter = ("is_active",)
    search_fields = ("name", "url")
    readonly_fields = ("failure_count", "disabled_at", "created_by", "created_at", "updated_at")
    actions = ["rotate_secret"]

    @admin.display(description="Events")
    def events(self, obj) -> str:
        return ", ".join(obj.event_types or [])

    @admin.display(description="Delivery log")
    def deliveries_link(self, obj) -> str:
        url = reverse("admin:connectors_webhookdelivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">deliveries</a>', url)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            webhooks_out.webhook_subscription_update(
                subscription=obj,
                actor=request.user,
                name=data["name"],
                url=data["url"],
                event_types=list(data["event_types"]),
                is_active=data["is_active"],
            )
            return
        created, secret = webhooks_out.webhook_subscription_create(
            name=data["name"], url=data["url"], event_types=list(data["event_types"]), actor=request.user
        )
        obj.pk = created.pk
        self.message_user(
            request, f"Signing secret (shown only now, copy it to the receiver): {secret}", messages.WARNING
        )

    def delete_model(self, request, obj):
        webhooks_out.webhook_subscription_delete(subscription=obj, actor=request.user)

    @admin.action(description="Give the selected subscriptions a new secret")
    def rotate_secret(self, request, queryset):
        for subscription in queryset:
            _, secret = webhooks_out.webhook_subscription_rotate_secret(
                subscription=subscription, actor=request.user
            )
            self.message_user(request, f"New secret for {subscription.name} (shown only now): {secret}")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read only."""

    list_display = ("created_at", "subscription", "event_type", "status", "attempts", "response_status")
    list_filter = ("status", "event_type", "subscription")
    search_fields = ("event_id", "error")
    list_select_related = ("subscription",)
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
