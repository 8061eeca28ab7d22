"""Urgent signals: a monitoring alert that concerns a surge makes it urgent and pages whoever is on
call, once, at any hour; a flood of known customers is a signal of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from cases import triage, urgent
from cases.models import (
    BusinessCalendar,
    Incident,
    KnownCustomerRule,
    Membership,
    MonitoringAlert,
    OnCallShift,
    Page,
    TriageSettings,
)
from connectors.models import WebhookDelivery, WebhookSubscription
from tests import factories
from tests.desk.conftest import open_case
from tests.signals.conftest import SECRET, alertmanager_body, post_alert

# Sunday 26 December 2027: Boxing Day, a public holiday in the UK, outside any office hours.
HOLIDAY_SUNDAY = datetime(2027, 12, 26, 10, 30, tzinfo=UTC)


@pytest.fixture
def on_call_agent(department, agent):
    OnCallShift.objects.create(
        department=department,
        user=agent,
        starts_at=HOLIDAY_SUNDAY - timedelta(hours=12),
        ends_at=HOLIDAY_SUNDAY + timedelta(hours=12),
    )
    return agent


@pytest.fixture
def office_hours_channel(channel):
    """The X channel's promise runs on weekday office hours with UK holidays: the page goes anyway."""
    calendar = BusinessCalendar.objects.create(
        name="Office",
        time_zone="Europe/London",
        weekly_hours={str(d): [["09:00", "17:00"]] for d in range(1, 6)},
        holiday_country="GB",
    )
    channel.promise.calendar = calendar
    channel.promise.save()
    return channel


def surge_on(channel, texts):
    TriageSettings.objects.create(surge_min_mentions=len(texts))
    return [open_case(channel=channel, text=text, wrote_minutes_ago=n + 1) for n, text in enumerate(texts)]


def test_an_alert_overlapping_a_surge_on_a_holiday_sunday_pages_the_on_call_agent_once(
    client, office_hours_channel, on_call_agent, alert_source, django_capture_on_commit_callbacks
):
    WebhookSubscription.objects.create(
        name="Pager", url="https://pager.example.test/hook", event_types=["oncall.paged"], signing_salt="s"
    )
    with time_machine.travel(HOLIDAY_SUNDAY, tick=False):
        # given: the alert fired at 10:00, before customers started writing
        with django_capture_on_commit_callbacks(execute=True):
            post_alert(client, alert_source, alertmanager_body(), HTTP_AUTHORIZATION=f"Bearer {SECRET}")
        surge_on(office_hours_channel, ["Is the app down?", "cannot log in", "Everything broken"])

        # when: the surge sweep runs, and runs again a minute later; the alert is reported again
        with django_capture_on_commit_callbacks(execute=True):
            (incident,) = triage.surge_detect()
        with django_capture_on_commit_callbacks(execute=True):
            triage.surge_detect()
            post_alert(client, alert_source, alertmanager_body(), HTTP_AUTHORIZATION=f"Bearer {SECRET}")

    # then
    incident.refresh_from_db()
    assert incident.is_urgent
    assert "Login API down" in incident.urgent_reason
    assert list(incident.alerts.all()) == [MonitoringAlert.objects.get()]
    (page,) = Page.objects.all()
    assert (page.user, page.incident, page.acknowledged_at) == (on_call_agent, incident, None)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [on_call_agent.email]
    assert "/desk/pages/" in message.body
    assert WebhookDelivery.objects.filter(event_type="oncall.paged").count() == 1


def test_the_acknowledge_link_in_the_mail_acknowledges_the_page(
    client, channel, on_call_agent, alert_source, django_capture_on_commit_callbacks
):
    with time_machine.travel(HOLIDAY_SUNDAY, tick=False), django_capture_on_commit_callbacks(execute=True):
        post_alert(client, alert_source, alertmanager_body(), HTTP_AUTHORIZATION=f"Bearer {SECRET}")
        surge_on(channel, ["down", "down again", "still down"])
        triage.surge_detect()
    link = next(line for line in mail.outbox[0].body.splitlines() if "/desk/pages/" in line)
    path = link[link.index("/desk/pages/") :]

    shown = client.get(path)
    acknowledged = client.post(path)
    forged = client.get(path[:-3] + "xyz/")

    assert shown.status_code == 200
    assert "Acknowledge" in shown.content.decode()
    assert acknowledged.status_code == 200
    page = Page.objects.get()
    assert page.acknowledged_by == on_call_agent
    assert page.acknowledged_at is not None
    assert forged.status_code == 404


