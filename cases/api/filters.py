"""Filters for every list, netbox style: ``<fk>_id`` takes one or more ids (repeat the parameter),
choice filters take one or more values, ``created_after``/``created_before`` bound times, ``q`` searches.

Filters run no queries of their own (ids are not looked up), so they never change a page's
query count.
"""

from __future__ import annotations

from datetime import UTC

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from cases.models import (
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
from customers.identifiers import normalize_platform_id
from customers.models import Customer, Identity, IdentitySuggestion

MAX_IDS = 100
MAX_ID = 2**63 - 1


class IdListField(forms.MultipleChoiceField):
    """One or more ids; ``null`` stands for "none" where the filter allows it."""

    def __init__(self, *args, allow_null: bool = False, **kwargs):
        self.allow_null = allow_null
        kwargs.pop("choices", None)
        super().__init__(*args, **kwargs)

    def valid_value(self, value) -> bool:
        return True

    def clean(self, value):
        value = super().clean(value) or []
        if len(value) > MAX_IDS:
            raise ValidationError(f"At most {MAX_IDS} ids.", code="invalid")
        ids = []
        for raw in value:
            if self.allow_null and raw == "null":
                ids.append(None)
            elif raw.isdigit() and 0 < int(raw) <= MAX_ID:
                ids.append(int(raw))
            else:
                raise ValidationError(f"'{raw}' is not an id.", code="invalid")
        return ids


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.MultipleChoiceFilter):
    """``?department_id=1&department_id=2``: rows whose ``field_name`` is any of the ids."""

    field_class = IdListField

    def __init__(self, *args, allow_null: bool = False, **kwargs):
        kwargs.setdefault("distinct", False)
        super().__init__(*args, **kwargs)
        self.extra["allow_null"] = allow_null

    def filter(self, qs, value):
        if not value:
            return qs
        ids = [v for v in value if v is not None]
        q = Q(**{f"{self.field_name}__in": ids}) if ids else Q(pk__in=[])
        if len(ids) != len(value):
            q |= Q(**{f"{self.field_name}__isnull": True})
        return qs.filter(q)


