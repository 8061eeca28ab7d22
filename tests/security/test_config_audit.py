"""Every change to configuration is on record: who, when, what it was before and after.

Changes arrive three ways: the admin pages (session), the API (a personal token, which
authenticates inside the view), and the system itself (seeding, sweeps: no actor).
"""

from __future__ import annotations

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from rest_framework.test import APIClient

from cases.models import Membership, ServicePromise
from connectors import api_tokens
from connectors.models import ApiToken, WebhookSubscription
from tests import factories


def entries_for(obj) -> list[LogEntry]:
    content_type = ContentType.objects.get_for_model(type(obj))
    return list(LogEntry.objects.filter(content_type=content_type, object_pk=str(obj.pk)).order_by("id"))


def make_admin():
    return factories.UserFactory(username="cfg-admin", email="cfg-admin@example.test", is_staff=True)


def test_a_promise_changed_over_the_api_names_the_token_owner_and_both_values(channel):
    promise = ServicePromise.objects.get(channel=channel)
    promise.first_response_minutes = 60
    promise.save()
    admin = make_admin()
    _, key = api_tokens.api_token_create(user=admin, name="Config bot")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    response = client.patch(
        f"/api/v1/service-promises/{promise.pk}/", {"first_response_minutes": 45}, format="json"
    )

    assert response.status_code == 200, response.content
    change = entries_for(promise)[-1]
    assert change.action == LogEntry.Action.UPDATE
    assert change.actor == admin
    assert change.changes["first_response_minutes"] == [60, 45]
    assert set(change.changes) == {"first_response_minutes"}  # no timestamps, nothing unchanged
    assert change.timestamp is not None


def test_a_role_changed_in_the_admin_pages_is_recorded_with_the_admin(client, department, agent):
    superuser = factories.UserFactory(
        username="root", email="root@example.test", is_staff=True, is_superuser=True
    )
    membership = Membership.objects.get(user=agent, department=department)
    client.force_login(superuser)

    response = client.post(
        reverse("admin:cases_membership_change", args=[membership.pk]),
        {"user": agent.pk, "department": department.pk, "role": Membership.Role.SUPERVISOR},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    change = entries_for(membership)[-1]
    assert change.actor == superuser
    assert change.changes["role"] == [Membership.Role.AGENT, Membership.Role.SUPERVISOR]


def test_staff_flag_is_audited_but_a_login_is_not(agent):
    before = len(entries_for(agent))  # the account's creation
    agent.last_login = agent.date_joined
    agent.save()
    assert len(entries_for(agent)) == before

    agent.is_staff = True
    agent.save()

    [change] = entries_for(agent)[before:]
    assert change.changes == {"is_staff": [False, True]}
    assert change.actor is None  # no request: a change made by the system


def test_secrets_and_delivery_noise_stay_out_of_the_trail(channel):
    admin = make_admin()
    token, _ = api_tokens.api_token_create(user=admin, name="BI", scope=ApiToken.Scope.READ)
    (created,) = entries_for(token)
    assert created.action == LogEntry.Action.CREATE
    assert "key_hash" not in created.changes and "name" in created.changes

    subscription = WebhookSubscription.objects.create(
        name="Orders",
        url="https://hooks.example.test/caseline",
        event_types=["case.created"],
        signing_salt="s" * 32,
    )
    subscription.failure_count = 3
    subscription.save()
    (only,) = entries_for(subscription)
    assert only.action == LogEntry.Action.CREATE and "signing_salt" not in only.changes

    subscription.is_active = False
    subscription.save()
    assert entries_for(subscription)[-1].changes["is_active"] == [True, False]


def test_deleting_configuration_keeps_what_it_was(channel):
    promise = ServicePromise.objects.get(channel=channel)
    promise.resolution_minutes = 480
    promise.save()
    pk = promise.pk
    promise.delete()

    deleted = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(ServicePromise),
        object_pk=str(pk),
        action=LogEntry.Action.DELETE,
    ).get()
    assert deleted.changes["resolution_minutes"][0] == 480


def test_admins_read_the_trail_in_the_admin_pages(client, channel):
    superuser = factories.UserFactory(
        username="root", email="root@example.test", is_staff=True, is_superuser=True
    )
    promise = ServicePromise.objects.get(channel=channel)
    promise.next_response_minutes = 17
    promise.save()
    client.force_login(superuser)

    page = client.get(reverse("admin:auditlog_logentry_changelist"), {"q": "promise"})

    assert page.status_code == 200
    assert (
        "next_response_minutes" in page.content.decode() or "Next response minutes" in page.content.decode()
    )
