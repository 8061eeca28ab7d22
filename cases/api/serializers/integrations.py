"""Tokens and webhooks, the doors for other systems: personal API tokens (the secret shown once,
on creation) and outbound webhook subscriptions with their secret and deliveries.
"""

from __future__ import annotations

from rest_framework import serializers

from connectors.models import ApiToken, WebhookDelivery, WebhookEvent, WebhookSubscription

# --- Tokens and webhooks -------------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ("id", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at")
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    scope = serializers.ChoiceField(choices=ApiToken.Scope.choices, default=ApiToken.Scope.WRITE)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="The token itself: shown this once, never again.")

    class Meta(ApiTokenSerializer.Meta):
        fields = (*ApiTokenSerializer.Meta.fields, "key")
        read_only_fields = fields


class WebhookSubscriptionSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        min_length=1,
        max_length=len(WebhookEvent.values),
    )
    url = serializers.URLField(max_length=500)

    class Meta:
        model = WebhookSubscription
        fields = (
            "id",
            "name",
            "url",
            "event_types",
            "is_active",
            "failure_count",
            "disabled_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("failure_count", "disabled_at", "created_at", "updated_at")


class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret: shown this once, never again."
    )

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields = (*WebhookSubscriptionSerializer.Meta.fields, "secret")


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="The new signing secret: shown this once.")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    payload = serializers.DictField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "response_status",
            "response_excerpt",
            "error",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
            "payload",
        )
        read_only_fields = fields
