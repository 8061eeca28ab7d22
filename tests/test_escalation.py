"""Escalation along paths, hand-back and acceptance, and bulk reassignment with its rules."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases import escalation, services
from cases.errors import NotPermitted, ReasonRequired, ServiceError
from cases.models import Case, CaseEvent, Membership
from tests import factories
from tests.sla.factories import EscalationPathFactory


@pytest.fixture
def billing(other_department):
    return other_department


@pytest.fixture
def billing_agent(billing):
    user = factories.UserFactory(username="billing-agent")
    factories.MembershipFactory(user=user, department=billing)
    return user


@pytest.fixture
def billing_supervisor(billing):
    user = factories.UserFactory(username="billing-super")
    factories.MembershipFactory(user=user, department=billing, role=Membership.Role.SUPERVISOR)
    return user


@pytest.fixture
def sent(monkeypatch):
    out = []
    monkeypatch.setattr(
        "channels_app.publish.publish", lambda *, event, groups: out.extend((event, g) for g in groups)
    )
    return out


def fresh(case):
    return Case.objects.get(pk=case.pk)


# --- case_escalate ---------------------------------------------------------------------------


def test_escalate_needs_a_reason(case, agent, department, billing):
    EscalationPathFactory(from_department=department, to_department=billing)
    for reason in ("", "   "):
        with pytest.raises(ReasonRequired) as exc:
            escalation.case_escalate(case=case, actor=agent, reason=reason)
        assert exc.value.field == "reason"
    assert fresh(case).department == department


def test_escalate_without_a_path_is_refused(case, agent):
    with pytest.raises(ServiceError) as exc:
        escalation.case_escalate(case=case, actor=agent, reason="Needs billing")
    assert exc.value.code == "no_escalation_path"


def test_escalate_moves_to_the_paths_department_keeping_the_customers_clock(
    case, agent, department, billing, billing_supervisor, django_capture_on_commit_callbacks, sent
):
    EscalationPathFactory(from_department=department, to_department=billing)
    services.case_claim(case=case, actor=agent)
    clock = Case.objects.values("due_at", "first_response_due_at", "sla_state").get(pk=case.pk)

    with django_capture_on_commit_callbacks(execute=True):
        escalation.case_escalate(case=case, actor=agent, reason="Charged twice", note="See the March invoice")

    case = fresh(case)
    assert case.department == billing and case.assignee is None
    assert agent in case.followers.all()
    assert case.handoff_note == "See the March invoice"
    assert Case.objects.values("due_at", "first_response_due_at", "sla_state").get(pk=case.pk) == clock
    event = case.events.get(kind=CaseEvent.Kind.ESCALATED)
    assert (event.actor, event.reason) == (agent, "Charged twice")
    assert event.before["department"] == department.pk and event.after["department"] == billing.pk
    # the receiving department's supervisors hear about it, and the old department sees it leave
    escalated = {g for e, g in sent if e["type"] == "case.escalated"}
    assert escalated == {f"user.{billing_supervisor.pk}", "supervisors"}
    assert any(e["type"] == "case.left" and g == f"dept.{department.pk}" for e, g in sent)


def test_escalate_takes_the_lowest_active_matching_level(case, agent, department, billing):
    tech = factories.DepartmentFactory(slug="tech")
    legal = factories.DepartmentFactory(slug="legal")
    closed = factories.DepartmentFactory(slug="closed-team", is_active=False)
    EscalationPathFactory(from_department=department, to_department=closed, order=0)
    EscalationPathFactory(from_department=department, to_department=legal, order=1, is_active=False)
    EscalationPathFactory(from_department=department, to_department=tech, order=3)
    EscalationPathFactory(from_department=department, to_department=billing, order=2)

    escalation.case_escalate(case=case, actor=agent, reason="Level two")
    assert fresh(case).department == billing


def test_trigger_paths_apply_only_when_they_match(case, agent, department, billing):
    vip = factories.DepartmentFactory(slug="priority-desk")
    complaints = factories.DepartmentFactory(slug="complaints")
    breach_team = factories.DepartmentFactory(slug="breach-team")
    EscalationPathFactory(
        from_department=department, to_department=vip, trigger="priority", priority_threshold="high"
    )
    EscalationPathFactory(
        from_department=department, to_department=complaints, trigger="category", category="major", order=2
    )
    EscalationPathFactory(
        from_department=department, to_department=breach_team, trigger="sla_breach", order=3
    )
    EscalationPathFactory(from_department=department, to_department=billing, order=9)

    assert escalation.next_path(case).to_department == billing
    case.category = "major"
    assert escalation.next_path(case).to_department == complaints
    case.sla_state = Case.SlaState.BREACHED
    case.category = ""
    assert escalation.next_path(case).to_department == breach_team
    case.priority = "urgent"
    assert escalation.next_path(case).to_department == vip
    case.priority = "normal"
    case.sla_state = Case.SlaState.OK
    assert escalation.next_path(case).to_department == billing


def test_automatic_escalation_on_priority(case, department, billing):
    EscalationPathFactory(
        from_department=department, to_department=billing, trigger="priority", priority_threshold="urgent"
    )
    assert escalation.escalate_if_triggered(case=case) is None
    services.case_set_priority(case=case, priority="urgent", actor=None)

    escalation.escalate_if_triggered(case=fresh(case))

    case = fresh(case)
    assert case.department == billing
    event = case.events.get(kind=CaseEvent.Kind.ESCALATED)
    assert event.actor is None and event.reason == "Priority is urgent"


def test_an_outsider_cannot_escalate(case, department, billing, billing_agent):
    EscalationPathFactory(from_department=department, to_department=billing)
    with pytest.raises(NotPermitted):
        escalation.case_escalate(case=case, actor=billing_agent, reason="Mine now")
    assert fresh(case).department == department


# --- hand back and accept ------------------------------------------------------------------


def test_receiving_department_hands_back_with_a_reason(case, agent, department, billing, billing_agent):
    EscalationPathFactory(from_department=department, to_department=billing)
    escalation.case_escalate(case=case, actor=agent, reason="Refund")

    with pytest.raises(ReasonRequired):
        escalation.case_handback(case=fresh(case), actor=billing_agent, reason=" ")
    # an agent of the sending department cannot bounce it back themselves
    with pytest.raises(NotPermitted):
        escalation.case_handback(case=fresh(case), actor=agent, reason="Undo")

    escalation.case_handback(
        case=fresh(case), actor=billing_agent, reason="No charge found", note="Ask for the invoice"
    )

    case = fresh(case)
    assert case.department == department and case.assignee is None
    assert case.handoff_note == "Ask for the invoice"
    event = case.events.get(kind=CaseEvent.Kind.HANDED_BACK)
    assert (event.actor, event.reason) == (billing_agent, "No charge found")
    assert event.before["department"] == billing.pk and event.after["department"] == department.pk


def test_a_case_that_was_never_handed_over_cannot_be_handed_back(case, agent):
    with pytest.raises(ServiceError) as exc:
        escalation.case_handback(case=case, actor=agent, reason="Not ours")
    assert exc.value.code == "no_handoff"


def test_a_handed_back_case_cannot_be_bounced_again(case, agent, department, billing, billing_agent):
    EscalationPathFactory(from_department=department, to_department=billing)
    escalation.case_escalate(case=case, actor=agent, reason="Refund")
    escalation.case_handback(case=fresh(case), actor=billing_agent, reason="Not billing")
    with pytest.raises(ServiceError):
        escalation.case_handback(case=fresh(case), actor=agent, reason="Yes it is")


def test_accepting_a_hand_over_records_it_and_claims_the_case(
    case, agent, department, billing, billing_agent
):
    EscalationPathFactory(from_department=department, to_department=billing)
    escalation.case_escalate(case=case, actor=agent, reason="Refund")
    assert escalation.handoff_pending(fresh(case))
    with pytest.raises(NotPermitted):
        escalation.case_accept(case=fresh(case), actor=agent)

    escalation.case_accept(case=fresh(case), actor=billing_agent, note="Looking at it")

    case = fresh(case)
    assert case.assignee == billing_agent
    assert not escalation.handoff_pending(case)
    accepted = case.events.get(kind=CaseEvent.Kind.ACCEPTED)
    assert (accepted.actor, accepted.reason) == (billing_agent, "Looking at it")
    assert accepted.before == {"department": department.pk}
    with pytest.raises(ServiceError):
        escalation.case_accept(case=case, actor=billing_agent)


# --- bulk reassignment ---------------------------------------------------------------------


@pytest.fixture
def cases(customer, channel):
    return [services.case_open(customer=customer, channel=channel, subject=f"Case {i}") for i in range(3)]


def test_supervisor_moves_many_cases_across_departments(
    cases, agent, supervisor, billing, billing_agent, department
):
    services.case_assign(case=cases[0], assignee=agent, actor=supervisor)

    escalation.case_bulk_reassign(
        cases=cases, to_department=billing, assignee=billing_agent, actor=supervisor, reason="Billing backlog"
    )

    for case in cases:
        case = fresh(case)
        assert (case.department, case.assignee) == (billing, billing_agent)
        event = case.events.get(kind=CaseEvent.Kind.TRANSFERRED)
        assert (event.actor, event.reason) == (supervisor, "Billing backlog")
        assert event.before["department"] == department.pk
        assert event.after == {"department": billing.pk, "assignee": billing_agent.pk, "note": ""}
    assert agent in fresh(cases[0]).followers.all()


def test_agent_reassigns_within_the_department(cases, agent, other_agent):
    escalation.case_bulk_reassign(cases=cases, assignee=other_agent, actor=agent, reason="Holiday cover")
    assert all(fresh(c).assignee == other_agent for c in cases)
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.ASSIGNED, actor=agent).count() == 3


def test_agent_cannot_move_cases_to_another_department(cases, agent, billing):
    with pytest.raises(NotPermitted) as exc:
        escalation.case_bulk_reassign(cases=cases, to_department=billing, actor=agent, reason="Not mine")
    assert cases[0].reference in str(exc.value)
    assert {fresh(c).department_id for c in cases} == {cases[0].department_id}


def test_one_refused_case_refuses_the_whole_batch(
    cases, agent, other_agent, supervisor, billing, customer, channel
):
    foreign = services.case_open(customer=customer, channel=channel, department=billing)
    with pytest.raises(NotPermitted) as exc:
        escalation.case_bulk_reassign(
            cases=[*cases, foreign], assignee=other_agent, actor=agent, reason="Cover"
        )
    assert foreign.reference in str(exc.value) and cases[0].reference not in str(exc.value)
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.ASSIGNED).exists()


def test_assignee_must_belong_to_the_target_department(cases, supervisor, other_agent, billing):
    with pytest.raises(NotPermitted):
        escalation.case_bulk_reassign(
            cases=cases, to_department=billing, assignee=other_agent, actor=supervisor, reason="Move"
        )


def test_bulk_reassign_needs_a_reason_and_a_target(cases, supervisor, billing):
    with pytest.raises(ReasonRequired):
        escalation.case_bulk_reassign(cases=cases, to_department=billing, actor=supervisor, reason="")
    with pytest.raises(ServiceError) as exc:
        escalation.case_bulk_reassign(cases=cases, actor=supervisor, reason="Tidy")
    assert exc.value.field == "to_department"
    with pytest.raises(ServiceError) as exc:
        escalation.case_bulk_reassign(cases=[], to_department=billing, actor=supervisor, reason="Tidy")
    assert exc.value.field == "cases"


def test_bulk_reassign_costs_the_same_queries_for_3_or_12_cases(
    customer, channel, supervisor, billing, billing_agent
):
    def run(count):
        batch = [services.case_open(customer=customer, channel=channel) for _ in range(count)]
        # fresh user objects: permissions cache memberships per user object
        actor, assignee = (type(u).objects.get(pk=u.pk) for u in (supervisor, billing_agent))
        with CaptureQueriesContext(connection) as ctx:
            escalation.case_bulk_reassign(
                cases=batch, to_department=billing, assignee=assignee, actor=actor, reason="Move"
            )
        return len(ctx.captured_queries)

    # savepoint, lock, memberships of actor and assignee, one update, one events insert, release
    assert run(3) == run(12) == 7


def test_bulk_reassign_announces_each_case_to_both_departments(
    cases, supervisor, billing, department, django_capture_on_commit_callbacks, sent
):
    with django_capture_on_commit_callbacks(execute=True):
        escalation.case_bulk_reassign(cases=cases, to_department=billing, actor=supervisor, reason="Move")
    by_group = {g: e for e, g in sent if e["type"] == "cases.reassigned"}
    ids = sorted(c.pk for c in cases)
    assert sorted(by_group[f"dept.{department.pk}"]["case_ids"]) == ids
    assert sorted(by_group[f"dept.{billing.pk}"]["case_ids"]) == ids
    assert all(f"case.{pk}" in by_group for pk in ids)
