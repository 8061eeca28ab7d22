"""The on-call rota screen (supervisors add and remove shifts; agents may not), and the incident
page's Alerts section, Urgent badge, pages and acknowledge button."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from cases import selectors, urgent
from cases.models import Incident, MonitoringAlert, OnCallShift, Page
from tests import factories
from tests.desk.conftest import open_case

# session, user, memberships, departments kept, their members, the shifts, the header's departments
ROTA_QUERIES = 7
# the incident page's (tests/desk/test_incident_screens.py) with alerts and pages in it
INCIDENT_PAGE_QUERIES = 9


def when(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize("shifts", [1, 5])
def test_the_rota_lists_shifts_in_fixed_queries(
    client, supervisor, agent, department, shifts, django_assert_num_queries
):
    now = datetime.now(UTC)
    for n in range(shifts):
        OnCallShift.objects.create(
            department=department,
            user=agent,
            starts_at=now + timedelta(hours=n - 1),
            ends_at=now + timedelta(hours=n + 1),
        )
    client.force_login(supervisor)

    with django_assert_num_queries(ROTA_QUERIES):
        response = client.get(reverse("desk:oncall"))

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('id="shift-') == shifts
    now_table = body[body.index('id="oncall-now-table"') :]
    assert selectors.user_name(agent) in now_table[: now_table.index("</table>")]


def test_a_supervisor_adds_and_removes_a_shift(client, supervisor, agent, department):
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:oncall"),
        {"department": department.pk, "user": agent.pk, "starts_at": when(-1), "ends_at": when(8)},
    )

    assert response.status_code == 302
    shift = OnCallShift.objects.get()
    assert (shift.user, shift.department, shift.created_by) == (agent, department, supervisor)
    assert urgent.on_call_now(department_id=department.pk) == agent

    assert client.post(reverse("desk:oncall_remove", args=[shift.pk])).status_code == 302
    assert not OnCallShift.objects.exists()


def test_a_shift_ending_before_it_starts_is_refused_naming_the_field(client, supervisor, agent, department):
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:oncall"),
        {"department": department.pk, "user": agent.pk, "starts_at": when(5), "ends_at": when(1)},
    )

    assert response.status_code == 400
    assert "Ends: The shift must end after it starts." in response.content.decode()
    assert not OnCallShift.objects.exists()


def test_someone_outside_the_department_cannot_be_put_on_call(
    client, supervisor, department, other_department
):
    outsider = factories.UserFactory(username="outsider")
    factories.MembershipFactory(user=outsider, department=other_department)
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:oncall"),
        {"department": department.pk, "user": outsider.pk, "starts_at": when(0), "ends_at": when(2)},
    )

    assert response.status_code == 400
    assert "Person on call:" in response.content.decode()
    assert not OnCallShift.objects.exists()


def test_agents_do_not_keep_the_rota(client, agent, department, supervisor):
    shift = OnCallShift.objects.create(
        department=department,
        user=supervisor,
        starts_at=datetime.now(UTC),
        ends_at=datetime.now(UTC) + timedelta(hours=1),
    )
    client.force_login(agent)

    assert client.get(reverse("desk:oncall")).status_code == 403
    assert client.post(reverse("desk:oncall_remove", args=[shift.pk])).status_code == 403
    assert OnCallShift.objects.exists()


@pytest.fixture
def urgent_incident(channel, agent, alert_source):
    now = datetime.now(UTC)
    OnCallShift.objects.create(
        department=channel.department,
        user=agent,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    incident = Incident.objects.create(
        channel=channel, title="30 messages", window_start=now, window_end=now, mention_count=30, baseline=1
    )
    incident.cases.add(open_case(channel=channel, text="login broken"))
    alert = MonitoringAlert.objects.create(
        source=alert_source, fingerprint="f1", status="firing", title="Login API down", starts_at=now
    )
    incident.alerts.add(alert)
    urgent.incident_mark_urgent(incident=incident, reason="Alert “Login API down” overlaps the incident")
    return incident


def test_the_incident_page_shows_alerts_the_urgent_badge_and_pages(
    client, supervisor, urgent_incident, django_assert_num_queries
):
    client.force_login(supervisor)

    with django_assert_num_queries(INCIDENT_PAGE_QUERIES):
        response = client.get(reverse("desk:incident", args=[urgent_incident.pk]))

    body = response.content.decode()
    assert 'id="incident-urgent"' in body
    alerts = body[body.index('id="incident-alerts"') :]
    assert "Login API down" in alerts
    assert 'id="incident-pages"' in alerts
    assert "not acknowledged" in alerts
    assert reverse("desk:incident_acknowledge", args=[urgent_incident.pk]) in alerts


def test_the_acknowledge_button_acknowledges_once(client, supervisor, urgent_incident):
    client.force_login(supervisor)

    first = client.post(reverse("desk:incident_acknowledge", args=[urgent_incident.pk]))
    acknowledged_at = Page.objects.get().acknowledged_at
    client.post(reverse("desk:incident_acknowledge", args=[urgent_incident.pk]))

    assert first.status_code == 302
    page = Page.objects.get()
    assert page.acknowledged_by == supervisor
    assert page.acknowledged_at == acknowledged_at


def test_an_agent_not_paged_cannot_acknowledge(client, other_agent, urgent_incident):
    client.force_login(other_agent)

    assert client.post(reverse("desk:incident_acknowledge", args=[urgent_incident.pk])).status_code == 403
    assert Page.objects.get().acknowledged_at is None


def test_the_incident_list_marks_urgent_incidents(client, agent, urgent_incident):
    client.force_login(agent)

    body = client.get(reverse("desk:incidents")).content.decode()

    row = body[body.index(f'id="incident-{urgent_incident.pk}"') :]
    assert "Urgent" in row[: row.index("</tr>")]


@pytest.mark.parametrize(
    "model",
    ["alertsource", "monitoringalert", "knowncustomerrule", "oncallshift", "page", "channelhealthalert"],
)
def test_admin_pages_of_the_signal_models_open(admin_client, urgent_incident, model):
    assert admin_client.get(reverse(f"admin:cases_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:cases_{model}_add")).status_code == 200
