"""Case actions: the input of each action on a case (reply, note, call, assign, transfer,
escalate, status, priority, move to private, bulk reassign, merge, take over), validated
before the service runs it, and the draft lock a reply is written under.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from cases.models import Case, Department, Message
from connectors.models import Channel
from customers.models import Identity

from .cases import CaseSerializer

User = get_user_model()


# --- Case actions ---------------------------------------------------------------------------------

REASON = {"required": False, "allow_blank": True, "default": "", "max_length": 2000}


class ReplyInputSerializer(serializers.Serializer):
    channel_id = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.filter(is_active=True),
        source="channel",
        help_text="The channel to answer on.",
    )
    text = serializers.CharField(
        max_length=20000, help_text="The reply (platform limits apply to public posts)."
    )
    is_public = serializers.BooleanField(
        default=False, help_text="A public post or comment, not a private message."
    )
    identity_id = serializers.PrimaryKeyRelatedField(
        queryset=Identity.objects.all(),
        source="identity",
        required=False,
        allow_null=True,
        default=None,
        help_text="The customer's identity to write to; by default the one they last wrote from there.",
    )
    draft_started_at = serializers.DateTimeField(
        help_text="Required. When the draft was begun, as the server's time: the case's `read_at` "
        "from when you read it (before its timeline). Refused with 409 stale_draft if the customer "
        "or a colleague wrote since.",
        error_messages={
            "required": "Required: the time you read the case (its read_at), so a reply to a "
            "timeline that changed since is refused instead of sent.",
            "null": "Required: the time you read the case (its read_at), not null.",
        },
    )


class NoteInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=20000, allow_blank=True)


class CallInputSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=[Message.Direction.IN, Message.Direction.OUT])
    number = serializers.CharField(max_length=64, allow_blank=True, default="")
    duration_seconds = serializers.IntegerField(min_value=0, max_value=7 * 24 * 3600)
    notes = serializers.CharField(max_length=20000, allow_blank=True, default="")
    channel_id = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.all(), source="channel", required=False, allow_null=True, default=None
    )
    at = serializers.DateTimeField(required=False, allow_null=True, default=None, help_text="Default: now.")


class AssignInputSerializer(serializers.Serializer):
    assignee_id = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        source="assignee",
        allow_null=True,
        help_text="Who gets the case; null unassigns it.",
    )
    reason = serializers.CharField(**REASON)


class TransferInputSerializer(serializers.Serializer):
    to_department_id = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.filter(is_active=True), source="to_department"
    )
    reason = serializers.CharField(
        **REASON, help_text="Required (reason_required otherwise); kept on the record."
    )
    note = serializers.CharField(
        max_length=5000, allow_blank=True, default="", help_text="Shown to the new department."
    )


class EscalateInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        **REASON, help_text="Required (reason_required otherwise); kept on the record."
    )
    note = serializers.CharField(
        max_length=5000, allow_blank=True, default="", help_text="Shown to the new department."
    )


class AcceptInputSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, allow_blank=True, default="")


class StatusInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Case.Status.choices)
    reason = serializers.CharField(**REASON)


class PriorityInputSerializer(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Case.Priority.choices)
    reason = serializers.CharField(**REASON)


class EmptyInputSerializer(serializers.Serializer):
    pass


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        **REASON, help_text="Required (reason_required otherwise); kept on the record."
    )


class MoveToPrivateInputSerializer(serializers.Serializer):
    channel_id = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.filter(is_active=True),
        source="channel",
        help_text="The public channel the invitation is posted on.",
    )
    private_channel_kind = serializers.ChoiceField(
        choices=[("dm", "Direct message"), ("email", "E-mail")], default="dm"
    )


class BulkReassignInputSerializer(serializers.Serializer):
    case_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=500
    )
    to_department_id = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.filter(is_active=True),
        source="to_department",
        required=False,
        allow_null=True,
        default=None,
    )
    assignee_id = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        source="assignee",
        required=False,
        allow_null=True,
        default=None,
    )
    reason = serializers.CharField(
        **REASON, help_text="Required (reason_required otherwise); kept on the record."
    )
    note = serializers.CharField(max_length=5000, allow_blank=True, default="")


class CaseMergeInputSerializer(serializers.Serializer):
    source_id = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        help_text="The case merged into this one: its messages and events move here and it is closed.",
    )
    reason = serializers.CharField(
        **REASON, help_text="Required (reason_required otherwise); kept on the record."
    )


class TakeOverInputSerializer(serializers.Serializer):
    reason = serializers.CharField(**REASON, help_text="Kept on the record (optional).")


class DraftLockSerializer(serializers.Serializer):
    """Who holds a case's reply lock now (the colleague's send is refused with draft_locked)."""

    case_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    since = serializers.DateTimeField(read_only=True)
    taken_from = serializers.CharField(
        read_only=True, help_text="Whom it was taken from; blank if it was free."
    )


class CaseListSerializer(serializers.Serializer):
    results = CaseSerializer(many=True, read_only=True)
