"""The CSAT report: figures per channel, department and agent, scoped, pinned, and as CSV."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cases.csat import report
from cases.models import Membership
from tests import factories
from tests.csat.conftest import answer

REPORT = "/desk/reports/csat/"


@pytest.fixture
def world(channels, mailbox, agent, other_agent, other_department, surveyed):
    """Surveys of two channels and two agents in Social Care, and one of Billing:

    Support mailbox, agent:        5, 4, unanswered
    Brand on X (DM), other agent:  2
    Billing mailbox, billing agent: 3 (another department)
    """
    billing_box = factories.ChannelFactory(
        kind="email", name="Billing mailbox", slug="billing-mail", department=other_department,
        account_id="billing@brand.example.test",
    )  # fmt: skip
    factories.ServicePromiseFactory(channel=billing_box)
    biller = factories.UserFactory(username="biller", first_name="Bea", last_name="Biller")
    factories.MembershipFactory(user=biller, department=other_department, role=Membership.Role.AGENT)
    answer(surveyed(), 5, "Lovely")
    answer(surveyed(), 4)
    surveyed()
    answer(surveyed(channel=channels["x"], kind="dm", assignee=other_agent), 2, "Slow")
    answer(surveyed(channel=billing_box, assignee=biller), 3)
    return {"billing_box": billing_box, "biller": biller}


def figures(rows):
    return [(r.label, r.sent, r.answered, r.response_rate, r.average, r.satisfied, r.csat) for r in rows]


def period():
    now = timezone.now()
    return {"start": now - timedelta(days=1), "end": now + timedelta(minutes=1)}


def test_figures_per_channel_department_and_agent(world, department, other_department, agent, other_agent):
    every = report.csat_report(**period())
    assert figures(every["channel"]) == [
        ("Billing mailbox", 1, 1, 100.0, 3.0, 0, 0.0),
        ("Brand on X", 1, 1, 100.0, 2.0, 0, 0.0),
        ("Support mailbox", 3, 2, 66.7, 4.5, 2, 100.0),
    ]
    assert figures(every["department"]) == [
        ("Billing", 1, 1, 100.0, 3.0, 0, 0.0),
        ("Social Care", 4, 3, 75.0, 3.67, 2, 66.7),
    ]
    names = {u.pk: f"{u.first_name} {u.last_name}".strip() for u in (agent, other_agent)}
    assert figures(every["agent"]) == sorted(
        [
            ("Bea Biller", 1, 1, 100.0, 3.0, 0, 0.0),
            (names[agent.pk], 3, 2, 66.7, 4.5, 2, 100.0),
            (names[other_agent.pk], 1, 1, 100.0, 2.0, 0, 0.0),
        ],
        key=lambda row: row[0].casefold(),
    )
    assert figures([report.total(every["channel"])]) == [("All", 5, 4, 80.0, 3.5, 2, 50.0)]

    # scoped to one department, and to a period without surveys
    social = report.csat_report(**period(), department_ids={department.pk})
    assert [r.label for r in social["channel"]] == ["Brand on X", "Support mailbox"]
    assert [r.label for r in social["department"]] == ["Social Care"]
    later = timezone.now() + timedelta(days=2)
    assert report.csat_report(start=later, end=later + timedelta(days=1)) == {
        "channel": [],
        "department": [],
        "agent": [],
    }


def test_the_report_page_shows_a_supervisors_departments_in_pinned_queries(
    client, world, supervisor, surveyed, django_assert_num_queries
):
    client.force_login(supervisor)
    client.get(REPORT)  # the session's first request settles the session row

    # session, user, memberships, the filter's departments, one GROUP BY per grouping, the
    # latest comments, the header's departments
    with django_assert_num_queries(9):
        response = client.get(REPORT)

    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/desk/reports/csat/" aria-current="page">Satisfaction' in body
    assert 'id="csat-sent">4<' in body and 'id="csat-answered">3<' in body
    assert 'id="csat-score">66.7%<' in body
    assert "Support mailbox" in body and "Billing mailbox" not in body  # another department's
    assert "Lovely" in body and "Slow" in body  # the latest comments

    # more surveys cost no more queries
    for rating in (1, 2, 3, 4, 5):
        answer(surveyed(), rating, f"Comment {rating}")
    with django_assert_num_queries(9):
        more = client.get(REPORT)
    assert 'id="csat-sent">9<' in more.content.decode()


def test_the_report_is_for_supervisors_and_admins(client, world, agent):
    client.force_login(agent)
    assert client.get(REPORT).status_code == 403
    assert client.get(f"{REPORT}export.csv").status_code == 403


def test_the_report_filters_name_the_field_at_fault(client, supervisor, other_department):
    client.force_login(supervisor)

    backwards = client.get(REPORT, {"start": "2026-03-10", "end": "2026-03-01"})
    assert backwards.status_code == 400
    assert "To (inclusive): The end date is before the start date." in backwards.content.decode()

    elsewhere = client.get(REPORT, {"department": other_department.pk})
    assert elsewhere.status_code == 400
    assert "Department: Select a valid choice." in elsewhere.content.decode()


def test_the_csv_is_streamed_with_every_grouping_and_the_total(
    client, world, supervisor, agent, other_agent, django_assert_num_queries
):
    client.force_login(supervisor)
    client.get(REPORT)

    # session, user, memberships, the filter's departments, then one GROUP BY per grouping
    with django_assert_num_queries(7):
        response = client.get(f"{REPORT}export.csv")
        content = b"".join(response.streaming_content).decode()

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="csat-')
    lines = content.splitlines()
    agents = sorted(
        [
            f"Agent,{agent.first_name} {agent.last_name},3,2,66.7,4.5,2,100.0",
            f"Agent,{other_agent.first_name} {other_agent.last_name},1,1,100.0,2.0,0,0.0",
        ],
        key=lambda line: line.split(",")[1].casefold(),
    )
    assert lines == [
        "Grouping,Name,Sent,Answered,Response rate %,Average rating,Satisfied (4-5),CSAT %",
        "Channel,Brand on X,1,1,100.0,2.0,0,0.0",
        "Channel,Support mailbox,3,2,66.7,4.5,2,100.0",
        "Department,Social Care,4,3,75.0,3.67,2,66.7",
        *agents,
        "Total,All,4,3,75.0,3.67,2,66.7",
    ]