class ChoicesFilter(filters.MultipleChoiceFilter):
    """``?status=new&status=open``: rows with any of the values."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("distinct", False)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        return qs.filter(**{f"{self.field_name}__in": value}) if value else qs


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, kept in UTC: the database refuses offsets beyond ±15:59."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValidationError("That time is out of range.", code="invalid") from exc


class TimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class SearchFilter(filters.CharFilter):
    """``q``: rows where any of ``lookups`` matches the trimmed value (blank: no filter).

    Without ``lookups`` the FilterSet's own ``search`` method decides.
    """

    def __init__(self, *args, lookups: tuple[str, ...] = (), **kwargs):
        self.lookups = lookups
        if not lookups:
            kwargs.setdefault("method", "search")
        kwargs.setdefault("label", "Search")
        kwargs.setdefault("max_length", 200)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not self.lookups:
            return super().filter(qs, value)
        value = (value or "").strip()
        if not value:
            return qs
        match = Q()
        for lookup in self.lookups:
            match |= Q(**{lookup: value})
        return qs.filter(match)


class CaseFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    reference = filters.CharFilter(field_name="reference", lookup_expr="iexact", max_length=12)
    department_id = IdFilter(field_name="department_id")
    assignee_id = IdFilter(field_name="assignee_id", allow_null=True, label="Assignee id (null: unassigned)")
    customer_id = IdFilter(field_name="customer_id")
    channel_id = IdFilter(field_name="last_channel_id", label="The channel the customer last wrote on")
    origin_channel_id = IdFilter(field_name="origin_channel_id")
    status = ChoicesFilter(choices=Case.Status.choices)
    priority = ChoicesFilter(choices=Case.Priority.choices)
    category = ChoicesFilter(choices=Case.Category.choices)
    sla_state = ChoicesFilter(choices=Case.SlaState.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = TimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = TimeFilter(field_name="updated_at", lookup_expr="lt")
    due_after = TimeFilter(field_name="due_at", lookup_expr="gte")
    due_before = TimeFilter(field_name="due_at", lookup_expr="lt")
    q = SearchFilter(
        help_text="Reference, subject or customer name",
        lookups=("reference__iexact", "subject__icontains", "customer__name__icontains"),
    )

    class Meta:
        model = Case
        fields: list[str] = []


class MessageFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    case_id = IdFilter(field_name="case_id")
    channel_id = IdFilter(field_name="channel_id")
    identity_id = IdFilter(field_name="identity_id")
    author_id = IdFilter(field_name="author_id")
    direction = ChoicesFilter(choices=Message.Direction.choices)
    kind = ChoicesFilter(choices=Message.Kind.choices)
    delivery_state = ChoicesFilter(choices=Message.Delivery.choices)
    is_public = filters.BooleanFilter()
    sent_after = TimeFilter(field_name="sent_at", lookup_expr="gte")
    sent_before = TimeFilter(field_name="sent_at", lookup_expr="lt")
    q = SearchFilter(help_text="Text of the message", lookups=("text__icontains",))

    class Meta:
        model = Message
        fields: list[str] = []


class CaseEventFilterSet(filters.FilterSet):
    case_id = IdFilter(field_name="case_id")
    actor_id = IdFilter(field_name="actor_id", allow_null=True, label="Actor id (null: the system)")
    kind = ChoicesFilter(choices=CaseEvent.Kind.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CaseEvent
        fields: list[str] = []


class CustomerFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    tier = ChoicesFilter(choices=Customer.Tier.choices)
    merged = filters.BooleanFilter(field_name="merged_into", lookup_expr="isnull", exclude=True)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = TimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = TimeFilter(field_name="updated_at", lookup_expr="lt")
    q = SearchFilter(help_text="Name, or an identity's handle or platform id")

    class Meta:
        model = Customer
        fields: list[str] = []

    def search(self, queryset, name, value):
        value = value.strip().lstrip("@")
        if not value:
            return queryset
        matching = Identity.objects.filter(Q(handle__iexact=value) | Q(platform_id=value)).values(
            "customer_id"
        )
        return queryset.filter(Q(name__icontains=value) | Q(pk__in=matching))


class IdentitySuggestionFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    customer_id = IdFilter(field_name="customer_id", label="The customer who wrote the address or number")
    identity_id = IdFilter(field_name="identity_id", label="The identity it matched")
    kind = ChoicesFilter(choices=IdentitySuggestion._meta.get_field("kind").choices)
    new_contact = filters.BooleanFilter(
        field_name="identity",
        lookup_expr="isnull",
        label="Only new contact details (true) or only matches (false)",
    )
    status = ChoicesFilter(choices=IdentitySuggestion.Status.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = IdentitySuggestion
        fields: list[str] = []


class IdentityFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    customer_id = IdFilter(field_name="customer_id")
    kind = ChoicesFilter(choices=Identity.Kind.choices)
    link_source = ChoicesFilter(choices=Identity.LinkSource.choices)
    platform_id = filters.CharFilter(
        method="by_platform_id", max_length=255, help_text="In any spelling (e-mail case, phone formats)"
    )
    q = SearchFilter(help_text="Handle, display name or platform id")

    class Meta:
        model = Identity
        fields: list[str] = []

    def by_platform_id(self, queryset, name, value):
        kinds = self.form.cleaned_data.get("kind") or Identity.Kind.values
        q = Q(pk__in=[])
        for kind in kinds:
            try:
                canonical = normalize_platform_id(kind, value)
            except ValidationError:
                continue
            q |= Q(kind=kind, platform_id=canonical)
        return queryset.filter(q)

    def search(self, queryset, name, value):
        value = value.strip().lstrip("@")
        if not value:
            return queryset
        return queryset.filter(
            Q(handle__icontains=value) | Q(display_name__icontains=value) | Q(platform_id=value)
        )


class DepartmentFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    is_active = filters.BooleanFilter()
    q = SearchFilter(help_text="Name or slug", lookups=("name__icontains", "slug__icontains"))

    class Meta:
        model = Department
        fields: list[str] = []


class MembershipFilterSet(filters.FilterSet):
    department_id = IdFilter(field_name="department_id")
    user_id = IdFilter(field_name="user_id")
    role = ChoicesFilter(choices=Membership.Role.choices)

    class Meta:
        model = Membership
        fields: list[str] = []


class ChannelFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    department_id = IdFilter(field_name="department_id")
    kind = ChoicesFilter(choices=Channel.Kind.choices)
    is_active = filters.BooleanFilter()
    q = SearchFilter(
        help_text="Name, slug or handle", lookups=("name__icontains", "slug__icontains", "handle__icontains")
    )

    class Meta:
        model = Channel
        fields: list[str] = []


class CalendarFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    q = SearchFilter(help_text="Name", lookups=("name__icontains",))

    class Meta:
        model = BusinessCalendar
        fields: list[str] = []


class ServicePromiseFilterSet(filters.FilterSet):
    channel_id = IdFilter(field_name="channel_id")
    calendar_id = IdFilter(field_name="calendar_id", allow_null=True, label="Calendar id (null: 24/7)")

    class Meta:
        model = ServicePromise
        fields: list[str] = []


class EscalationPathFilterSet(filters.FilterSet):
    from_department_id = IdFilter(field_name="from_department_id")
    to_department_id = IdFilter(field_name="to_department_id")
    trigger = ChoicesFilter(choices=EscalationPath.Trigger.choices)
    is_active = filters.BooleanFilter()

    class Meta:
        model = EscalationPath
        fields: list[str] = []


class WebhookDeliveryFilterSet(filters.FilterSet):
    status = ChoicesFilter(choices=WebhookDelivery.Status.choices)
    event_type = ChoicesFilter(choices=WebhookEvent.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = WebhookDelivery
        fields: list[str] = []


class CannedReplyFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    department_id = IdFilter(
        field_name="department_id", allow_null=True, label="Department id (null: offered everywhere)"
    )
    channel_kind = filters.MultipleChoiceFilter(
        method="by_channel_kind",
        choices=CannedReply._meta.get_field("channel_kind").choices,
        help_text="Replies offered on these platforms (those for every platform included).",
    )
    is_active = filters.BooleanFilter()
    q = SearchFilter(help_text="Title or text", lookups=("title__icontains", "body__icontains"))

    class Meta:
        model = CannedReply
        fields: list[str] = []

    def by_channel_kind(self, queryset, name, value):
        return queryset.filter(Q(channel_kind="") | Q(channel_kind__in=value)) if value else queryset


class LinkedCaseFilter(IdFilter):
    """Incidents linking any of the case ids, each incident once (a subquery, not a join)."""

    def filter(self, qs, value):
        ids = [v for v in value or [] if v is not None]
        if not value:
            return qs
        links = Incident.cases.through.objects.filter(case_id__in=ids).values("incident_id")
        return qs.filter(pk__in=links)


class IncidentFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    channel_id = IdFilter(field_name="channel_id")
    department_id = IdFilter(field_name="channel__department_id", label="The channel's department")
    case_id = LinkedCaseFilter(field_name="case_id", label="Incidents linking any of these cases")
    status = ChoicesFilter(choices=Incident.Status.choices)
    detected_after = TimeFilter(field_name="detected_at", lookup_expr="gte")
    detected_before = TimeFilter(field_name="detected_at", lookup_expr="lt")
    q = SearchFilter(help_text="Title", lookups=("title__icontains",))

    class Meta:
        model = Incident
        fields: list[str] = []


class WebhookSubscriptionFilterSet(filters.FilterSet):
    id = IdFilter(field_name="id")
    is_active = filters.BooleanFilter()
    disabled = filters.BooleanFilter(
        field_name="disabled_at",
        lookup_expr="isnull",
        exclude=True,
        label="Switched off after repeated failures",
    )
    q = SearchFilter(help_text="Name or URL", lookups=("name__icontains", "url__icontains"))

    class Meta:
        model = WebhookSubscription
        fields: list[str] = []


class ApiTokenFilterSet(filters.FilterSet):
    scope = ChoicesFilter(choices=ApiToken.Scope.choices)
    revoked = filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ApiToken
        fields: list[str] = []
