"""Cases and what is on them: a case in a list and in detail, its messages with their
attachments, and its case events (the audit trail), read from selector rows.
"""

from __future__ import annotations

from datetime import datetime

from rest_framework import serializers

from cases.models import Attachment, Case, CaseEvent, Message

from .common import CustomerSummarySerializer, NamedSummarySerializer, UserSummarySerializer

# --- Cases ----------------------------------------------------------------------------------------


class CaseSerializer(serializers.ModelSerializer):
    customer = CustomerSummarySerializer(read_only=True)
    department = NamedSummarySerializer(read_only=True)
    assignee = UserSummarySerializer(read_only=True, allow_null=True)
    origin_channel_id = serializers.IntegerField(read_only=True, allow_null=True)
    last_channel_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Case
        fields = (
            "id",
            "reference",
            "subject",
            "status",
            "priority",
            "category",
            "sla_state",
            "due_at",
            "at_risk_at",
            "first_response_due_at",
            "next_response_due_at",
            "resolution_due_at",
            "customer",
            "department",
            "assignee",
            "origin_channel_id",
            "last_channel_id",
            "created_at",
            "updated_at",
            "first_inbound_at",
            "last_inbound_at",
            "last_outbound_at",
            "first_responded_at",
            "resolved_at",
            "closed_at",
        )
        read_only_fields = fields


class CaseDetailSerializer(CaseSerializer):
    follower_ids = serializers.SerializerMethodField()
    read_at = serializers.SerializerMethodField(
        help_text="The server's time just before this case was read: send it back as a reply's "
        "draft_started_at."
    )

    class Meta(CaseSerializer.Meta):
        fields = (*CaseSerializer.Meta.fields, "handoff_note", "breach_step", "follower_ids", "read_at")
        read_only_fields = fields

    def get_follower_ids(self, case) -> list[int]:
        return sorted(user.pk for user in case.followers.all())

    def get_read_at(self, case) -> datetime | None:
        read_at = self.context.get("read_at")
        return None if read_at is None else serializers.DateTimeField().to_representation(read_at)


class AttachmentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ("id", "filename", "content_type", "size", "url")
        read_only_fields = fields

    def get_url(self, attachment) -> str:
        if attachment.file:
            return attachment.file.url
        return attachment.external_url


class MessageSerializer(serializers.ModelSerializer):
    case_id = serializers.IntegerField(read_only=True)
    channel_id = serializers.IntegerField(read_only=True, allow_null=True)
    identity_id = serializers.IntegerField(read_only=True, allow_null=True)
    reply_to_id = serializers.IntegerField(read_only=True, allow_null=True)
    author = UserSummarySerializer(read_only=True, allow_null=True)
    attachments = AttachmentSerializer(many=True, read_only=True)
    # Blank when there is none, so not typed as a URI.
    recording_url = serializers.CharField(read_only=True)

    class Meta:
        model = Message
        fields = (
            "id",
            "case_id",
            "channel_id",
            "identity_id",
            "author",
            "direction",
            "kind",
            "is_public",
            "external_id",
            "reply_to_id",
            "subject",
            "text",
            "html",
            "call_duration",
            "recording_url",
            "delivery_state",
            "delivery_error",
            "sent_at",
            "created_at",
            "attachments",
        )
        read_only_fields = fields


class CaseEventSerializer(serializers.ModelSerializer):
    case_id = serializers.IntegerField(read_only=True)
    actor_id = serializers.IntegerField(read_only=True, allow_null=True)
    message_id = serializers.IntegerField(read_only=True, allow_null=True)
    before = serializers.DictField(read_only=True)
    after = serializers.DictField(read_only=True)

    class Meta:
        model = CaseEvent
        fields = (
            "id",
            "case_id",
            "kind",
            "actor_id",
            "before",
            "after",
            "reason",
            "message_id",
            "created_at",
        )
        read_only_fields = fields
