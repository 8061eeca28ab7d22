"""The customer page (profile, identities with provenance, every case) and the supervisor board
(per department and agent, bulk reassignment with a reason)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from cases import services, sla
from cases.models import Case, CaseEvent, Membership
from tests import factories
from tests.desk.conftest import crossed_case, minutes_ago, open_case

# session, user, customer, memberships, "may see one of their cases?", cases, merges in force,
# identities, open suggestions, departments (the top bar)
CUSTOMER_QUERIES = 10
# session, user, memberships, departments, newest event, the open work per department and agent
# (one aggregate), members, the picked cases (page ids + rows), reassignment targets (members),
# open channel health alerts
BOARD_QUERIES = 10


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


# --- Customer page ----------------------------------------------------------------------------------


def test_customer_page_shows_identities_with_provenance_and_every_visible_case(
    client, agent, channels, billing_channel
):
    case, _ = crossed_case(channels, agent)
    older = services.case_open(customer=case.customer, channel=channels["email"], subject="Billing question")
    services.case_set_status(case=older, status="closed", actor=agent)
    hidden = services.case_open(customer=case.customer, channel=billing_channel, subject="Secret matter")
    linker = factories.UserFactory(username="linker", first_name="Lee", last_name="Linker")
    case.customer.identities.filter(kind="email").update(linked_by=linker)
    client.force_login(agent)

    response = client.get(reverse("desk:customer", args=[case.customer_id]))

    body = text_of(response)
    assert response.status_code == 200
    assert "Sam Porter" in body and "VIP" in body
    assert "@samp" in body and "12,840 followers" in body
    assert (
        "Verified" in body
        and "Linked by an agent" in body
        and "by Lee Linker" in body
        and "Suggested" in body
    )
    assert case.reference in body and older.reference in body and "Closed" in body
    assert hidden.reference not in body and "Secret matter" not in body
    assert "2 shown · 1 open" in body


def test_customer_of_another_department_is_404(client, outsider, channel):
    case = open_case(channel=channel)
    client.force_login(outsider)

    assert client.get(reverse("desk:customer", args=[case.customer_id])).status_code == 404
    assert client.get(reverse("desk:customer", args=[999999])).status_code == 404


@pytest.mark.parametrize("count", [2, 20])
def test_customer_page_query_count_does_not_grow(client, agent, channels, django_assert_num_queries, count):
    customer = factories.CustomerFactory(name="Often Writes")
    for n in range(count):
        open_case(channel=channels["x" if n % 2 else "email"], customer=customer, subject=f"Case {n}")
        factories.IdentityFactory(customer=customer, kind="facebook", platform_id=f"fb{n}", linked_by=agent)
    client.force_login(agent)

    with django_assert_num_queries(CUSTOMER_QUERIES):
        response = client.get(reverse("desk:customer", args=[customer.pk]))

    assert len(re.findall(r'<tr data-case="', response.content.decode())) == count


# --- Board ----------------------------------------------------------------------------------------------


@pytest.fixture
def board_world(department, other_department, channel, billing_channel, agent, other_agent, supervisor):
    """Social Care: two agents' cases, one unassigned, one breached; Billing: one case."""
    mine = [open_case(channel=channel, assignee=agent, wrote_minutes_ago=m) for m in (5, 10)]
    theirs = open_case(channel=channel, assignee=other_agent, wrote_minutes_ago=20)
    free = open_case(channel=channel, wrote_minutes_ago=30)
    late = open_case(channel=channel, wrote_minutes_ago=90)
    sla.sla_sweep()
    billing = open_case(channel=billing_channel)
    return {"mine": mine, "theirs": theirs, "free": free, "late": late, "billing": billing}


def test_board_is_for_supervisors(client, agent, supervisor, board_world):
    client.force_login(agent)
    assert client.get(reverse("desk:board")).status_code == 403
    assert "Board</a>" not in client.get(reverse("desk:queue")).content.decode()
    client.force_login(supervisor)
    assert "Board</a>" in client.get(reverse("desk:queue")).content.decode()


def test_board_figures_per_department_and_agent(client, supervisor, agent, other_agent, board_world):
    client.force_login(supervisor)

    response = client.get(reverse("desk:board"))

    rows = {row.label: row for row in response.context["department_rows"]}
    assert list(rows) == ["Social Care"]  # Billing is not theirs to supervise
    social = rows["Social Care"]
    assert (social.open, social.unassigned, social.breached) == (5, 2, 1)
    waited = datetime.now(UTC) - social.oldest_waiting
    assert timedelta(minutes=89) < waited < timedelta(minutes=92)
    agents = {row.key: row for row in response.context["agent_rows"]}
    assert (agents[agent.pk].open, agents[other_agent.pk].open, agents[supervisor.pk].open) == (2, 1, 0)
    assert "(supervisor)" in agents[supervisor.pk].detail
    body = text_of(response)
    assert "1h 3" in body  # the oldest wait, 90-odd minutes
    assert board_world["billing"].reference not in body


