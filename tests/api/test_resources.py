"""Canned replies, incidents and the promise report over the API."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from cases import services
from cases.models import CannedReply, Case, Incident, Message

from .conftest import session_client, token_client

# --- Canned replies -------------------------------------------------------------------------------


@pytest.fixture
def canned(world):
    return {
        "everyone": CannedReply.objects.create(title="Thanks", body="Thanks {customer_name}!"),
        "ours": CannedReply.objects.create(title="Router", body="Restart it", department=world.department),
        "billing": CannedReply.objects.create(
            title="Invoice", body="See {reference}", department=world.other_department
        ),
        "email": CannedReply.objects.create(title="Mail", body="Dear {customer_name}", channel_kind="email"),
    }


def _titles(client, **params) -> set[str]:
    response = client.get("/api/v1/canned-replies/", params)
    assert response.status_code == 200, response.content
    return {row["title"] for row in response.json()["results"]}


def test_agents_list_the_canned_replies_offered_to_their_departments(world, canned):
    assert _titles(token_client(world.write_key)) == {"Thanks", "Router", "Mail"}
    assert _titles(session_client(world.admin)) == {"Thanks", "Router", "Invoice", "Mail"}
    hidden = token_client(world.write_key).get(f"/api/v1/canned-replies/{canned['billing'].pk}/")
    assert hidden.status_code == 404


def test_canned_reply_filters(world, canned):
    admin = session_client(world.admin)
    assert _titles(admin, department_id="null") == {"Thanks", "Mail"}
    assert _titles(admin, department_id=world.other_department.pk) == {"Invoice"}
    assert _titles(admin, channel_kind="x") == {"Thanks", "Router", "Invoice"}
    assert _titles(admin, channel_kind="email") == {"Thanks", "Router", "Invoice", "Mail"}
    assert _titles(admin, q="restart") == {"Router"}
    CannedReply.objects.filter(pk=canned["ours"].pk).update(is_active=False)
    assert _titles(admin, is_active="false") == {"Router"}


def test_admins_manage_canned_replies(world):
    admin = session_client(world.admin)
    created = admin.post(
        "/api/v1/canned-replies/",
        {
            "title": "Hello",
            "body": "Hi {customer_name}, {agent_name} here.",
            "department_id": world.department.pk,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert (
        admin.patch(f"/api/v1/canned-replies/{pk}/", {"is_active": False}, format="json").json()["is_active"]
        is False
    )
    assert admin.delete(f"/api/v1/canned-replies/{pk}/").status_code == 204
    assert not CannedReply.objects.filter(pk=pk).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "Bad", "body": "Hi {name}"}, "body"),
        ({"title": "", "body": "Hi"}, "title"),
        ({"title": "Thanks", "body": "Again"}, "title"),
    ],
)
def test_a_bad_canned_reply_names_the_field(world, canned, body, field):
    response = session_client(world.admin).post("/api/v1/canned-replies/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field, error


def test_a_cases_canned_replies_come_filled_in(world, canned, django_assert_num_queries):
    client = token_client(world.write_key)
    path = f"/api/v1/cases/{world.case.pk}/canned-replies/"
    assert client.get(path).status_code == 200
    # token + user, memberships, the case, its canned replies
    with django_assert_num_queries(4):
        rows = client.get(path).json()["results"]
    assert [row["title"] for row in rows] == ["Mail", "Router", "Thanks"]
    assert rows[2]["text"] == f"Thanks {world.customer.name}!"
    for i in range(5):
        CannedReply.objects.create(title=f"More {i}", body="{reference}", department=world.department)
    with django_assert_num_queries(4):
        rows = client.get(path).json()["results"]
    assert {row["text"] for row in rows if row["title"].startswith("More")} == {world.case.reference}
    assert session_client(world.agent_b).get(path).status_code == 404


# --- Incidents ------------------------------------------------------------------------------------


def _incident(channel, *cases, status="open"):
    now = timezone.now()
    incident = Incident.objects.create(
        channel=channel, title="Outage", status=status, window_start=now - timedelta(minutes=5),
        window_end=now, mention_count=40, baseline=2.5,
    )  # fmt: skip
    incident.cases.add(*cases)
    return incident


def test_incidents_are_listed_for_the_departments_of_their_channel(world):
    ours = _incident(world.channel, world.case)
    theirs = _incident(world.other_channel, world.other_case)
    rows = token_client(world.write_key).get("/api/v1/incidents/").json()["results"]
    assert [(row["id"], row["case_ids"], row["channel_id"]) for row in rows] == [
        (ours.pk, [world.case.pk], world.channel.pk)
    ]
    admin = session_client(world.admin)
    assert [row["id"] for row in admin.get("/api/v1/incidents/").json()["results"]] == [theirs.pk, ours.pk]
    assert [
        row["id"]
        for row in admin.get("/api/v1/incidents/", {"case_id": world.other_case.pk}).json()["results"]
    ] == [theirs.pk]
    assert admin.get("/api/v1/incidents/", {"status": "closed"}).json()["results"] == []
    assert len(admin.get("/api/v1/incidents/", {"department_id": world.department.pk}).json()["results"]) == 1


def test_an_incident_reply_is_queued_once_per_customer(world):
    extra = services.case_open(customer=world.customer, channel=world.channel)
    services.message_add(
        case=extra, direction="in", kind="post", text="Down here too", channel=world.channel,
        identity=world.identity, external_id="t-9", is_public=True,
    )  # fmt: skip
    incident = _incident(world.channel, world.case, extra)
    response = token_client(world.write_key).post(
        f"/api/v1/incidents/{incident.pk}/reply/", {"text": "We know, fixing it."}, format="json"
    )
    assert response.status_code == 200, response.content
    replies = Message.objects.filter(direction="out", text="We know, fixing it.")
    # one customer, two open cases: answered once, on the case they wrote on last
    assert list(replies.values_list("case_id", flat=True)) == [extra.pk]
    blank = token_client(world.write_key).post(
        f"/api/v1/incidents/{incident.pk}/reply/", {"text": "  "}, format="json"
    )
    assert blank.status_code == 400 and blank.json()["error"]["field"] == "text"


def test_supervisors_close_incidents(world):
    incident = _incident(world.channel, world.case)
    response = session_client(world.supervisor).post(f"/api/v1/incidents/{incident.pk}/close/", format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "closed" and response.json()["closed_at"] is not None


# --- Reports --------------------------------------------------------------------------------------


@pytest.fixture
def answered(world):
    """The world's Social Care case answered ten minutes after the customer wrote."""
    first_in = world.case.first_inbound_at
    services.message_add(
        case=world.case, direction="out", kind="post", text="On it", channel=world.channel,
        author=world.agent, sent_at=first_in + timedelta(minutes=10),
    )  # fmt: skip
    Case.objects.filter(pk=world.other_case.pk).update(sla_state=Case.SlaState.AT_RISK)
    return world.case


