"""Shared pieces: the one error shape every endpoint answers with (``ErrorSerializer``) and
the short summaries of a user, a named row and a customer that other serializers nest.
"""

from __future__ import annotations

from rest_framework import serializers

from cases import selectors

# --- Errors ------------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. reason_required, stale_draft, not_found.")
    message = serializers.CharField(help_text="For people.")
    field = serializers.CharField(allow_null=True, help_text="The input at fault, if one is.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- Shared pieces -----------------------------------------------------------------------------


class UserSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return selectors.user_name(user)


class NamedSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class CustomerSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, customer) -> str:
        return str(customer)
