import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from cases import services
from cases.errors import AlreadyClaimed, NotPermitted, ReasonRequired
from cases.models import Case, CaseEvent, EscalationPath
from tests import factories


def kinds(case):
    return list(case.events.order_by("id").values_list("kind", flat=True))


def test_case_open_writes_created_event_and_reference(customer, channel):
    case = services.case_open(customer=customer, channel=channel)

    assert case.reference.startswith("C-") and len(case.reference) == 7
    assert case.department == channel.department
    assert kinds(case) == ["created"]


def test_inbound_message_starts_first_response_clock(case, channel):
    # the fixture case came in on a channel promising an answer within 60 minutes
    first = case.messages.get()
    assert case.first_response_due_at == first.sent_at + timedelta(minutes=60)
    assert case.due_at == case.first_response_due_at
    assert case.sla_state == Case.SlaState.OK
    assert kinds(case) == ["created", "message_in"]


def test_outbound_reply_stops_response_clock_but_note_does_not(case, channel, agent):
    services.note_add(case=case, author=agent, text="Checking the line")
    case.refresh_from_db()
    assert case.first_response_due_at is not None

    services.message_add(
        case=case,
        direction="out",
        kind="post",
        text="Sorry! DM us",
        channel=channel,
        author=agent,
        is_public=True,
    )
    case.refresh_from_db()

    assert case.first_response_due_at is None
    assert case.first_responded_at is not None
    assert case.status == Case.Status.OPEN
    assert kinds(case)[-2:] == ["note", "message_out"]


def test_customer_follow_up_reopens_resolved_case(case, channel, identity, agent):
    services.case_set_status(case=case, status="resolved", actor=agent)
    case.refresh_from_db()
    assert case.due_at is None and case.resolved_at is not None

    services.message_add(
        case=case,
        direction="in",
        kind="dm",
        text="Still broken",
        channel=channel,
        identity=identity,
        external_id="dm-2",
    )
    case.refresh_from_db()

    assert case.status == Case.Status.OPEN
    assert case.resolved_at is None
    assert case.due_at is not None


def test_claim_takes_unassigned_case_and_refuses_a_second_claimant(case, agent, other_agent):
    services.case_claim(case=case, actor=agent)

    with pytest.raises(AlreadyClaimed):
        services.case_claim(case=case, actor=other_agent)
    case.refresh_from_db()
    assert case.assignee == agent
    assert case.events.filter(kind="claimed").count() == 1


def test_claim_outside_own_department_is_refused(case, other_department):
    outsider = factories.UserFactory(username="outsider")
    factories.MembershipFactory(user=outsider, department=other_department)

    with pytest.raises(NotPermitted):
        services.case_claim(case=case, actor=outsider)


def test_transfer_requires_reason_and_keeps_previous_assignee_as_follower(case, agent, other_department):
    EscalationPath.objects.create(from_department=case.department, to_department=other_department)
    services.case_claim(case=case, actor=agent)
    due_before = Case.objects.get(pk=case.pk).due_at

    with pytest.raises(ReasonRequired):
        services.case_transfer(case=case, to_department=other_department, actor=agent, reason="  ")

    services.case_transfer(
        case=case,
        to_department=other_department,
        actor=agent,
        reason="Refund needed",
        note="Customer was charged twice",
    )
    case.refresh_from_db()
    event = case.events.get(kind="transferred")

    assert case.department == other_department
    assert case.assignee is None
    assert agent in case.followers.all()
    assert case.handoff_note == "Customer was charged twice"
    assert case.due_at == due_before  # the customer's clock is not reset
    assert event.actor == agent and event.reason == "Refund needed"
    assert event.before["department"] != event.after["department"]


def test_agent_cannot_transfer_without_a_path_but_supervisor_can(case, agent, supervisor, other_department):
    with pytest.raises(NotPermitted):
        services.case_transfer(case=case, to_department=other_department, actor=agent, reason="Billing")

    services.case_transfer(case=case, to_department=other_department, actor=supervisor, reason="Billing")
    assert Case.objects.get(pk=case.pk).department == other_department


def test_agent_assigns_only_within_the_department(case, agent, other_agent, other_department):
    stranger = factories.UserFactory(username="stranger")
    factories.MembershipFactory(user=stranger, department=other_department)

    services.case_assign(case=case, assignee=other_agent, actor=agent)
    with pytest.raises(NotPermitted):
        services.case_assign(case=case, assignee=stranger, actor=agent)

    assert Case.objects.get(pk=case.pk).assignee == other_agent


def test_status_and_priority_changes_are_audited(case, agent):
    services.case_set_priority(case=case, priority="urgent", actor=agent, reason="Outage")
    services.case_set_status(case=case, status="waiting_on_customer", actor=agent)

    events = {e.kind: e for e in case.events.all()}
    assert events["priority"].before == {"priority": "normal"}
    assert events["priority"].after == {"priority": "urgent"}
    assert events["priority"].reason == "Outage"
    assert events["status"].after == {"status": "waiting_on_customer"}
    assert all(events[k].actor == agent for k in ("priority", "status"))


def test_bad_status_names_the_field(case, agent):
    from cases.errors import ServiceError

    with pytest.raises(ServiceError) as exc:
        services.case_set_status(case=case, status="done", actor=agent)
    assert exc.value.field == "status"


def test_live_event_is_published_only_after_commit(
    case, agent, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("channels_app.publish.publish", lambda *, event, groups: sent.append((event, groups)))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.case_claim(case=case, actor=agent)
    assert sent == []  # nothing leaves before the commit

    for callback in callbacks:
        callback()
    event, groups = sent[-1]
    assert event["type"] == "case.changed" and event["assignee_id"] == agent.pk
    assert f"case.{case.pk}" in groups and f"user.{agent.pk}" in groups


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_agents_claiming_at_once_exactly_one_wins(department, channel, customer):
    # given two agents of the department and one unassigned case
    agents = []
    for name in ("racer1", "racer2"):
        user = factories.UserFactory(username=name)
        factories.MembershipFactory(user=user, department=department)
        agents.append(user)
    case = services.case_open(customer=customer, channel=channel)
    barrier = threading.Barrier(2)
    results = {}

    def claim(user):
        try:
            barrier.wait(timeout=5)
            services.case_claim(case=Case.objects.get(pk=case.pk), actor=user)
            results[user.username] = "won"
        except AlreadyClaimed:
            results[user.username] = "lost"
        finally:
            connection.close()

    # when both claim at the same moment, each on its own database connection
    threads = [threading.Thread(target=claim, args=(u,)) for u in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    # then exactly one wins and the audit trail has exactly one claim
    assert sorted(results.values()) == ["lost", "won"]
    winner = next(name for name, r in results.items() if r == "won")
    case.refresh_from_db()
    assert case.assignee.username == winner
    assert CaseEvent.objects.filter(case=case, kind="claimed").count() == 1
    assert timezone.is_aware(case.updated_at)
