"""Customers and identities: a customer with its identities, the identity suggestions an agent
decides, and the inputs of linking an identity, merging customers and undoing a merge.
"""

from __future__ import annotations

from rest_framework import serializers

from customers.models import Customer, Identity, IdentitySuggestion

# --- Customers and identities -------------------------------------------------------------------


class IdentitySerializer(serializers.ModelSerializer):
    customer_id = serializers.IntegerField(read_only=True)
    linked_by_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Identity
        fields = (
            "id",
            "customer_id",
            "kind",
            "platform_id",
            "handle",
            "display_name",
            "follower_count",
            "verified",
            "link_source",
            "linked_by_id",
            "linked_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class CustomerSerializer(serializers.ModelSerializer):
    merged_into_id = serializers.IntegerField(read_only=True, allow_null=True)
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Customer
        fields = ("id", "name", "tier", "notes", "merged_into_id", "identities", "created_at", "updated_at")
        read_only_fields = fields


class SuggestedIdentitySerializer(serializers.ModelSerializer):
    """The identity a suggestion matched: whose it is now and how it was linked (no profile: it may
    be a customer the reader does not see)."""

    customer_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Identity
        fields = ("id", "customer_id", "kind", "platform_id", "link_source")
        read_only_fields = fields


class IdentitySuggestionSerializer(serializers.ModelSerializer):
    """A suggested contact detail: customer ``customer_id`` wrote ``value`` (``kind`` +
    canonical ``platform_id``), which is another customer's ``identity``, or, when ``identity``
    is null, nobody's: accepting it makes it an identity of ``customer_id``."""

    customer_id = serializers.IntegerField(read_only=True, help_text="The customer who wrote it.")
    kind = serializers.ChoiceField(
        choices=IdentitySuggestion._meta.get_field("kind").choices,
        read_only=True,
        help_text="The identity kind of what was written: email, phone (a new number), or the matched "
        "identity's kind (phone or whatsapp).",
    )
    platform_id = serializers.CharField(
        read_only=True, help_text="Its canonical id: the lower-cased address or the E.164 number."
    )
    identity = SuggestedIdentitySerializer(
        read_only=True,
        allow_null=True,
        help_text="The other customer's identity it matched; null for a new contact detail "
        "(nobody's when written).",
    )
    source_message_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The message it was written in."
    )
    decided_by_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = IdentitySuggestion
        fields = (
            "id",
            "customer_id",
            "kind",
            "platform_id",
            "identity",
            "value",
            "source_message_id",
            "status",
            "created_at",
            "decided_at",
            "decided_by_id",
        )
        read_only_fields = fields


class IdentityLinkInputSerializer(serializers.Serializer):
    identity_id = serializers.IntegerField(min_value=1, help_text="The identity to move to this customer.")


class CustomerMergeInputSerializer(serializers.Serializer):
    source_id = serializers.IntegerField(
        min_value=1, help_text="The customer merged into this one (its identities and cases move here)."
    )


class CustomerUnmergeInputSerializer(serializers.Serializer):
    source_id = serializers.IntegerField(min_value=1, help_text="The customer that was merged into this one.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
