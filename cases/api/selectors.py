"""The API's reads: each returns a queryset scoped by ``cases.permissions`` that owns its joins.

List endpoints paginate these by keyset; the joins are chosen so that a page costs a
fixed number of queries whatever its size.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from cases import permissions
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
from connectors.models import ApiToken, Channel, WebhookDelivery, WebhookSubscription
from customers.models import Customer, Identity, IdentitySuggestion

CASE_JOINS = ("customer", "department", "assignee", "origin_channel", "last_channel")


def visible_cases(*, user) -> QuerySet[Case]:
    """Cases ``user`` may see (``permissions.visible_cases_q``), each once.

    The rule joins followers, which could repeat a case; filtering by the ids it matches
    keeps one row per case without DISTINCT, so ordering and keyset paging stay simple.
    """
    rule = permissions.visible_cases_q(user)
    if not rule:  # admins: no restriction
        return Case.objects.all()
    return Case.objects.filter(pk__in=Case.objects.filter(rule).values("pk"))


def case_list(*, user) -> QuerySet[Case]:
    """Visible cases with what a list row shows (customer, department, assignee, channels) joined."""
    return visible_cases(user=user).select_related(*CASE_JOINS)


def case_detail(*, user) -> QuerySet[Case]:
    """Visible cases with their followers too (one more query per case shown)."""
    return case_list(user=user).prefetch_related(
        Prefetch("followers", queryset=get_user_model().objects.only("id"))
    )


def case_for_response(*, case_id: int) -> Case:
    """A case re-read after an action, as the detail shows it (the actor just changed it, so no scope)."""
    return (
        Case.objects.select_related(*CASE_JOINS)
        .prefetch_related(Prefetch("followers", queryset=get_user_model().objects.only("id")))
        .get(pk=case_id)
    )


def cases_for_response(*, case_ids: list[int]) -> QuerySet[Case]:
    """Cases re-read after a bulk action, by id (the actor just changed them, so no scope)."""
    return Case.objects.select_related(*CASE_JOINS).filter(pk__in=case_ids).order_by("id")


def message_list(*, user) -> QuerySet[Message]:
    """Messages of visible cases, with attachments."""
    return (
        Message.objects.filter(case__in=visible_cases(user=user))
        .select_related("author")
        .prefetch_related("attachments")
    )


def case_event_list(*, user) -> QuerySet[CaseEvent]:
    return CaseEvent.objects.filter(case__in=visible_cases(user=user))


def visible_customers(*, user) -> QuerySet[Customer]:
    """Customers ``user`` may see: those with a case the user may see (admins: all), as on the
    desk's customer page (``cases.selectors.customer_for_page``)."""
    rule = permissions.visible_cases_q(user)
    if not rule:
        return Customer.objects.all()
    return Customer.objects.filter(pk__in=Case.objects.filter(rule).values("customer_id"))


def customer_list(*, user) -> QuerySet[Customer]:
    """Visible customers with their identities (one query for the page's identities)."""
    return visible_customers(user=user).prefetch_related(
        Prefetch("identities", queryset=Identity.objects.order_by("id"))
    )


def identity_list(*, user) -> QuerySet[Identity]:
    """Identities of the customers ``user`` may see."""
    if permissions.is_admin(user):
        return Identity.objects.all()
    return Identity.objects.filter(customer__in=visible_customers(user=user))


def identity_suggestion_list(*, user) -> QuerySet[IdentitySuggestion]:
    """Suggested links made for the customers ``user`` may see, each with the identity it matched."""
    suggestions = IdentitySuggestion.objects.select_related("identity")
    rule = permissions.visible_cases_q(user)
    if not rule:
        return suggestions
    return suggestions.filter(customer_id__in=Case.objects.filter(rule).values("customer_id"))


def customer_suggestion_list(*, customer: Customer) -> QuerySet[IdentitySuggestion]:
    """Every suggested link made for one customer (the caller checked they may see it)."""
    return IdentitySuggestion.objects.select_related("identity").filter(customer_id=customer.pk)


def department_list() -> QuerySet[Department]:
    return Department.objects.all()


def membership_list(*, user) -> QuerySet[Membership]:
    """Admins see every membership; others the memberships of their own departments."""
    memberships = Membership.objects.select_related("user")
    if permissions.is_admin(user):
        return memberships
    return memberships.filter(department_id__in=permissions.department_ids(user))


def channel_list() -> QuerySet[Channel]:
    return Channel.objects.all()


def calendar_list() -> QuerySet[BusinessCalendar]:
    return BusinessCalendar.objects.all()


def promise_list() -> QuerySet[ServicePromise]:
    return ServicePromise.objects.all()


def escalation_path_list() -> QuerySet[EscalationPath]:
    return EscalationPath.objects.all()


def token_list(*, user) -> QuerySet[ApiToken]:
    """The user's own tokens, revoked ones included (they show when they were revoked)."""
    return ApiToken.objects.filter(user=user)


def webhook_subscription_list() -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.all()


def webhook_delivery_list(*, subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(subscription=subscription)


def canned_reply_list(*, user) -> QuerySet[CannedReply]:
    """Canned replies offered to ``user`` (``permissions.offered_canned_replies_q``), by title."""
    return CannedReply.objects.filter(permissions.offered_canned_replies_q(user))


def incident_list(*, user) -> QuerySet[Incident]:
    """Incidents on the channels of ``user``'s departments, with their cases' ids (one more query)."""
    return Incident.objects.filter(permissions.visible_incidents_q(user)).prefetch_related(
        Prefetch("cases", queryset=Case.objects.only("id"))
    )
