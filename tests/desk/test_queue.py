"""The queue page: tabs, filters, order, keyset pages, and a query count that does not grow."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from cases import selectors, services, sla
from cases.models import Case
from tests import factories
from tests.desk.conftest import open_case

# session, user, memberships, departments, "has open cases?" (default tab), the newest case
# event (what the live socket checks it missed), the page's rows, the agent's saved views
QUEUE_QUERIES = 8


def refs_on_page(response) -> list[str]:
    return re.findall(r'data-case="(C-[0-9A-Z]+)"', response.content.decode())


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def test_default_tab_is_my_cases_when_i_have_some(desk, agent, other_agent, channel):
    mine = open_case(channel=channel, assignee=agent)
    colleagues = open_case(channel=channel, assignee=other_agent)
    unassigned = open_case(channel=channel)

    response = desk.get(reverse("desk:queue"))

    assert response.status_code == 200
    assert refs_on_page(response) == [mine.reference]
    assert colleagues.reference not in response.content.decode()
    assert unassigned.reference not in response.content.decode()
    assert response.context["view"] == "mine"


def test_default_tab_is_department_without_cases_of_my_own(desk, other_agent, channel, billing_channel):
    colleagues = open_case(channel=channel, assignee=other_agent)
    unassigned = open_case(channel=channel)
    elsewhere = open_case(channel=billing_channel)

    response = desk.get(reverse("desk:queue"))

    assert response.context["view"] == "department"
    assert set(refs_on_page(response)) == {colleagues.reference, unassigned.reference}
    assert elsewhere.reference not in response.content.decode()


def test_unassigned_tab(desk, other_agent, channel):
    open_case(channel=channel, assignee=other_agent)
    free = open_case(channel=channel)

    response = desk.get(reverse("desk:queue"), {"view": "unassigned"})

    assert refs_on_page(response) == [free.reference]


def test_at_risk_tab_shows_at_risk_and_breached_only(desk, channel):
    # 60-minute promise, 75% at-risk ratio: written 50 min ago is at risk, 90 min ago breached.
    calm = open_case(channel=channel, wrote_minutes_ago=5)
    risky = open_case(channel=channel, wrote_minutes_ago=50)
    late = open_case(channel=channel, wrote_minutes_ago=90)
    sla.sla_sweep()  # what beat runs every minute
    for case in (calm, risky, late):
        case.refresh_from_db()
    assert (calm.sla_state, risky.sla_state, late.sla_state) == ("ok", "at_risk", "breached")

    response = desk.get(reverse("desk:queue"), {"view": "at_risk"})

    assert refs_on_page(response) == [late.reference, risky.reference]
    body = response.content.decode()
    assert "Breached" in body
    assert "At risk" in body
    assert "overdue" in body  # the breached row's countdown


def test_monitoring_tab_holds_monitoring_cases_only(desk, agent, channel):
    venting = open_case(channel=channel)
    services.case_set_status(case=venting, status=Case.Status.MONITORING, actor=agent)
    working = open_case(channel=channel)

    monitoring = desk.get(reverse("desk:queue"), {"view": "monitoring"})
    department = desk.get(reverse("desk:queue"), {"view": "department"})

    assert refs_on_page(monitoring) == [venting.reference]
    assert refs_on_page(department) == [working.reference]


def test_sorted_by_due_time_nulls_last_then_newest(desk, agent, channel):
    soon = open_case(channel=channel, wrote_minutes_ago=40)
    later = open_case(channel=channel, wrote_minutes_ago=10)
    no_clock_old = open_case(channel=channel, wrote_minutes_ago=5)
    no_clock_new = open_case(channel=channel, wrote_minutes_ago=5)
    for case in (no_clock_old, no_clock_new):  # waiting on the customer: no response clock
        services.message_add(
            case=case, direction="out", kind="dm", text="Done?", channel=channel, author=agent
        )
        services.case_set_status(case=case, status=Case.Status.WAITING_ON_CUSTOMER, actor=agent)
    Case.objects.filter(pk__in=[no_clock_old.pk, no_clock_new.pk]).update(due_at=None)

    response = desk.get(reverse("desk:queue"), {"view": "department"})

    assert refs_on_page(response) == [
        soon.reference,
        later.reference,
        no_clock_new.reference,
        no_clock_old.reference,
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "facebook"}, {"facebook"}),
        ({"priority": "urgent"}, {"urgent"}),
        ({"status": "waiting_on_customer"}, {"waiting"}),
    ],
)
def test_filters(desk, agent, channels, params, expected):
    cases = {
        "x": open_case(channel=channels["x"]),
        "facebook": open_case(channel=channels["facebook"], kind="comment"),
        "urgent": open_case(channel=channels["email"], kind="email", priority="urgent"),
        "waiting": open_case(channel=channels["whatsapp"], kind="dm"),
    }
    services.case_set_status(case=cases["waiting"], status=Case.Status.WAITING_ON_CUSTOMER, actor=agent)

    response = desk.get(reverse("desk:queue"), {"view": "department", **params})

    assert set(refs_on_page(response)) == {cases[name].reference for name in expected}


def test_department_filter_offers_and_accepts_only_my_departments(
    client, channel, billing_channel, department, other_department
):
    # given a supervisor-free agent in two departments and a third department they are not in
    agent = factories.UserFactory(username="two-hats")
    factories.MembershipFactory(user=agent, department=department)
    factories.MembershipFactory(user=agent, department=other_department)
    hidden_department = factories.DepartmentFactory(name="Technical Support", slug="tech")
    hidden_channel = factories.ChannelFactory(kind="email", slug="tech-mail", department=hidden_department)
    social = open_case(channel=channel)
    billing = open_case(channel=billing_channel)
    hidden = open_case(channel=hidden_channel)
    client.force_login(agent)

    both = client.get(reverse("desk:queue"), {"view": "department"})
    only_billing = client.get(
        reverse("desk:queue"), {"view": "department", "department": other_department.pk}
    )
    sneaky = client.get(reverse("desk:queue"), {"view": "department", "department": hidden_department.pk})

    assert set(refs_on_page(both)) == {social.reference, billing.reference}
    assert refs_on_page(only_billing) == [billing.reference]
    options = both.context["form"].fields["department"].choices
    assert [label for _, label in options] == ["All my departments", "Billing", "Social Care"]
    # a department the agent cannot see is refused with a message naming the field, never shown
    assert hidden.reference not in sneaky.content.decode()
    assert any(error.startswith("Department:") for error in sneaky.context["filter_errors"])
    assert set(refs_on_page(sneaky)) == {social.reference, billing.reference}


def test_keyset_pages_cover_the_queue_once_in_order(agent, channel):
    cases = [open_case(channel=channel, wrote_minutes_ago=m) for m in (30, 20, 20, 10, 5)]
    for case in cases[3:]:
        Case.objects.filter(pk=case.pk).update(due_at=None)
    expected = list(selectors.case_queue(user=agent, view="department").values_list("reference", flat=True))

    seen, cursor, pages = [], None, 0
    while True:
        page = selectors.case_queue_page(user=agent, view="department", after=cursor, page_size=2)
        seen += [case.reference for case in page.cases]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
        cursor = selectors.QueueCursor.decode(cursor.encode())  # as a link would carry it

    assert pages == 3
    assert seen == expected
    assert len(set(seen)) == 5
    assert expected[-2:] == [cases[4].reference, cases[3].reference]  # no due time: last, newest first


def test_next_page_link_and_a_bad_cursor(desk, channel, settings):
    cases = [
        open_case(channel=channel, wrote_minutes_ago=60 - m) for m in range(selectors.QUEUE_PAGE_SIZE + 2)
    ]

    first = desk.get(reverse("desk:queue"), {"view": "department"})
    cursor = first.context["next_cursor"]
    second = desk.get(reverse("desk:queue"), {"view": "department", "after": cursor})
    broken = desk.get(reverse("desk:queue"), {"view": "department", "after": "yesterday"})
    far = desk.get(reverse("desk:queue"), {"view": "department", "after": "9" * 30 + "_1"})

    assert len(refs_on_page(first)) == selectors.QUEUE_PAGE_SIZE
    assert f"after={cursor}" in first.content.decode()
    assert refs_on_page(second) == [c.reference for c in cases[-2:]]
    assert second.context["next_cursor"] == ""
    assert "First page" in second.content.decode()
    assert any(error.startswith("After:") for error in broken.context["filter_errors"])
    assert refs_on_page(broken) == refs_on_page(first)
    assert far.status_code == 200
    assert any(error.startswith("After:") for error in far.context["filter_errors"])


def test_row_shows_customer_handle_channel_and_snippet(desk, channels):
    customer = factories.CustomerFactory(name="Riley Vale", tier="vip")
    tweet_identity = factories.IdentityFactory(
        customer=customer, kind="x", platform_id="81", handle="@rileyv"
    )
    mail_identity = factories.IdentityFactory(
        customer=customer, kind="email", platform_id="riley@example.test", handle="riley@example.test"
    )
    case = open_case(
        channel=channels["x"],
        customer=customer,
        identity=tweet_identity,
        text="Day three without internet and nobody answers my calls at all",
    )
    services.message_add(
        case=case,
        direction="in",
        kind="email",
        text="Following up by mail",
        channel=channels["email"],
        identity=mail_identity,
    )

    body = desk.get(reverse("desk:queue"), {"view": "department"}).content.decode()

    assert "Riley Vale" in body
    assert "VIP" in body
    assert "riley@example.test" in body  # the identity they last wrote from
    assert "@rileyv" not in body
    assert "Day three without internet" in body  # no subject: the first words
    assert "E-mail" in body  # the last channel


def test_queue_needs_login(client):
    response = client.get(reverse("desk:queue"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("count", [3, 30])
def test_queue_query_count_does_not_grow(desk, agent, channels, django_assert_num_queries, count):
    kinds = ["x", "facebook", "email", "whatsapp"]
    for n in range(count):
        case = open_case(channel=channels[kinds[n % 4]], subject="" if n % 2 else f"Case {n}")
        if n % 3 == 0:
            services.case_claim(case=case, actor=agent)

    with django_assert_num_queries(QUEUE_QUERIES):
        response = desk.get(reverse("desk:queue"))

    assert len(refs_on_page(response)) == (count + 2) // 3  # my cases tab
    with django_assert_num_queries(QUEUE_QUERIES - 1):  # an explicit tab skips "has open cases?"
        response = desk.get(reverse("desk:queue"), {"view": "department", "kind": "email"})
    assert len(refs_on_page(response)) == len([n for n in range(count) if n % 4 == 2])
