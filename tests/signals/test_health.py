"""Connector health: a channel learns its inbound rhythm; the sweep raises an alert when it goes
quiet for longer than usual within working hours, refuses signatures again and again, or fails
to send, and clears it when traffic is normal again. The health screens and the board show it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from cases import health, services
from cases.models import BusinessCalendar, ChannelHealthAlert
from tests import factories

# A Wednesday.
START = datetime(2027, 3, 3, 8, 0, tzinfo=UTC)
# session, user, memberships, the channels, the open health alerts, the header's departments
HEALTH_LIST_QUERIES = 6
# session, user, memberships, the channel, its last inbound, its last outbound, the last hour's
# sends (one aggregate), failed events, its alerts, the header's departments
CHANNEL_HEALTH_QUERIES = 10


def inbound(case, channel, at, text="hello"):
    return services.message_add(
        case=case, direction="in", kind="post", text=text, channel=channel, identity=None, sent_at=at
    )


@pytest.fixture
def steady_case(channel, customer):
    """A case on the X channel (24/7) with a customer message every 10 minutes from 08:00 to 12:00."""
    case = services.case_open(customer=customer, channel=channel, subject="steady")
    for n in range(25):
        inbound(case, channel, START + timedelta(minutes=10 * n))
    return case


def test_the_usual_gap_is_the_95th_percentile_of_gaps(channel, steady_case):
    inbound(steady_case, channel, START + timedelta(hours=4, minutes=40))  # one 40-minute gap

    with time_machine.travel(START + timedelta(hours=5), tick=False):
        rhythm = health.inbound_rhythms()[channel.pk]

    assert rhythm.messages == 26
    assert rhythm.last_inbound == START + timedelta(hours=4, minutes=40)
    # 24 gaps of 10 minutes and one of 40: one outlier does not move the 95th percentile.
    assert rhythm.usual_gap == timedelta(minutes=10)

    for n in range(1, 4):  # three more 40-minute gaps: now it does
        inbound(steady_case, channel, START + timedelta(hours=4, minutes=40 + 40 * n))
    with time_machine.travel(START + timedelta(hours=8), tick=False):
        assert health.inbound_rhythms()[channel.pk].usual_gap == timedelta(minutes=40)


def test_a_quiet_channel_raises_and_clears_its_health_alert(channel, steady_case):
    last = START + timedelta(hours=4)
    # The usual gap is 10 minutes; three times that is less than the 2-hour floor.
    with time_machine.travel(last + timedelta(hours=1, minutes=50), tick=False):
        assert health.channel_health_sweep().opened == []
    with time_machine.travel(last + timedelta(hours=2, minutes=10), tick=False):
        swept = health.channel_health_sweep()
        again = health.channel_health_sweep()

    (alert,) = swept.opened
    assert (alert.channel, alert.kind, alert.status) == (channel, "silent", "open")
    assert again.opened == [] and again.cleared == 0
    assert ChannelHealthAlert.objects.filter(status="open").count() == 1

    with time_machine.travel(last + timedelta(hours=3), tick=False):
        inbound(steady_case, channel, last + timedelta(hours=2, minutes=55), text="back again")
        cleared = health.channel_health_sweep()

    assert cleared.cleared == 1
    alert.refresh_from_db()
    assert alert.status == "cleared"
    assert alert.cleared_at == last + timedelta(hours=3)


def test_silence_outside_business_hours_does_not_count(channel, steady_case, settings):
    calendar = BusinessCalendar.objects.create(
        name="Weekdays", time_zone="UTC", weekly_hours={str(d): [["08:00", "12:00"]] for d in range(1, 6)}
    )
    channel.promise.calendar = calendar
    channel.promise.save()

    # 12:00 Wednesday to 09:30 Thursday: 1.5 hours of working time, under the 2-hour floor.
    with time_machine.travel(START + timedelta(days=1, hours=1, minutes=30), tick=False):
        assert health.channel_health_sweep().opened == []
    # 10:30 Thursday: 2.5 hours of working time.
    with time_machine.travel(START + timedelta(days=1, hours=2, minutes=30), tick=False):
        (alert,) = health.channel_health_sweep().opened
    assert alert.kind == "silent"


def test_repeated_forged_signatures_raise_an_alert(client, channel, settings, monkeypatch):
    monkeypatch.setenv("X_SECRET_FOR_HEALTH", "consumer-secret")
    channel.secret_env = {"consumer_secret": "X_SECRET_FOR_HEALTH"}
    channel.save()
    settings.CHANNEL_HEALTH_SIGNATURE_FAILURES = 3
    inbound(
        services.case_open(customer=factories.CustomerFactory(), channel=channel), channel, datetime.now(UTC)
    )

    for _ in range(3):
        response = client.post(
            f"/webhooks/{channel.slug}/",
            data=b'{"for_user_id": "777"}',
            content_type="application/json",
            HTTP_X_TWITTER_WEBHOOKS_SIGNATURE="sha256=forged",
        )
        assert response.status_code == 403

    (alert,) = health.channel_health_sweep().opened
    assert alert.kind == "signatures"
    assert "3 refused" in alert.detail


def test_failing_sends_raise_an_alert(channel, case, agent):
    for n in range(4):
        services.message_add(
            case=case,
            direction="out",
            kind="post",
            text=f"reply {n}",
            channel=channel,
            author=agent,
            delivery_state="failed" if n else "sent",
        )

    kinds = {a.kind for a in health.channel_health_sweep().opened}

    assert "outbound" in kinds


@pytest.fixture
def open_alert(channel):
    return ChannelHealthAlert.objects.create(
        channel=channel, kind="silent", detail="No inbound since 08:00", opened_at=datetime.now(UTC)
    )


@pytest.mark.parametrize("extra_channels", [0, 4])
def test_the_health_list_costs_the_same_for_more_channels(
    client, supervisor, channel, department, open_alert, extra_channels, django_assert_num_queries
):
    for n in range(extra_channels):
        other = factories.ChannelFactory(
            kind="email", name=f"Mailbox {n}", slug=f"mail-{n}", department=department
        )
        ChannelHealthAlert.objects.create(channel=other, kind="outbound", opened_at=datetime.now(UTC))
    client.force_login(supervisor)

    with django_assert_num_queries(HEALTH_LIST_QUERIES):
        response = client.get(reverse("desk:health"))

    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="health-alert-{open_alert.pk}"' in body
    assert "No inbound since 08:00" in body


def test_the_channel_health_page(client, supervisor, channel, case, open_alert, django_assert_num_queries):
    client.force_login(supervisor)

    with django_assert_num_queries(CHANNEL_HEALTH_QUERIES):
        response = client.get(reverse("desk:channel_health", args=[channel.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="last-inbound"' in body
    assert f'id="health-alert-{open_alert.pk}"' in body


def test_agents_do_not_see_channel_health_and_other_departments_channels_are_404(
    client, agent, supervisor, other_department
):
    elsewhere = factories.ChannelFactory(
        kind="email", name="Billing", slug="billing-x", department=other_department
    )
    client.force_login(agent)
    assert client.get(reverse("desk:health")).status_code == 403
    client.force_login(supervisor)
    assert client.get(reverse("desk:channel_health", args=[elsewhere.pk])).status_code == 404


def test_the_board_shows_open_health_alerts(client, supervisor, open_alert):
    client.force_login(supervisor)

    body = client.get(reverse("desk:board")).content.decode()

    assert f'id="health-alert-{open_alert.pk}"' in body
