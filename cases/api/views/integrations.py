"""Personal tokens and outbound webhooks: a user's API tokens (created over a session only,
the secret shown once), webhook subscriptions with their secret, and their delivery log.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from connectors import api_tokens, webhooks_out
from connectors.models import ApiToken, WebhookDelivery

from .. import filters, selectors, serializers
from ..pagination import NewestFirstPagination
from ..permissions import IsAdmin, SessionOnly
from ..throttling import TokenCreateRateThrottle
from .base import WRITE_METHODS, ApiMixin, _valid

# --- Personal tokens ------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        request=serializers.ApiTokenCreateSerializer, responses={201: serializers.ApiTokenCreatedSerializer}
    ),
    destroy=extend_schema(summary="Revoke a token"),
)
class ApiTokenViewSet(
    ApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The signed-in user's API tokens: create (the key is shown once), list (prefix only), revoke."""

    permission_classes = (IsAuthenticated, SessionOnly)
    throttle_classes = (*ApiMixin.throttle_classes, TokenCreateRateThrottle)
    serializer_class = serializers.ApiTokenSerializer
    filterset_class = filters.ApiTokenFilterSet

    def get_queryset(self):
        if self.fake:
            return ApiToken.objects.none()
        return selectors.token_list(user=self.request.user)

    def create(self, request, *args, **kwargs):
        data = _valid(serializers.ApiTokenCreateSerializer, request)
        token, key = api_tokens.api_token_create(user=request.user, name=data["name"], scope=data["scope"])
        body = serializers.ApiTokenCreatedSerializer(token).data | {"key": key}
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        api_tokens.api_token_revoke(token=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Outbound webhooks ----------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        request=serializers.WebhookSubscriptionSerializer,
        responses={201: serializers.WebhookSubscriptionCreatedSerializer},
    ),
)
class WebhookSubscriptionViewSet(ApiMixin, viewsets.ModelViewSet):
    """Admins' webhook subscriptions. The signing secret is shown on creation and rotation only."""

    permission_classes = (IsAuthenticated, IsAdmin)
    serializer_class = serializers.WebhookSubscriptionSerializer
    http_method_names = WRITE_METHODS
    filterset_class = filters.WebhookSubscriptionFilterSet

    def get_queryset(self):
        return selectors.webhook_subscription_list()

    def create(self, request, *args, **kwargs):
        data = _valid(serializers.WebhookSubscriptionSerializer, request)
        subscription, secret = webhooks_out.webhook_subscription_create(
            name=data["name"], url=data["url"], event_types=data["event_types"], actor=request.user
        )
        body = serializers.WebhookSubscriptionCreatedSerializer(subscription).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        subscription = self.get_object()
        serializer = self.get_serializer(subscription, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        updated = webhooks_out.webhook_subscription_update(
            subscription=subscription,
            actor=request.user,
            name=data.get("name"),
            url=data.get("url"),
            event_types=data.get("event_types"),
            is_active=data.get("is_active"),
        )
        return Response(self.get_serializer(updated).data)

    def destroy(self, request, *args, **kwargs):
        webhooks_out.webhook_subscription_delete(subscription=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: serializers.WebhookSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """Replace the signing secret at once; the new one is shown this once."""
        _, secret = webhooks_out.webhook_subscription_rotate_secret(
            subscription=self.get_object(), actor=request.user
        )
        return Response({"secret": secret})


class WebhookDeliveryListView(ApiMixin, generics.ListAPIView):
    """A subscription's delivery log, newest first: status codes, errors, attempts."""

    permission_classes = (IsAuthenticated, IsAdmin)
    serializer_class = serializers.WebhookDeliverySerializer
    filterset_class = filters.WebhookDeliveryFilterSet

    pagination_class = NewestFirstPagination

    def get_queryset(self):
        if self.fake:
            return WebhookDelivery.objects.none()
        subscription = get_object_or_404(selectors.webhook_subscription_list(), pk=self.kwargs["id"])
        return selectors.webhook_delivery_list(subscription=subscription)