def test_board_picks_cases_by_agent_and_state(client, supervisor, agent, board_world):
    client.force_login(supervisor)

    by_agent = client.get(reverse("desk:board"), {"agent": agent.pk})
    breached = client.get(reverse("desk:board"), {"sla": "breached"})
    free = client.get(reverse("desk:board"), {"unassigned": "on"})

    assert {c.pk for c in by_agent.context["picked"]} == {c.pk for c in board_world["mine"]}
    assert [c.pk for c in breached.context["picked"]] == [board_world["late"].pk]
    assert {c.pk for c in free.context["picked"]} == {board_world["free"].pk, board_world["late"].pk}


def test_bulk_reassign_across_departments_needs_a_reason(
    client, supervisor, agent, other_department, board_world
):
    client.force_login(supervisor)
    billing_agent = factories.UserFactory(username="billy", first_name="Billy", last_name="Bills")
    factories.MembershipFactory(user=billing_agent, department=other_department)
    picked = [c.pk for c in board_world["mine"]]

    no_reason = client.post(
        reverse("desk:board_reassign"), {"cases": picked, "to_department": other_department.pk}, follow=True
    )
    assert "Reason: Say why; it stays on the case's record." in text_of(no_reason)
    assert Case.objects.filter(pk__in=picked, department=other_department).count() == 0

    done = client.post(
        reverse("desk:board_reassign"),
        {
            "cases": picked,
            "to_department": other_department.pk,
            "assignee": billing_agent.pk,
            "reason": "Agent off sick",
            "filter_agent": agent.pk,
        },
    )

    assert done.status_code == 302
    assert done["Location"] == reverse("desk:board") + f"?agent={agent.pk}"
    moved = Case.objects.filter(pk__in=picked)
    assert {(c.department_id, c.assignee_id) for c in moved} == {(other_department.pk, billing_agent.pk)}
    assert CaseEvent.objects.filter(case__in=picked, kind="transferred", reason="Agent off sick").count() == 2


def test_bulk_reassign_refuses_an_assignee_outside_the_department(client, supervisor, outsider, board_world):
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:board_reassign"),
        {"cases": [board_world["free"].pk], "assignee": outsider.pk, "reason": "cover"},
        follow=True,
    )

    assert "You may not reassign" in text_of(response)
    board_world["free"].refresh_from_db()
    assert board_world["free"].assignee is None


def test_bulk_reassign_ignores_cases_one_may_not_see(client, supervisor, other_department, board_world):
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:board_reassign"),
        {"cases": [board_world["billing"].pk], "to_department": other_department.pk, "reason": "x"},
        follow=True,
    )

    assert "Cases: Select a valid choice." in text_of(response)


@pytest.mark.parametrize("count", [2, 15])
def test_board_query_count_does_not_grow(
    client, supervisor, department, channel, django_assert_num_queries, count
):
    for n in range(count):
        member = factories.UserFactory(username=f"member{n}")
        factories.MembershipFactory(user=member, department=department, role=Membership.Role.AGENT)
        open_case(channel=channel, assignee=member if n % 2 else None)
    client.force_login(supervisor)

    with django_assert_num_queries(BOARD_QUERIES):
        response = client.get(reverse("desk:board"))

    assert len(response.context["picked"]) == count
    assert len(response.context["agent_rows"]) == count + 1


def test_board_sums_an_agents_work_across_departments(client, agent, board_world):
    # given: one of the agent's cases is in Billing, and an admin's board covers every department
    billing = board_world["billing"]
    Case.objects.filter(pk=billing.pk).update(assignee=agent, first_inbound_at=minutes_ago(300))
    admin = factories.UserFactory(username="boss", is_staff=True)
    client.force_login(admin)

    response = client.get(reverse("desk:board"))

    departments = {row.label: row for row in response.context["department_rows"]}
    assert [(row.open, row.unassigned) for row in departments.values()] == [(1, 0), (5, 2)]  # by name
    assert departments["Billing"].oldest_waiting == Case.objects.get(pk=billing.pk).first_inbound_at
    mine = next(row for row in response.context["agent_rows"] if row.key == agent.pk)
    assert (mine.open, mine.unassigned) == (3, 0)
    assert mine.oldest_waiting == departments["Billing"].oldest_waiting  # the earlier of the two
    assert (
        sum(row.open for row in departments.values())
        == Case.objects.filter(status__in=["new", "open"]).count()
    )
