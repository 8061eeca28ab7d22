"""Customers and identities: the customers and identities a user may see, linking an identity,
merging and unmerging customers, and the identity suggestions an agent accepts or dismisses.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from cases import services, suggestion_services
from cases.errors import ServiceError
from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Customer, Identity, IdentitySuggestion

from .. import filters, selectors, serializers
from ..pagination import NewestFirstPagination
from ..permissions import CanLinkIdentities, CanMergeCustomers, IsMember
from .base import ApiMixin, _valid

# --- Customers and identities ---------------------------------------------------------------------


class CustomerViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Customers the user may see (those with a case the user may see; admins: all), with their
    identities; link an identity, merge another customer in, undo a merge."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.CustomerSerializer
    filterset_class = filters.CustomerFilterSet

    def get_queryset(self):
        return selectors.customer_list(user=self.request.user)

    def _customer_response(self, customer_id: int) -> Response:
        return Response(
            self.get_serializer(selectors.customer_list(user=self.request.user).get(pk=customer_id)).data
        )

    def _visible(self, queryset, pk: int, field: str):
        found = queryset.filter(pk=pk).first()
        if found is None:
            raise ServiceError(
                f"There is no such {field.removesuffix('_id')}.", code="does_not_exist", field=field
            )
        return found

    @extend_schema(
        request=serializers.IdentityLinkInputSerializer, responses={200: serializers.CustomerSerializer}
    )
    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        """Move an identity to this customer (an agent's link: the customer it leaves keeps its cases)."""
        customer = self.get_object()
        data = _valid(serializers.IdentityLinkInputSerializer, request)
        identity = self._visible(
            selectors.identity_list(user=request.user), data["identity_id"], "identity_id"
        )
        customer_services.identity_link(
            identity=identity, customer=customer, actor=request.user, source=Identity.LinkSource.AGENT
        )
        return self._customer_response(customer.pk)

    @extend_schema(
        request=serializers.CustomerMergeInputSerializer, responses={200: serializers.CustomerSerializer}
    )
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanMergeCustomers))
    def merge(self, request, pk=None):
        """Merge another customer into this one: its identities and cases move here (supervisors, admins)."""
        customer = self.get_object()
        data = _valid(serializers.CustomerMergeInputSerializer, request)
        source = self._visible(selectors.visible_customers(user=request.user), data["source_id"], "source_id")
        services.customer_merge(source=source, target=customer, actor=request.user)
        return self._customer_response(customer.pk)

    @extend_schema(
        request=serializers.CustomerUnmergeInputSerializer, responses={200: serializers.CustomerSerializer}
    )
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanMergeCustomers))
    def unmerge(self, request, pk=None):
        """Undo the merge of ``source_id`` into this customer: its identities and the cases the merge
        moved go back to it. Answers with the restored customer (supervisors, admins)."""
        customer = self.get_object()
        data = _valid(serializers.CustomerUnmergeInputSerializer, request)
        source = Customer.objects.filter(pk=data["source_id"], merged_into=customer).first()
        if source is None:
            raise ServiceError(
                "That customer was not merged into this one.", code="does_not_exist", field="source_id"
            )
        restored = services.customer_unmerge(source=source, actor=request.user, reason=data["reason"])
        return Response(
            self.get_serializer(selectors.customer_list(user=self.request.user).get(pk=restored.pk)).data
        )


class IdentityViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Platform identities (look one up by ``kind`` and ``platform_id`` in any spelling)."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IdentitySerializer
    filterset_class = filters.IdentityFilterSet

    def get_queryset(self):
        return selectors.identity_list(user=self.request.user)


class SuggestionRefused(ServiceError):
    """A suggested link that cannot be decided as asked: decided already, or its customer was merged
    into another since (``already_decided`` / ``customer_merged``)."""

    code = "already_decided"
    status = 409


def _decide_suggestion(decide, suggestion) -> None:
    try:
        decide(suggestion)
    except CustomerRefused as exc:
        code = "already_decided" if exc.field == "suggestion" else "customer_merged"
        raise SuggestionRefused(exc.reason, code=code) from exc


class CustomerSuggestionsView(ApiMixin, generics.ListAPIView):
    """One customer's suggested links, newest first (``?status=open``: those waiting for an agent)."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IdentitySuggestionSerializer
    filterset_class = filters.IdentitySuggestionFilterSet
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        if self.fake:
            return IdentitySuggestion.objects.none()
        customer = get_object_or_404(
            selectors.visible_customers(user=self.request.user), pk=self.kwargs["id"]
        )
        return selectors.customer_suggestion_list(customer=customer)


class IdentitySuggestionViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Suggested links of the customers the user may see: an e-mail address or phone number a
    customer wrote that is another customer's identity. Nothing is linked until an agent accepts;
    dismissed, the pair is never suggested again."""

    permission_classes = (IsAuthenticated, IsMember)
    serializer_class = serializers.IdentitySuggestionSerializer
    filterset_class = filters.IdentitySuggestionFilterSet
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        return selectors.identity_suggestion_list(user=self.request.user)

    def _decided(self, pk: int) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(request=None, responses={200: serializers.IdentitySuggestionSerializer})
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanLinkIdentities))
    def accept(self, request, pk=None):
        """Make it the identity of the customer who wrote it (link source ``suggested``, linked by
        you): another customer's identity is linked (the customer it leaves keeps its cases:
        merging is a separate act); a new contact detail (``identity`` null) is created on the
        customer, or linked if it has become someone's identity since. The pages of both
        customers' open cases are told (their customer panels refresh)."""
        suggestion = self.get_object()
        _decide_suggestion(
            lambda s: suggestion_services.suggestion_accept(suggestion=s, actor=request.user),
            suggestion,
        )
        return self._decided(suggestion.pk)

    @extend_schema(request=None, responses={200: serializers.IdentitySuggestionSerializer})
    @action(detail=True, methods=["post"], permission_classes=(IsAuthenticated, CanLinkIdentities))
    def dismiss(self, request, pk=None):
        """Not theirs: nothing is linked or created, and the value is not suggested to this customer again."""
        suggestion = self.get_object()
        _decide_suggestion(
            lambda s: suggestion_services.suggestion_dismiss(suggestion=s, actor=request.user),
            suggestion,
        )
        return self._decided(suggestion.pk)