def test_an_alert_sharing_words_with_the_mentions_links_a_later_incident(channel, alert_source, agent):
    from connectors.alerts import AlertValue

    now = datetime.now(UTC)
    urgent.alerts_apply(
        source=alert_source,
        alerts=[
            AlertValue(
                fingerprint="router",
                status="firing",
                title="Router firmware rollout failing",
                # Its last report said it would end yesterday: not overlapping in time.
                starts_at=now - timedelta(days=2),
                ends_at=now - timedelta(days=1),
            )
        ],
    )
    surge_on(channel, ["my router keeps rebooting", "router dead", "no internet"])

    (incident,) = triage.surge_detect()

    incident.refresh_from_db()
    assert incident.is_urgent
    assert "router" in incident.urgent_reason
    assert not Page.objects.exists()  # nobody is on call


def test_an_alert_neither_overlapping_nor_sharing_words_leaves_the_incident_alone(channel, alert_source):
    from connectors.alerts import AlertValue

    now = datetime.now(UTC)
    urgent.alerts_apply(
        source=alert_source,
        alerts=[
            AlertValue(
                fingerprint="old",
                status="firing",
                title="Disk nearly full",
                starts_at=now - timedelta(days=2),
                ends_at=now - timedelta(days=1),
            )
        ],
    )
    surge_on(channel, ["my router keeps rebooting", "router dead", "no internet"])

    (incident,) = triage.surge_detect()

    incident.refresh_from_db()
    assert not incident.is_urgent
    assert not incident.alerts.exists()


def test_words_skip_short_and_common_ones():
    assert urgent.words("Why is THIS login page down again? 502 errors") == {
        "login",
        "page",
        "down",
        "errors",
    }


def vip_message(channel, text, minutes_ago):
    customer = factories.CustomerFactory(tier="vip")
    return open_case(channel=channel, customer=customer, text=text, wrote_minutes_ago=minutes_ago)


def test_three_vip_messages_in_ten_minutes_open_an_urgent_known_customers_incident(
    channel, department, supervisor, django_capture_on_commit_callbacks
):
    KnownCustomerRule.objects.create(department=department)
    now = datetime.now(UTC)
    OnCallShift.objects.create(
        department=department,
        user=supervisor,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    cases = [vip_message(channel, f"Help {n}", n + 1) for n in range(3)]
    verified = factories.IdentityFactory(kind="x", platform_id="v-1", verified=True)
    open_case(
        channel=channel, customer=verified.customer, identity=verified, text="me too", wrote_minutes_ago=2
    )
    open_case(channel=channel, text="ordinary customer", wrote_minutes_ago=2)

    with django_capture_on_commit_callbacks(execute=True):
        (incident,) = urgent.known_customers_sweep()
    with django_capture_on_commit_callbacks(execute=True):
        assert urgent.known_customers_sweep() == []  # already urgent: nothing more

    assert incident.kind == Incident.Kind.KNOWN_CUSTOMERS
    assert incident.is_urgent
    assert "4 messages from known customers" in incident.urgent_reason
    assert set(incident.cases.values_list("pk", flat=True)) >= {c.pk for c in cases}
    assert incident.cases.count() == 4
    assert Page.objects.get().user == supervisor
    assert len(mail.outbox) == 1


def test_known_customers_below_the_count_or_a_disabled_rule_raise_nothing(channel, department):
    rule = KnownCustomerRule.objects.create(department=department, count=3)
    vip_message(channel, "one", 1)
    vip_message(channel, "two", 2)
    vip_message(channel, "too old", 15)

    assert urgent.known_customers_sweep() == []

    vip_message(channel, "three", 3)
    rule.enabled = False
    rule.save()
    assert urgent.known_customers_sweep() == []


def test_a_flood_on_a_channel_with_an_open_surge_marks_that_incident_urgent(channel, department):
    KnownCustomerRule.objects.create(department=department)
    surge = Incident.objects.create(
        channel=channel,
        window_start=datetime.now(UTC),
        window_end=datetime.now(UTC),
        mention_count=30,
        baseline=1,
    )
    for n in range(3):
        vip_message(channel, f"vip {n}", n + 1)

    (incident,) = urgent.known_customers_sweep()

    assert incident.pk == surge.pk
    assert Incident.objects.filter(channel=channel, status="open").count() == 1
    surge.refresh_from_db()
    assert surge.is_urgent


def test_on_call_now_is_the_covering_shift_else_nobody(department, agent, other_agent):
    now = datetime.now(UTC)
    OnCallShift.objects.create(
        department=department,
        user=agent,
        starts_at=now - timedelta(hours=2),
        ends_at=now - timedelta(hours=1),
    )
    assert urgent.on_call_now(department_id=department.pk) is None
    OnCallShift.objects.create(
        department=department,
        user=other_agent,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
    )
    assert urgent.on_call_now(department_id=department.pk) == other_agent
    assert Membership.objects.filter(user=other_agent).exists()
