"""What the API shows and accepts. Output serializers read selector rows (no queries of their
own); input serializers validate one action's arguments before a service runs it.

Configuration rows (departments, memberships, channels, calendars, promises, paths) are
plain records without side effects; their serializers check the model's own rules
(``full_clean``: field validators and named constraints) so a bad row is a 400 naming
the field, never a database error.
"""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from rest_framework import serializers

from cases import permissions, selectors
from cases.models import (
    Attachment,
    BusinessCalendar,
    CannedReply,
    Case,
    CaseEvent,
    Department,
    EscalationPath,
    Incident,
    Membership,
    Message,
    ServicePromise,
)
from connectors.models import ApiToken, Channel, WebhookDelivery, WebhookEvent, WebhookSubscription
from customers.models import Customer, Identity, IdentitySuggestion

User = get_user_model()


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


# --- Configuration ------------------------------------------------------------------------------


def _django_errors(exc: DjangoValidationError) -> dict:
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    return {
        ("non_field_errors" if key == NON_FIELD_ERRORS else key): [
            message for error in errors for message in error.messages
        ]
        for key, errors in exc.error_dict.items()
    }


class ModelRulesMixin:
    """Validate the would-be row with the model's own rules (validators, unique and check constraints)."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        # A copy, so a refused change never touches the object the view holds.
        instance = copy.copy(self.instance) if self.instance is not None else model()
        for key, value in attrs.items():
            setattr(instance, key, value)
        try:
            instance.full_clean()
        except DjangoValidationError as exc:
            errors = _django_errors(exc)
            # Report errors on the API's field names (``department_id``, not ``department``).
            renamed = {}
            for key, messages in errors.items():
                api_name = next(
                    (
                        name
                        for name, field in self.fields.items()
                        if field.source == key and not field.read_only
                    ),
                    key,
                )
                renamed[api_name] = messages
            raise serializers.ValidationError(renamed) from exc
        return attrs


class DepartmentSerializer(ModelRulesMixin, serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ("id", "name", "slug", "description", "is_active")


class MembershipSerializer(ModelRulesMixin, serializers.ModelSerializer):
    user = UserSummarySerializer(read_only=True)
    user_id = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), source="user", write_only=True)
    department_id = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), source="department")

    class Meta:
        model = Membership
        fields = ("id", "user", "user_id", "department_id", "role", "created_at")
        read_only_fields = ("created_at",)


ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
SECRET_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ChannelSerializer(ModelRulesMixin, serializers.ModelSerializer):
    """A channel; ``secret_env`` and ``api_base_url`` are shown to admins only, and no secret ever is."""

    department_id = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), source="department")
    api_base_url = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Admins only. Blank: the platform's own API.",
    )
    secret_env = serializers.DictField(
        child=serializers.CharField(max_length=128),
        required=False,
        help_text='Secret role -> the NAME of the environment variable holding it (admins only), e.g. {"app_secret": "META_APP_SECRET"}.',
    )

    class Meta:
        model = Channel
        fields = (
            "id",
            "kind",
            "name",
            "slug",
            "department_id",
            "account_id",
            "handle",
            "is_active",
            "secret_env",
            "api_base_url",
            "created_at",
        )
        read_only_fields = ("created_at",)

    ADMIN_ONLY = ("secret_env", "api_base_url")

    def validate_secret_env(self, value: dict) -> dict:
        for role, var in value.items():
            if not SECRET_ROLE.match(role):
                raise serializers.ValidationError(f"'{role}' is not a secret role (lower_case_words).")
            if not ENV_NAME.match(var):
                raise serializers.ValidationError(
                    f"'{var}' is not an environment variable name (UPPER_CASE); put the name here, not the secret."
                )
        return value

    def to_representation(self, channel):
        data = super().to_representation(channel)
        request = self.context.get("request")
        if not permissions.is_admin(getattr(request, "user", None)):
            for name in self.ADMIN_ONLY:
                data.pop(name, None)
        return data


HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class CalendarSerializer(ModelRulesMixin, serializers.ModelSerializer):
    weekly_hours = serializers.DictField(
        child=serializers.ListField(child=serializers.ListField(child=serializers.CharField(max_length=5))),
        required=False,
        help_text='ISO weekday ("1" is Monday) -> [["09:00", "17:00"], ...].',
    )
    extra_closed_dates = serializers.ListField(child=serializers.DateField(), required=False, max_length=1000)

    class Meta:
        model = BusinessCalendar
        fields = (
            "id",
            "name",
            "time_zone",
            "always_open",
            "weekly_hours",
            "holiday_country",
            "extra_closed_dates",
        )

    def validate_time_zone(self, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise serializers.ValidationError(f"'{value}' is not an IANA time zone.") from exc
        return value

    def validate_holiday_country(self, value: str) -> str:
        import holidays

        country = value.split("-", 1)[0]
        if value and country not in holidays.list_supported_countries():
            raise serializers.ValidationError(f"'{value}' is not a country the holidays calendar knows.")
        return value

    def validate_weekly_hours(self, value: dict) -> dict:
        for day, spans in value.items():
            if day not in {str(n) for n in range(1, 8)}:
                raise serializers.ValidationError(f"'{day}' is not an ISO weekday (1-7).")
            for span in spans:
                if len(span) != 2 or not all(HHMM.match(t) for t in span) or span[0] >= span[1]:
                    raise serializers.ValidationError(f'{span} is not a span like ["09:00", "17:00"].')
        return value

    def validate_extra_closed_dates(self, value: list[date]) -> list[str]:
        return sorted({day.isoformat() for day in value})


PROMISE_TARGETS = ("first_response_minutes", "next_response_minutes", "resolution_minutes")


class ServicePromiseSerializer(ModelRulesMixin, serializers.ModelSerializer):
    channel_id = serializers.PrimaryKeyRelatedField(queryset=Channel.objects.all(), source="channel")
    calendar_id = serializers.PrimaryKeyRelatedField(
        queryset=BusinessCalendar.objects.all(), source="calendar", allow_null=True, required=False
    )
    priority_overrides = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField(min_value=1, max_value=10**6)),
        required=False,
        help_text='Tighter targets by priority: {"urgent": {"first_response_minutes": 15}}.',
    )

    class Meta:
        model = ServicePromise
        fields = (
            "id",
            "channel_id",
            "calendar_id",
            *PROMISE_TARGETS,
            "at_risk_ratio",
            "priority_overrides",
        )
        extra_kwargs = {name: {"min_value": 1, "max_value": 10**6} for name in PROMISE_TARGETS} | {
            "at_risk_ratio": {"min_value": Decimal("0.01"), "max_value": Decimal("0.99")}
        }

    def validate_priority_overrides(self, value: dict) -> dict:
        for priority, targets in value.items():
            if priority not in Case.Priority.values:
                raise serializers.ValidationError(f"'{priority}' is not a priority.")
            unknown = set(targets) - set(PROMISE_TARGETS)
            if unknown:
                raise serializers.ValidationError(f"Unknown targets: {', '.join(sorted(unknown))}.")
        return value


class EscalationPathSerializer(ModelRulesMixin, serializers.ModelSerializer):
    from_department_id = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(), source="from_department"
    )
    to_department_id = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(), source="to_department"
    )

    class Meta:
        model = EscalationPath
        fields = (
            "id",
            "from_department_id",
            "to_department_id",
            "trigger",
            "order",
            "priority_threshold",
            "category",
            "is_active",
            "warn_after_minutes",
            "notify_after_minutes",
            "escalate_after_minutes",
        )
        extra_kwargs = {
            "order": {"min_value": 1, "max_value": 100},
            "priority_threshold": {"help_text": "For trigger=priority: the lowest priority that escalates."},
            "category": {"help_text": "For trigger=category: the category that escalates."},
            **{
                name: {"min_value": 0, "max_value": 100000}
                for name in ("warn_after_minutes", "notify_after_minutes", "escalate_after_minutes")
            },
        }

    def validate(self, attrs):
        attrs = super().validate(attrs)
        trigger = attrs.get("trigger", getattr(self.instance, "trigger", EscalationPath.Trigger.MANUAL))
        threshold = attrs.get("priority_threshold", getattr(self.instance, "priority_threshold", ""))
        category = attrs.get("category", getattr(self.instance, "category", ""))
        if trigger == EscalationPath.Trigger.PRIORITY and threshold not in Case.Priority.values:
            raise serializers.ValidationError({"priority_threshold": "Choose the priority that escalates."})
        if trigger == EscalationPath.Trigger.CATEGORY and category not in Case.Category.values[1:]:
            raise serializers.ValidationError({"category": "Choose the category that escalates."})
        return attrs


class CannedReplySerializer(ModelRulesMixin, serializers.ModelSerializer):
    department_id = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(),
        source="department",
        allow_null=True,
        required=False,
        help_text="Null: offered to every department.",
    )

    class Meta:
        model = CannedReply
        fields = (
            "id",
            "title",
            "body",
            "department_id",
            "channel_kind",
            "is_active",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")
        # The model's own constraints decide (ModelRulesMixin); DRF's unique-together check
        # would make ``department_id`` required.
        validators: list = []

    def validate(self, attrs):
        title = attrs.get("title", getattr(self.instance, "title", ""))
        department = attrs.get("department", getattr(self.instance, "department", None))
        clash = CannedReply.objects.filter(title=title, department=department)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if title and clash.exists():
            where = f"in {department}" if department else "for every department"
            raise serializers.ValidationError(
                {"title": f"There is already a canned reply '{title}' {where}."}
            )
        return super().validate(attrs)


class CannedReplyFilledSerializer(serializers.Serializer):
    """A canned reply as offered on one case, its placeholders filled for the agent asking."""

    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    channel_kind = serializers.CharField(read_only=True, help_text="Blank: offered on every platform.")
    text = serializers.CharField(
        read_only=True, help_text="The body with {customer_name}, {reference} and {agent_name} filled."
    )


class CannedReplyFilledListSerializer(serializers.Serializer):
    results = CannedReplyFilledSerializer(many=True, read_only=True)


# --- Incidents and reports -----------------------------------------------------------------------


class IncidentSerializer(serializers.ModelSerializer):
    channel_id = serializers.IntegerField(read_only=True)
    case_ids = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = (
            "id",
            "channel_id",
            "status",
            "title",
            "window_start",
            "window_end",
            "mention_count",
            "baseline",
            "detected_at",
            "closed_at",
            "case_ids",
        )
        read_only_fields = fields

    def get_case_ids(self, incident) -> list[int]:
        return sorted(case.pk for case in incident.cases.all())


class IncidentReplyInputSerializer(serializers.Serializer):
    text = serializers.CharField(
        max_length=20000, help_text="One public reply, queued on every open case of the incident."
    )


class ReportQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (default: six days before today).")
    end = serializers.DateField(required=False, help_text="Last day, inclusive (default: today).")
    group_by = serializers.ChoiceField(choices=["channel", "department"], default="channel")

    def validate(self, attrs):
        from datetime import timedelta

        from django.utils import timezone

        end = attrs.get("end") or timezone.localdate()
        start = attrs.get("start") or end - timedelta(days=6)
        if end < start:
            raise serializers.ValidationError({"end": "The end date is before the start date."})
        if (end - start).days > 366:
            raise serializers.ValidationError({"end": "A report covers at most a year."})
        return {**attrs, "start": start, "end": end}


class ReportRowSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The channel's or the department's name.")
    responded = serializers.IntegerField(help_text="Cases whose first response was sent in the period.")
    kept = serializers.IntegerField(help_text="Of those, first-response promises kept.")
    broken = serializers.IntegerField(help_text="Of those, first-response promises broken.")
    kept_share = serializers.FloatField(allow_null=True, help_text="kept / responded (null when none).")
    breaches = serializers.IntegerField(help_text="Promise breaches of any clock recorded in the period.")
    at_risk_now = serializers.IntegerField(help_text="Open cases at risk or breached at this moment.")
    median_first_response_seconds = serializers.FloatField(allow_null=True)
    p90_first_response_seconds = serializers.FloatField(allow_null=True)


class PromiseReportSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    group_by = serializers.ChoiceField(choices=["channel", "department"])
    rows = ReportRowSerializer(many=True)


def report_row(row) -> dict:
    def seconds(value):
        return value.total_seconds() if value is not None else None

    return {
        "label": row.label,
        "responded": row.responded,
        "kept": row.kept,
        "broken": row.broken,
        "kept_share": row.kept_share,
        "breaches": row.breaches,
        "at_risk_now": row.at_risk_now,
        "median_first_response_seconds": seconds(row.median_first_response),
        "p90_first_response_seconds": seconds(row.p90_first_response),
    }


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
