"""The SLA sweep: set-based marking, one event per change, live events, and the breach ladder."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases import escalation, services, sla
from cases.models import Case, CaseEvent, Membership
from connectors import webhooks_out
from tests import factories
from tests.sla.factories import EscalationPathFactory

START = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def sent(monkeypatch):
    """Live events as they leave after commit: (event, group) pairs."""
    out = []
    monkeypatch.setattr(
        "channels_app.publish.publish", lambda *, event, groups: out.extend((event, g) for g in groups)
    )
    return out


def new_case(customer, channel, at=START, assignee=None):
    with time_machine.travel(at, tick=False):
        case = services.case_open(customer=customer, channel=channel)
        services.message_add(case=case, direction="in", kind="dm", text="help", channel=channel, sent_at=at)
        if assignee is not None:
            services.case_assign(case=case, assignee=assignee, actor=None)
    case.refresh_from_db()
    return case


def sweep(at, capture=None):
    with time_machine.travel(at, tick=False):
        if capture is None:
            return sla.sla_sweep()
        with capture(execute=True):
            return sla.sla_sweep()


def sla_events(case):
    return list(case.events.filter(kind=CaseEvent.Kind.SLA).order_by("id"))


def test_case_turns_at_risk_then_breached_with_one_event_each(customer, channel):
    case = new_case(customer, channel)

    assert sweep(START + timedelta(minutes=44)).at_risk == 0
    result = sweep(START + timedelta(minutes=45))
    case.refresh_from_db()
    assert (result.at_risk, result.breached) == (1, 0)
    assert case.sla_state == Case.SlaState.AT_RISK

    assert sweep(START + timedelta(minutes=50)).at_risk == 0
    result = sweep(START + timedelta(minutes=60))
    case.refresh_from_db()
    assert (result.at_risk, result.breached) == (0, 1)
    assert case.sla_state == Case.SlaState.BREACHED
    assert sweep(START + timedelta(minutes=70)).breached == 0

    risk, breach = sla_events(case)
    assert (risk.before, risk.after["sla_state"], risk.after["clock"]) == (
        {"sla_state": "ok"},
        "at_risk",
        "first_response",
    )
    assert breach.before == {"sla_state": "at_risk"} and breach.after["sla_state"] == "breached"
    assert breach.after["due_at"] == (START + timedelta(minutes=60)).isoformat()
    assert risk.actor is None


def test_a_case_already_overdue_goes_straight_to_breached(customer, channel):
    case = new_case(customer, channel)
    result = sweep(START + timedelta(hours=2))
    assert (result.at_risk, result.breached) == (0, 1)
    (event,) = sla_events(case)
    assert event.before == {"sla_state": "ok"} and event.after["sla_state"] == "breached"


def test_the_breached_clock_is_named(customer, channel, agent):
    case = new_case(customer, channel)
    with time_machine.travel(START + timedelta(minutes=5), tick=False):
        services.message_add(case=case, direction="out", kind="dm", channel=channel, author=agent)
    sweep(START + timedelta(hours=25))
    assert sla_events(case)[-1].after["clock"] == "resolution"


def test_paused_monitored_resolved_and_answered_cases_are_not_swept(customer, channel, agent):
    cases = [new_case(customer, channel) for _ in range(4)]
    with time_machine.travel(START + timedelta(minutes=5), tick=False):
        services.case_set_status(case=cases[0], status="waiting_on_customer", actor=agent)
        services.case_set_status(case=cases[1], status="monitoring", actor=agent)
        services.case_set_status(case=cases[2], status="resolved", actor=agent)
        services.message_add(case=cases[3], direction="out", kind="dm", channel=channel, author=agent)

    result = sweep(START + timedelta(hours=2))

    assert (result.at_risk, result.breached) == (0, 0)
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.SLA).exists()


def test_live_events_reach_department_assignee_and_supervisors(
    customer, channel, agent, django_capture_on_commit_callbacks, sent
):
    case = new_case(customer, channel, assignee=agent)
    unassigned = new_case(customer, channel)

    sweep(START + timedelta(minutes=46), django_capture_on_commit_callbacks)
    risk = [(e, g) for e, g in sent if e["type"] == "sla.changed"]
    assert {g for _, g in risk} == {f"dept.{case.department_id}", f"user.{agent.pk}"}
    dept_event = next(e for e, g in risk if g.startswith("dept."))
    assert {c["case_id"] for c in dept_event["cases"]} == {case.pk, unassigned.pk}
    user_event = next(e for e, g in risk if g.startswith("user."))
    assert [c["case_id"] for c in user_event["cases"]] == [case.pk]
    assert dept_event["sla_state"] == "at_risk"

    sent.clear()
    sweep(START + timedelta(minutes=61), django_capture_on_commit_callbacks)
    breach_groups = {g for e, g in sent if e["type"] == "sla.changed" and e["sla_state"] == "breached"}
    assert "supervisors" in breach_groups and f"user.{agent.pk}" in breach_groups


def test_nothing_is_published_when_the_sweep_rolls_back(customer, channel, monkeypatch, sent):
    new_case(customer, channel)

    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(CaseEvent.objects, "bulk_create", explode)
    with pytest.raises(RuntimeError):
        sweep(START + timedelta(minutes=46))
    assert sent == []
    assert Case.objects.get().sla_state == Case.SlaState.OK


def test_sweep_queries_do_not_grow_with_the_number_of_cases(customer, channel, django_assert_num_queries):
    def measure(count):
        webhooks_out.active_subscriptions()  # warm, as in a running worker
        Case.objects.all().delete()
        for i in range(count):
            new_case(customer, channel, at=START + timedelta(minutes=i % 2 * 15))
        with (
            CaptureQueriesContext(connection) as ctx,
            time_machine.travel(START + timedelta(minutes=61), tick=False),
        ):
            result = sla.sla_sweep()
        assert result.at_risk + result.breached == count
        return len(ctx.captured_queries)

    assert measure(2) == measure(12)
    Case.objects.all().delete()
    for i in range(3):
        new_case(customer, channel, at=START + timedelta(minutes=i))
    # at risk: savepoint, select (none found), release; breached: savepoint, select, update,
    # insert events, release (webhook subscribers are cached); ladder: the breach paths;
    # department clocks: the departments with a handling target (none here)
    with django_assert_num_queries(10), time_machine.travel(START + timedelta(hours=2), tick=False):
        assert sla.sla_sweep().breached == 3


# --- breach ladder -------------------------------------------------------------------------


@pytest.fixture
def billing_supervisor(other_department):
    user = factories.UserFactory(username="billing-super")
    factories.MembershipFactory(user=user, department=other_department, role=Membership.Role.SUPERVISOR)
    return user


@pytest.fixture
def breach_path(department, other_department):
    return EscalationPathFactory(
        from_department=department,
        to_department=other_department,
        trigger="sla_breach",
        warn_after_minutes=0,
        notify_after_minutes=15,
        escalate_after_minutes=30,
    )


def test_breach_ladder_warns_then_notifies_then_escalates_once(
    customer, channel, agent, supervisor, billing_supervisor, breach_path, other_department,
    django_capture_on_commit_callbacks, sent,
):  # fmt: skip
    case = new_case(customer, channel, assignee=agent)
    due = START + timedelta(minutes=60)

    # at the breach: the assignee is warned
    result = sweep(due, django_capture_on_commit_callbacks)
    case.refresh_from_db()
    assert result.breached == 1 and result.ladder["warned_assignee"] == 1
    assert case.breach_step == Case.BreachStep.WARNED
    assert (
        {"type": "sla.warning", "cases": [{"case_id": case.pk, "reference": case.reference}]},
        f"user.{agent.pk}",
    ) in sent

    # ten minutes on, nothing more
    assert sweep(due + timedelta(minutes=10)).ladder == {
        "warned_assignee": 0,
        "notified_supervisors": 0,
        "escalated": 0,
    }

    # fifteen minutes after the breach the department's supervisors hear of it
    sent.clear()
    assert (
        sweep(due + timedelta(minutes=15), django_capture_on_commit_callbacks).ladder["notified_supervisors"]
        == 1
    )
    alert_groups = {g for e, g in sent if e["type"] == "sla.breach_alert"}
    assert alert_groups == {f"user.{supervisor.pk}", "supervisors"}

    # thirty minutes after, the case escalates along the path
    sent.clear()
    assert sweep(due + timedelta(minutes=30), django_capture_on_commit_callbacks).ladder["escalated"] == 1
    case.refresh_from_db()
    assert case.department == other_department
    assert case.assignee is None and agent in case.followers.all()
    assert case.breach_step == Case.BreachStep.ESCALATED
    assert case.sla_state == Case.SlaState.BREACHED and case.due_at == due  # the customer's clock stays
    event = case.events.get(kind=CaseEvent.Kind.ESCALATED)
    assert event.actor is None and "first response" in event.reason
    escalated = [g for e, g in sent if e["type"] == "case.escalated"]
    assert f"user.{billing_supervisor.pk}" in escalated

    ladder = [e.after.get("ladder") for e in sla_events(case) if e.after.get("ladder")]
    assert ladder == ["warned_assignee", "notified_supervisors"]

    # the receiving department's own breach path does not bounce it on
    EscalationPathFactory(
        from_department=other_department, to_department=factories.DepartmentFactory(slug="legal"),
        trigger="sla_breach", warn_after_minutes=0, escalate_after_minutes=0,
    )  # fmt: skip
    assert sweep(due + timedelta(hours=2)).ladder == {
        "warned_assignee": 0,
        "notified_supervisors": 0,
        "escalated": 0,
    }
    assert Case.objects.get(pk=case.pk).department == other_department


def test_a_late_sweep_takes_every_due_step_at_once(customer, channel, agent, breach_path, other_department):
    case = new_case(customer, channel, assignee=agent)
    result = sweep(START + timedelta(hours=3))
    assert result.ladder == {"warned_assignee": 1, "notified_supervisors": 1, "escalated": 1}
    assert Case.objects.get(pk=case.pk).department == other_department


def test_ladder_steps_can_be_switched_off(customer, channel, breach_path, other_department):
    breach_path.warn_after_minutes = breach_path.notify_after_minutes = None
    breach_path.escalate_after_minutes = 0
    breach_path.save()
    case = new_case(customer, channel)

    result = sweep(START + timedelta(minutes=61))

    assert result.ladder == {"warned_assignee": 0, "notified_supervisors": 0, "escalated": 1}
    assert Case.objects.get(pk=case.pk).department == other_department


def test_an_answered_case_leaves_the_ladder(customer, channel, agent, breach_path, department):
    case = new_case(customer, channel, assignee=agent)
    sweep(START + timedelta(minutes=61))
    with time_machine.travel(START + timedelta(minutes=70), tick=False):
        services.message_add(case=case, direction="out", kind="dm", channel=channel, author=agent)
    case.refresh_from_db()
    assert case.breach_step == Case.BreachStep.NONE and case.sla_state == Case.SlaState.OK

    assert sweep(START + timedelta(hours=2)).ladder["escalated"] == 0
    assert Case.objects.get(pk=case.pk).department == department


def test_departments_without_a_breach_path_only_mark(customer, channel, department, other_department):
    EscalationPathFactory(from_department=department, to_department=other_department, trigger="manual")
    case = new_case(customer, channel)
    result = sweep(START + timedelta(hours=3))
    assert result.breached == 1 and result.ladder == {
        "warned_assignee": 0,
        "notified_supervisors": 0,
        "escalated": 0,
    }
    assert Case.objects.get(pk=case.pk).department == department


def test_inactive_breach_paths_are_ignored(customer, channel, breach_path, department):
    breach_path.is_active = False
    breach_path.save()
    case = new_case(customer, channel)
    assert sweep(START + timedelta(hours=3)).ladder["escalated"] == 0
    assert Case.objects.get(pk=case.pk).department == department


def test_the_lowest_order_breach_path_sets_the_ladder(customer, channel, department, other_department):
    later = factories.DepartmentFactory(slug="tech")
    EscalationPathFactory(
        from_department=department,
        to_department=later,
        trigger="sla_breach",
        order=2,
        escalate_after_minutes=0,
    )
    EscalationPathFactory(
        from_department=department,
        to_department=other_department,
        trigger="sla_breach",
        order=1,
        escalate_after_minutes=0,
    )
    case = new_case(customer, channel)
    sweep(START + timedelta(minutes=61))
    assert Case.objects.get(pk=case.pk).department == other_department


def test_escalations_per_sweep_are_capped(customer, channel, breach_path, monkeypatch):
    monkeypatch.setattr(escalation, "MAX_ESCALATIONS_PER_SWEEP", 2)
    for _ in range(3):
        new_case(customer, channel)
    assert sweep(START + timedelta(hours=3)).ladder["escalated"] == 2
    assert sweep(START + timedelta(hours=3, minutes=1)).ladder["escalated"] == 1


# --- the indexes ---------------------------------------------------------------------------


@pytest.fixture
def swept_table(customer, department):
    """Two thousand running cases, a few at risk or breached, with fresh planner statistics."""
    rows = []
    for i in range(2000):
        due = START + timedelta(minutes=5 + i)  # most are far from due
        state = "ok"
        if i % 100 == 0:
            due = START - timedelta(minutes=1)
        elif i % 50 == 0:
            state, due = "breached", START - timedelta(minutes=30)
        rows.append(
            Case(
                reference=f"C-T{i:05d}", customer=customer, department=department, status="open",
                sla_state=state, due_at=due, at_risk_at=due - timedelta(minutes=15),
            )
        )  # fmt: skip
    Case.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cases_case")
        # Price sequential scans out so a small table shows which index the query can use.
        cursor.execute("SET LOCAL enable_seqscan = off")


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("name", "queryset"),
    [
        ("case_sla_risk_sweep_idx", lambda dept: sla.at_risk_candidates(START)),
        ("case_sla_breach_sweep_idx", lambda dept: sla.breach_candidates(START)),
        ("case_sla_ladder_idx", lambda dept: escalation.ladder_candidates(dept, below=1, due_by=START)),
        ("case_sla_ladder_idx", lambda dept: escalation.ladder_candidates(dept, below=3, due_by=START)),
    ],
)
def test_sweep_queries_use_their_partial_indexes(swept_table, department, name, queryset):
    plan = queryset(department.pk).explain()
    assert f"Index Scan using {name}" in plan or f"Bitmap Index Scan on {name}" in plan, plan


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sweep_skips_a_case_a_service_holds_and_catches_it_next_time(customer, channel):
    import threading

    from django.db import transaction

    held, other = new_case(customer, channel), new_case(customer, channel)
    locked, release = threading.Event(), threading.Event()

    def agent_typing():
        try:
            with transaction.atomic():
                Case.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    worker = threading.Thread(target=agent_typing)
    worker.start()
    try:
        assert locked.wait(timeout=5)
        started = time.perf_counter()
        first = sla.sla_sweep(now=START + timedelta(hours=2))
        waited = time.perf_counter() - started
    finally:
        release.set()
        worker.join(timeout=10)

    assert first.breached == 1 and waited < 5  # did not wait for the lock
    assert Case.objects.get(pk=other.pk).sla_state == Case.SlaState.BREACHED
    assert Case.objects.get(pk=held.pk).sla_state == Case.SlaState.OK
    assert sla.sla_sweep(now=START + timedelta(hours=2, minutes=1)).breached == 1
    assert Case.objects.get(pk=held.pk).sla_state == Case.SlaState.BREACHED
