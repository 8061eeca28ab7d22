"""``manage.py seed_demo``: a believable contact centre, built through the services, idempotently."""

from __future__ import annotations

import io
import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from cases import demo, selectors
from cases.models import (
    BusinessCalendar,
    Case,
    CaseEvent,
    Department,
    EscalationPath,
    Membership,
    Message,
    ServicePromise,
)
from connectors.models import Channel
from customers.identifiers import normalize_platform_id
from customers.models import Customer, Identity

MODELS = [
    Department,
    EscalationPath,
    BusinessCalendar,
    Channel,
    ServicePromise,
    Membership,
    EmailAddress,
    Customer,
    Identity,
    Case,
    Message,
    CaseEvent,
]


def counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        **{model.__name__: model.objects.count() for model in MODELS},
    }


def case_state() -> set[tuple]:
    return set(
        Case.objects.values_list(
            "reference", "status", "department_id", "assignee_id", "due_at", "sla_state", "updated_at"
        )
    )


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """The demo, seeded once for this module and rolled back after it."""
    with django_db_blocker.unblock(), transaction.atomic():
        out = io.StringIO()
        call_command("seed_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


def cross_channel_cases():
    """Cases whose customer wrote on at least three channels."""
    cases = []
    for case in Case.objects.prefetch_related("messages__channel"):
        kinds = {m.channel.kind for m in case.messages.all() if m.channel and m.direction == "in"}
        if len(kinds) >= 3:
            cases.append(case)
    return cases


def test_seed_builds_the_contact_centre(seeded, db):
    assert {d.name for d in Department.objects.all()} == {
        "Social Care",
        "Customer Service",
        "Billing",
        "Technical Support",
    }
    assert set(Channel.objects.values_list("kind", flat=True)) == set(Channel.Kind.values)
    assert ServicePromise.objects.count() == Channel.objects.count() == 6
    x = Channel.objects.get(kind="x")
    assert x.promise.first_response_minutes == 60 and x.promise.calendar.always_open
    email = Channel.objects.get(kind="email")
    assert email.promise.first_response_minutes == 480
    assert (
        email.promise.calendar.time_zone == "Europe/London" and email.promise.calendar.holiday_country == "GB"
    )
    assert EscalationPath.objects.filter(
        from_department__slug="social-care", to_department__slug="customer-service", trigger="sla_breach"
    ).exists()
    assert Customer.objects.count() == demo.DEMO_CUSTOMERS
    assert Case.objects.count() == demo.DEMO_CASES
    assert 12 <= get_user_model().objects.count() <= 20
    # Customers are linked across platforms, some by agents or on a suggestion.
    assert Identity.objects.values("customer").distinct().count() == Customer.objects.count()
    assert Identity.objects.exclude(link_source="verified").exists()
    assert Customer.objects.filter(tier="vip").exists()
    # A mix of states a desk shows.
    assert {"new", "open", "waiting_on_customer", "monitoring", "resolved"} <= set(
        Case.objects.values_list("status", flat=True)
    )
    assert CaseEvent.objects.filter(kind="transferred").exclude(reason="").exists()
    assert demo.DEMO_LOGINS[0] in seeded and demo.DEMO_PASSWORD in seeded


def test_channels_name_their_secrets_never_hold_them(seeded, db):
    for channel in Channel.objects.all():
        assert channel.secret_env, channel.slug
        for role, var in channel.secret_env.items():
            assert re.fullmatch(r"CASELINE_[A-Z0-9_]+", var), (channel.slug, role, var)
    assert Channel.objects.get(kind="x").secret_env["consumer_secret"] == "CASELINE_X_CONSUMER_SECRET"


def test_every_case_change_went_through_the_services(seeded, db):
    # Each message has the CaseEvent message_add writes; each case its "created" event.
    assert CaseEvent.objects.filter(message__isnull=False).count() == Message.objects.count()
    assert CaseEvent.objects.filter(kind="created").count() == Case.objects.count()
    for identity in Identity.objects.all():
        assert normalize_platform_id(identity.kind, identity.platform_id) == identity.platform_id


def test_seeding_again_changes_nothing(seeded, db):
    before, state = counts(), case_state()

    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    assert counts() == before
    assert case_state() == state
    assert "none were added" in out.getvalue()


def test_conversations_cross_channels_on_one_case_in_time_order(seeded, db):
    crossing = cross_channel_cases()
    assert len(crossing) >= 20

    agent = get_user_model().objects.get(email=demo.demo_email("agent"))
    mine = [c for c in crossing if c.assignee_id == agent.pk and c.is_open]
    assert len(mine) >= 3  # the demo agent sees some as soon as they log in

    timeline = list(selectors.case_timeline(case=mine[0]))
    times = [m.sent_at for m in timeline]
    assert times == sorted(times)
    first_seen = {}
    for position, message in enumerate(timeline):
        if message.direction == "in":
            first_seen.setdefault((message.channel.kind, message.kind), position)
    # A public tweet, then a DM, then an e-mail, then a call: all on this one case.
    path = [("x", "post"), ("x", "dm"), ("email", "email"), ("phone", "call")]
    assert [first_seen[step] for step in path] == sorted(first_seen[step] for step in path)
    assert timeline[0].is_public
    call = next(m for m in timeline if m.kind == "call")
    assert call.call_duration and call.call_duration > 0
    assert mine[0].reference in next(m for m in timeline if m.kind == "email" and m.direction == "in").subject
    assert len({m.identity.customer_id for m in timeline if m.identity}) == 1


@pytest.mark.parametrize("login", ["agent", "supervisor", "admin"])
def test_demo_users_log_in_by_email(seeded, client, login):
    response = client.post(
        reverse("account_login"), {"login": demo.demo_email(login), "password": demo.DEMO_PASSWORD}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("desk:queue")
    user = get_user_model().objects.get(email=demo.demo_email(login))
    assert client.session["_auth_user_id"] == str(user.pk)
    assert EmailAddress.objects.get(user=user).verified


def test_demo_roles(seeded, db):
    users = {
        u.email.split("@")[0]: u
        for u in get_user_model().objects.filter(email__endswith=demo.DEMO_EMAIL_DOMAIN)
    }
    assert users["admin"].is_staff and users["admin"].is_superuser
    assert not users["agent"].is_staff
    assert set(users["supervisor"].memberships.values_list("role", flat=True)) == {"supervisor"}
    assert set(users["agent"].memberships.values_list("role", flat=True)) == {"agent"}
    # Every department has people to work its cases.
    for department in Department.objects.all():
        assert department.memberships.filter(role="agent").exists(), department.name