def test_the_promise_report_as_json(world, answered):
    response = session_client(world.admin).get("/api/v1/reports/promises/", {"group_by": "channel"})
    assert response.status_code == 200, response.content
    rows = {row["label"]: row for row in response.json()["rows"]}
    assert rows["Brand on X"]["responded"] == 1 and rows["Brand on X"]["kept"] == 1
    assert rows["Brand on X"]["median_first_response_seconds"] == 600.0
    assert rows["Billing mail"]["at_risk_now"] == 1 and rows["Billing mail"]["responded"] == 0


def test_a_supervisor_reports_on_the_departments_they_supervise(world, answered):
    response = session_client(world.supervisor).get("/api/v1/reports/promises/", {"group_by": "department"})
    assert [row["label"] for row in response.json()["rows"]] == [world.department.name]


def test_the_promise_report_as_csv(world, answered):
    response = session_client(world.admin).get("/api/v1/reports/promises/", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="promises-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {row["label"]: row["responded"] for row in rows} == {"Billing mail": "0", "Brand on X": "1"}
    assert list(rows[0])[:3] == ["label", "responded", "kept"]


def test_a_csv_report_defuses_cells_a_spreadsheet_would_run(world, answered):
    world.channel.name = "=HYPERLINK('https://evil.test')"
    world.channel.save()
    response = session_client(world.admin).get(
        "/api/v1/reports/promises/", {"format": "csv", "group_by": "channel"}
    )
    labels = [row["label"] for row in csv.DictReader(io.StringIO(response.content.decode()))]
    assert "'=HYPERLINK('https://evil.test')" in labels


def test_an_empty_csv_report_still_has_its_header(world):
    response = session_client(world.admin).get(
        "/api/v1/reports/promises/", {"format": "csv", "start": "2020-01-01", "end": "2020-01-02"}
    )
    assert response.content.decode().startswith("label,responded,kept,broken,kept_share")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "end"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "end"),
        ({"start": "soon"}, "start"),
        ({"group_by": "agent"}, "group_by"),
    ],
)
def test_a_bad_report_period_is_a_json_400_naming_the_field(world, params, field):
    response = session_client(world.admin).get("/api/v1/reports/promises/", {**params, "format": "csv"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["field"] == field


def test_the_report_costs_the_same_queries_for_any_number_of_cases(
    world, answered, django_assert_num_queries
):
    from .factories import open_cases

    client = token_client(world.write_key)
    world.agent.memberships.update(role="supervisor")
    assert client.get("/api/v1/reports/promises/").status_code == 200
    # token + user, memberships, then the report's three aggregate queries
    with django_assert_num_queries(5):
        few = client.get("/api/v1/reports/promises/").json()
    for case in open_cases(count=20, channel=world.other_channel, department=world.department):
        services.message_add(case=case, direction="out", kind="email", text="Hi", channel=world.other_channel)
    with django_assert_num_queries(5):
        many = client.get("/api/v1/reports/promises/").json()
    assert sum(r["responded"] for r in many["rows"]) == sum(r["responded"] for r in few["rows"]) + 20
