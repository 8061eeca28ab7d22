"""The department clock on the desk (cases/department_clock.py), with frozen time: the queue's
near/over badge against the department's handling target, the case page's time with each
department, the sweep's one warning per stay (recorded and pushed to the department over the
real channel layer), and the screen where admins and supervisors set the target (audited)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import time_machine
from asgiref.sync import async_to_sync, sync_to_async
from auditlog.models import LogEntry
from channels.layers import get_channel_layer
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cases import department_clock, selectors, services, sla, tasks
from cases.models import Case, CaseEvent, Department, Membership
from channels_app import presence
from channels_app.groups import department_group
from tests import factories
from tests.desk.test_handoff_screens import CASE_PAGE_WITH_BANNER_QUERIES
from tests.desk.test_queue import QUEUE_QUERIES

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
# session, user, the departments on screen, their recent audit entries, the header's memberships
TARGETS_PAGE_QUERIES = 5


def at(minutes: float):
    return time_machine.travel(T0 + timedelta(minutes=minutes), tick=False)


def new_case(channel, *, minutes: float = 0, subject: str = "Help") -> Case:
    with at(minutes):
        customer = factories.CustomerFactory()
        identity = factories.IdentityFactory(
            customer=customer, kind=channel.kind, platform_id=f"p{customer.pk}"
        )
        case = services.case_open(customer=customer, channel=channel, subject=subject)
        services.message_add(
            case=case, direction="in", kind="dm", text="help", channel=channel, identity=identity, sent_at=T0
        )
    return Case.objects.get(pk=case.pk)


def transfer(case, to, actor, minutes):
    with at(minutes):
        services.case_transfer(case=case, to_department=to, actor=actor, reason="Theirs to answer")


def set_target(department, minutes):
    Department.objects.filter(pk=department.pk).update(handling_target_minutes=minutes)
    department.refresh_from_db()


@pytest.fixture
def admin(db):
    return factories.UserFactory(username="admin", email="admin@example.test", is_staff=True)


def badge(body: str, reference: str) -> str | None:
    row = re.search(rf'<tr id="case-row-\d+" data-case="{reference}".*?</tr>', body, re.DOTALL).group(0)
    found = re.search(r'data-dept-clock="(\w+)"', row)
    return found.group(1) if found else None


# --- The rule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "state"), [(0, "ok"), (47.9, "ok"), (48, "near"), (59.9, "near"), (60, "over"), (600, "over")]
)
def test_near_from_eighty_percent_over_from_the_target(minutes, state):
    assert (
        department_clock.target_state(since=T0, target_minutes=60, now=T0 + timedelta(minutes=minutes))
        == state
    )


def test_no_target_no_state():
    assert department_clock.target_state(since=T0, target_minutes=None, now=T0 + timedelta(days=9)) is None


# --- The queue ------------------------------------------------------------------------------------------


def test_the_queue_marks_cases_near_and_over_their_departments_target(client, agent, channel, department):
    set_target(department, 60)
    old, mid, fresh = (
        new_case(channel, minutes=0),
        new_case(channel, minutes=15),
        new_case(channel, minutes=50),
    )
    client.force_login(agent)

    with at(65):
        body = client.get(reverse("desk:queue"), {"view": "department"}).content.decode()
        live = selectors.live_queue_rows(case_ids=[old.pk, mid.pk, fresh.pk])
        pushed = {
            pk: render_to_string("cases/partials/queue_row.html", {"case": c}) for pk, c in live.items()
        }

    assert (badge(body, old.reference), badge(body, mid.reference), badge(body, fresh.reference)) == (
        "over",
        "near",
        None,
    )
    assert 'title="With Social Care for 1h 05m; its handling target is 1h 00m."' in body
    assert ">Over dept. target</span>" in body and ">Near dept. target</span>" in body
    for row in pushed.values():  # a live push prints the same row
        assert row.strip() in body


def test_without_a_target_no_badge_and_rows_print_as_before(client, agent, channel):
    case = new_case(channel)
    client.force_login(agent)
    with at(60 * 24 * 30):
        body = client.get(reverse("desk:queue"), {"view": "department"}).content.decode()
    assert badge(body, case.reference) is None and "dept-clock" not in body


def test_a_transfer_starts_the_clock_again(client, supervisor, channel, department, other_department):
    set_target(department, 60)
    set_target(other_department, 60)
    case = new_case(channel)
    transfer(case, other_department, supervisor, minutes=55)
    billing = factories.UserFactory(username="billing-agent")
    factories.MembershipFactory(user=billing, department=other_department, role=Membership.Role.AGENT)
    client.force_login(billing)
    with at(90):  # 35 minutes with Billing
        body = client.get(reverse("desk:queue"), {"view": "department"}).content.decode()
    assert badge(body, case.reference) is None
    with at(104):  # 49 minutes: near
        body = client.get(reverse("desk:queue"), {"view": "department"}).content.decode()
    assert badge(body, case.reference) == "near"


@pytest.mark.parametrize("count", [2, 20])
def test_the_queue_costs_the_same_with_targets(
    client, agent, channel, department, django_assert_num_queries, count
):
    set_target(department, 30)
    for n in range(count):
        new_case(channel, minutes=n)
    client.force_login(agent)
    with at(90), django_assert_num_queries(QUEUE_QUERIES - 1):  # an explicit tab
        body = client.get(reverse("desk:queue"), {"view": "department"}).content.decode()
    assert body.count('data-dept-clock="over"') == count


# --- The case page --------------------------------------------------------------------------------------


def test_the_case_page_shows_time_with_the_department_and_each_stay(
    client, admin, supervisor, channel, department, other_department
):
    set_target(department, 60)
    set_target(other_department, 45)
    case = new_case(channel)
    transfer(case, other_department, admin, minutes=70)  # 1h 10m with Social Care: over its target
    client.force_login(admin)

    with at(110):  # 40 minutes with Billing: near its 45
        body = client.get(reverse("desk:case", args=[case.reference])).content.decode()

    section = re.search(r'<section id="department-clock".*?</section>', body, re.DOTALL).group(0)
    assert "Time with Billing" in section
    assert "<strong data-dept-elapsed>40m</strong>" in section
    assert 'data-dept-clock="near"' in section and "Handling target: 45m" in section
    history = re.sub(
        r"\s+", " ", re.search(r"<ol[^>]*data-dept-history>.*?</ol>", section, re.DOTALL).group(0)
    )
    assert re.search(r"Social Care: 1h 10m <span class=\"badge sla-breached\">over target</span>", history)
    assert "Billing: 40m" in history and "now" in history
    assert history.index("Social Care") < history.index("Billing")


def test_a_case_with_no_target_and_no_moves(client, agent, channel):
    case = new_case(channel)
    client.force_login(agent)
    with at(30):
        body = client.get(reverse("desk:case", args=[case.reference])).content.decode()
    assert "Time with Social Care" in body and "Social Care has no handling target." in body
    assert "data-dept-history" not in body


def test_the_case_page_costs_the_same_for_more_moves(
    client, admin, channel, department, other_department, django_assert_num_queries
):
    short, long = new_case(channel), new_case(channel)
    transfer(short, other_department, admin, minutes=10)
    for n in range(5):
        transfer(long, [other_department, department][n % 2], admin, minutes=10 + n)
    client.force_login(admin)
    for case in (short, long):  # both handed over: the banner's query too
        with at(60), django_assert_num_queries(CASE_PAGE_WITH_BANNER_QUERIES):
            assert client.get(reverse("desk:case", args=[case.reference])).status_code == 200


# --- The sweep -------------------------------------------------------------------------------------------


def warnings_of(case) -> list[CaseEvent]:
    return list(CaseEvent.objects.filter(case=case, kind="sla", after__department_target="passed"))


def test_the_sweep_records_and_pushes_once_per_stay(
    channel, department, other_department, supervisor, django_capture_on_commit_callbacks
):
    set_target(department, 60)
    set_target(other_department, 30)
    case = new_case(channel)
    calm = new_case(channel, minutes=30)
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(department_group(department.pk), listener)

    with at(59), django_capture_on_commit_callbacks(execute=True):
        assert department_clock.department_target_sweep() == 0
    with at(61), django_capture_on_commit_callbacks(execute=True):
        assert sla.sla_sweep().department_over_target == 1  # through the SLA sweep beat runs

    (warning,) = warnings_of(case)
    assert warning.after == {
        "department_target": "passed",
        "department": department.pk,
        "target_minutes": 60,
        "since": T0.isoformat(),
    }
    assert warning.actor is None and warning.reason.startswith("With the department longer than")
    assert warnings_of(calm) == []

    async def heard():
        while True:
            message = await asyncio.wait_for(layer.receive(listener), timeout=5)
            if message["event"]["type"] == "department.over_target":
                return message["event"]

    event = async_to_sync(heard)()
    assert event == {
        "type": "department.over_target",
        "department_id": department.pk,
        "target_minutes": 60,
        "cases": [{"case_id": case.pk, "reference": case.reference}],
    }

    with at(120), django_capture_on_commit_callbacks(execute=True):  # once: not again on the same stay
        assert department_clock.department_target_sweep() == 1  # the calm case's turn (30 + 60 < 120)
    assert len(warnings_of(case)) == 1

    # Away to Billing (30 minutes) and its own warning for the new stay.
    transfer(case, other_department, supervisor, minutes=130)
    with at(155), django_capture_on_commit_callbacks(execute=True):
        assert department_clock.department_target_sweep() == 0
    with at(161), django_capture_on_commit_callbacks(execute=True):
        assert department_clock.department_target_sweep() == 1
    first, second = warnings_of(case)
    assert second.after["department"] == other_department.pk and second.after["target_minutes"] == 30


def test_the_beat_task_reports_the_department_warnings(channel, department):
    set_target(department, 60)
    new_case(channel)
    with at(61):
        counts = tasks.sla_sweep()
    assert counts["department_over_target"] == 1 and counts["breached"] == 1  # the 60-minute promise too


def test_resolved_cases_and_departments_without_a_target_are_left_alone(channel, department, agent):
    case = new_case(channel)
    resolved = new_case(channel)
    with at(5):
        services.case_set_status(case=resolved, status=Case.Status.RESOLVED, actor=agent)
    with at(600):
        assert department_clock.department_target_sweep() == 0  # no target yet
    set_target(department, 60)
    with at(601):
        assert department_clock.department_target_sweep() == 1
    assert warnings_of(resolved) == [] and len(warnings_of(case)) == 1


def test_the_sweep_costs_the_same_for_more_cases(channel, department):
    set_target(department, 10)

    def measure(count: int, minutes: float) -> int:
        for _ in range(count):
            new_case(channel, minutes=minutes)
        with at(minutes + 11), CaptureQueriesContext(connection) as ctx:
            assert department_clock.department_target_sweep() == count
        return len(ctx.captured_queries)

    assert measure(2, 0) == measure(12, 100)


def test_the_warning_is_an_alert_for_the_department():
    case = SimpleNamespace(reference="C-AAAAA", department="Social Care")
    visible = {7: SimpleNamespace(case=case)}
    event = {
        "type": "department.over_target",
        "target_minutes": 60,
        "cases": [{"case_id": 7, "reference": "C-AAAAA"}],
    }

    alert = presence.alert_for(kind=event["type"], event=event, visible=visible, user=None, supervisor=False)

    assert alert["level"] == "warn"
    assert alert["title"] == "1 case over Social Care's handling target"
    assert alert["cases"] == [{"case_id": 7, "reference": "C-AAAAA"}]
    assert (
        presence.alert_for(kind=event["type"], event=event, visible={}, user=None, supervisor=False) is None
    )


# --- The setting ------------------------------------------------------------------------------------------


def test_a_supervisor_sets_their_departments_target_and_it_is_audited(client, supervisor, department):
    client.force_login(supervisor)
    url = reverse("settings:department_target", args=[department.pk])

    response = client.post(url, {f"department-{department.pk}-handling_target_minutes": "90"})

    assert response.status_code == 302 and response["Location"] == reverse("settings:departments")
    department.refresh_from_db()
    assert department.handling_target_minutes == 90
    entry = LogEntry.objects.get_for_object(department).latest("timestamp")
    assert entry.actor == supervisor and entry.changes["handling_target_minutes"] == [None, 90]
    body = client.get(reverse("settings:departments")).content.decode()
    assert (
        'Handling target</span>: <span class="audit-before">—</span> → <span class="audit-after">90 min</span>'
        in body
    )

    entries = LogEntry.objects.get_for_object(department).count()
    client.post(url, {f"department-{department.pk}-handling_target_minutes": "90"})  # unchanged: no entry
    assert LogEntry.objects.get_for_object(department).count() == entries
    client.post(url, {f"department-{department.pk}-handling_target_minutes": ""})  # cleared
    department.refresh_from_db()
    assert department.handling_target_minutes is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0", "Handling target: at least 1 minute, or empty for no target."),
        ("-5", "Handling target: at least 1 minute, or empty for no target."),
        ("soon", "Handling target: a whole number of minutes, or empty for no target."),
        ("999999999", "Handling target: at most a year (525600 minutes)."),
    ],
)
def test_a_bad_target_is_refused_naming_the_field(client, supervisor, department, value, error):
    client.force_login(supervisor)
    response = client.post(
        reverse("settings:department_target", args=[department.pk]),
        {f"department-{department.pk}-handling_target_minutes": value},
    )
    assert response.status_code == 400 and error in response.content.decode()
    department.refresh_from_db()
    assert department.handling_target_minutes is None


def test_who_may_set_targets(client, agent, supervisor, admin, department, other_department):
    client.force_login(agent)
    assert client.get(reverse("settings:departments")).status_code == 403
    client.force_login(supervisor)
    body = client.get(reverse("settings:departments")).content.decode()
    assert "Social Care" in body and "Billing" not in body
    response = client.post(
        reverse("settings:department_target", args=[other_department.pk]),
        {f"department-{other_department.pk}-handling_target_minutes": "5"},
    )
    assert response.status_code == 404
    client.force_login(admin)
    body = client.get(reverse("settings:departments")).content.decode()
    assert "Social Care" in body and "Billing" in body
    other_department.refresh_from_db()
    assert other_department.handling_target_minutes is None


def test_the_service_refuses_an_agent(agent, department):
    from cases.errors import NotPermitted

    with pytest.raises(NotPermitted):
        department_clock.department_target_save(department=department, actor=agent, minutes=30)


@pytest.mark.parametrize("extra", [0, 6])
def test_the_targets_page_query_count(client, admin, department, django_assert_num_queries, extra):
    for n in range(extra):
        factories.DepartmentFactory(name=f"Team {n}", slug=f"team-{n}", handling_target_minutes=30 + n)
    client.force_login(admin)
    with django_assert_num_queries(TARGETS_PAGE_QUERIES):
        assert client.get(reverse("settings:departments")).status_code == 200


# --- On the desk's socket -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_departments_agents_are_alerted_on_their_sockets():
    from tests.test_consumers import build_world, connected, received
    from tests.test_consumers import open_case as live_open_case

    world = await sync_to_async(build_world)()

    def over_target():
        Department.objects.filter(pk__in=[world["social"].pk, world["billing"].pk]).update(
            handling_target_minutes=30
        )
        ours, theirs = live_open_case(world["x"]), live_open_case(world["mail"])
        Case.objects.filter(pk__in=[ours.pk, theirs.pk]).update(
            created_at=timezone.now() - timedelta(minutes=31)
        )
        return ours, theirs

    ours, theirs = await sync_to_async(over_target)()
    agent = await connected(world["agent"])
    outsider = await connected(world["outsider"])

    assert await sync_to_async(department_clock.department_target_sweep)() == 2

    alerts = [m for m in await received(agent) if m["type"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["level"] == "warn"
    assert ours.reference in alerts[0]["html"] and theirs.reference not in alerts[0]["html"]
    assert "1 case over Social Care&#x27;s handling target" in alerts[0]["html"]
    alerts = [m for m in await received(outsider) if m["type"] == "alert"]
    assert (
        len(alerts) == 1 and theirs.reference in alerts[0]["html"] and ours.reference not in alerts[0]["html"]
    )
    await agent.disconnect()
    await outsider.disconnect()
