"""Configuration: departments, memberships, channels, calendars, service promises, escalation
paths and canned replies, read by members and written by admins (``ConfigViewSet``).
"""

from __future__ import annotations

from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated

from .. import filters, selectors, serializers
from ..permissions import MembersReadAdminsWrite
from .base import WRITE_METHODS, ApiMixin

# --- Configuration --------------------------------------------------------------------------------


class ConfigViewSet(ApiMixin, viewsets.ModelViewSet):
    """Members read the configuration; admins change it."""

    permission_classes = (IsAuthenticated, MembersReadAdminsWrite)
    http_method_names = WRITE_METHODS


class DepartmentViewSet(ConfigViewSet):
    serializer_class = serializers.DepartmentSerializer
    filterset_class = filters.DepartmentFilterSet

    def get_queryset(self):
        return selectors.department_list()


class MembershipViewSet(ConfigViewSet):
    """Admins see every membership; others those of their own departments."""

    serializer_class = serializers.MembershipSerializer
    filterset_class = filters.MembershipFilterSet

    def get_queryset(self):
        return selectors.membership_list(user=self.request.user)


class ChannelViewSet(ConfigViewSet):
    """The company's accounts. No secret is ever shown; the names of their variables only to admins."""

    serializer_class = serializers.ChannelSerializer
    filterset_class = filters.ChannelFilterSet

    def get_queryset(self):
        return selectors.channel_list()


class CalendarViewSet(ConfigViewSet):
    serializer_class = serializers.CalendarSerializer
    filterset_class = filters.CalendarFilterSet

    def get_queryset(self):
        return selectors.calendar_list()


class ServicePromiseViewSet(ConfigViewSet):
    serializer_class = serializers.ServicePromiseSerializer
    filterset_class = filters.ServicePromiseFilterSet

    def get_queryset(self):
        return selectors.promise_list()


class EscalationPathViewSet(ConfigViewSet):
    serializer_class = serializers.EscalationPathSerializer
    filterset_class = filters.EscalationPathFilterSet

    def get_queryset(self):
        return selectors.escalation_path_list()


class CannedReplyViewSet(ConfigViewSet):
    """Canned replies: members list those offered to their departments; admins manage them all."""

    serializer_class = serializers.CannedReplySerializer
    filterset_class = filters.CannedReplyFilterSet

    def get_queryset(self):
        return selectors.canned_reply_list(user=self.request.user)
