"""Configuration rows: departments, memberships, channels, calendars, service promises,
escalation paths and canned replies, each checked against the model's own rules
(``ModelRulesMixin``: ``full_clean``) so a bad row is a 400 naming the field.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from rest_framework import serializers

from cases import permissions
from cases.models import (
    BusinessCalendar,
    CannedReply,
    Case,
    Department,
    EscalationPath,
    Membership,
    ServicePromise,
)
from connectors.models import Channel

from .common import UserSummarySerializer

User = get_user_model()


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
