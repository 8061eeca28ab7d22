from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings

from cases import reports, services, sla
from cases.models import Case
from tests import factories

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
PERIOD = {"start": T0 - timedelta(days=1), "end": T0 + timedelta(days=2)}


def conversation(*, channel, identity, answer_after: timedelta | None, at=T0):
    """A case opened by one customer message and answered ``answer_after`` later (or never)."""
    with time_machine.travel(at, tick=False):
        case = services.case_open(customer=identity.customer, channel=channel)
        services.message_add(
            case=case,
            direction="in",
            kind="post",
            text="help",
            channel=channel,
            identity=identity,
            external_id=f"in-{case.pk}",
            sent_at=at,
        )
    if answer_after is not None:
        # the sweep runs in between, as beat would, and breaks the promise when it is late
        with time_machine.travel(at + answer_after - timedelta(seconds=1), tick=False):
            sla.sla_sweep()
        with time_machine.travel(at + answer_after, tick=False):
            services.message_add(
                case=case,
                direction="out",
                kind="post",
                text="on it",
                channel=channel,
                identity=identity,
                sent_at=at + answer_after,
            )
    return Case.objects.get(pk=case.pk)


@pytest.fixture
def second_channel(department):
    ch = factories.ChannelFactory(kind="email", name="Support mailbox", slug="mail", department=department)
    factories.ServicePromiseFactory(channel=ch, first_response_minutes=240)
    return ch


def test_promises_kept_and_broken_and_first_response_percentiles_per_channel(channel, second_channel):
    # given three X conversations answered after 10, 30 and 90 minutes (promise: 60) and
    # one e-mail answered after 2 hours (promise: 4 hours)
    for minutes in (10, 30, 90):
        conversation(
            channel=channel,
            identity=factories.IdentityFactory(kind="x"),
            answer_after=timedelta(minutes=minutes),
        )
    conversation(
        channel=second_channel,
        identity=factories.IdentityFactory(kind="email", platform_id="a@example.com"),
        answer_after=timedelta(hours=2),
    )

    # when the report is computed
    report = reports.promise_report(**PERIOD, group_by="channel")
    rows = {row.label: row for row in report.rows}

    # then
    x = rows[channel.name]
    assert (x.responded, x.kept, x.broken, x.breaches) == (3, 2, 1, 1)
    assert x.median_first_response == timedelta(minutes=30)
    assert x.p90_first_response == timedelta(minutes=78)  # 30 + 0.8 * (90 - 30)
    assert x.median_label == "30 min"
    mail = rows[second_channel.name]
    assert (mail.responded, mail.kept, mail.broken) == (1, 1, 0)
    assert mail.p90_label == "2 h 00 min"


def test_open_cases_at_risk_now_and_department_scope(channel, other_department):
    late = conversation(
        channel=channel,
        identity=factories.IdentityFactory(kind="x"),
        answer_after=None,
        at=datetime.now(UTC) - timedelta(hours=2),
    )
    sla.sla_sweep()
    assert Case.objects.get(pk=late.pk).sla_state == Case.SlaState.BREACHED

    everyone = reports.promise_report(**PERIOD, group_by="department")
    elsewhere = reports.promise_report(**PERIOD, group_by="department", department_ids={other_department.pk})

    assert {r.label: r.at_risk_now for r in everyone.rows} == {channel.department.name: 1}
    assert elsewhere.rows == []


def test_report_costs_the_same_queries_for_few_and_many_cases(channel):
    def count_queries():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            reports.promise_report(**PERIOD)
        return len(ctx.captured_queries)

    conversation(
        channel=channel, identity=factories.IdentityFactory(kind="x"), answer_after=timedelta(minutes=5)
    )
    few = count_queries()
    for _ in range(6):
        conversation(
            channel=channel, identity=factories.IdentityFactory(kind="x"), answer_after=timedelta(minutes=5)
        )
    # three aggregate queries; SQLite adds one to rank the waits (no percentile aggregate)
    assert count_queries() == few <= (3 if settings.IS_POSTGRES else 4)


@pytest.mark.parametrize(("role", "status"), [("agent", 403), ("supervisor", 200), ("admin", 200)])
def test_report_page_is_for_supervisors_and_admins(client, department, role, status):
    user = factories.UserFactory(username=f"r-{role}", is_staff=role == "admin")
    if role != "admin":
        factories.MembershipFactory(user=user, department=department, role=role)
    client.force_login(user)

    response = client.get("/desk/reports/promises/")

    assert response.status_code == status
    if status == 200:
        assert b"Service promises" in response.content
        assert b'href="/desk/reports/promises/" aria-current="page">Reports' in response.content


def test_report_form_names_the_field_at_fault(client, supervisor):
    client.force_login(supervisor)

    response = client.get(
        "/desk/reports/promises/", {"start": "2026-03-10", "end": "2026-03-01", "group_by": "channel"}
    )

    assert response.status_code == 200
    assert b"The end date is before the start date." in response.content
    assert response.context["report"] is None


@pytest.mark.parametrize("conversations", [1, 6])
def test_chart_page_draws_every_figure_in_a_fixed_number_of_queries(
    client, supervisor, channel, django_assert_num_queries, conversations
):
    for _ in range(conversations):
        conversation(
            channel=channel,
            identity=factories.IdentityFactory(kind="x"),
            answer_after=timedelta(minutes=20),
            at=datetime.now(UTC) - timedelta(hours=3),
        )
    client.force_login(supervisor)
    # session, user, memberships, departments; promises per day, first-response buckets,
    # hour-of-week volume, backlog (opened/closed totals, opened, resolved, closed and
    # breaches per day), department clock (moves, targets); the filter's departments
    with django_assert_num_queries(15):
        response = client.get("/desk/reports/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('role="img"') == 5
    assert "15-30m" in body
    assert f"<title>15-30m, Cases: {conversations}</title>" in body  # every case counted once
    assert 'href="/desk/reports/promises/"' in body  # the report sections list


def test_chart_filters_name_the_field_at_fault(client, supervisor, other_department):
    client.force_login(supervisor)
    response = client.get("/desk/reports/", {"start": "2026-03-10", "end": "2026-03-01"})
    assert "The end date is before the start date." in response.content.decode()
    response = client.get("/desk/reports/", {"department": other_department.pk})
    assert response.context["form"].errors["department"]


def test_figure_csv_is_streamed(client, supervisor, channel):
    conversation(
        channel=channel,
        identity=factories.IdentityFactory(kind="x"),
        answer_after=timedelta(minutes=20),
        at=datetime.now(UTC) - timedelta(hours=3),
    )
    client.force_login(supervisor)
    for figure in ("promises", "first-response", "volume", "backlog", "department-clock"):
        response = client.get(f"/desk/reports/{figure}.csv")
        assert response.status_code == 200
        assert response.streaming
        lines = b"".join(response.streaming_content).decode().splitlines()
        assert len(lines) >= 2, figure
    bucket_lines = b"".join(client.get("/desk/reports/first-response.csv").streaming_content).decode()
    assert "15-30m,1" in bucket_lines
