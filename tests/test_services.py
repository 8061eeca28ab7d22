import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from cases import services
from cases.errors import AlreadyClaimed, NotPermitted, ReasonRequired
from cases.models import Case, CaseEvent, EscalationPath, Message
from tests import factories


def kinds(case):
    return list(case.events.order_by("id").values_list("kind", flat=True))


def test_case_open_writes_created_event_and_reference(customer, channel):
    case = services.case_open(customer=customer, channel=channel)

    assert case.reference.startswith("C-") and len(case.reference) == 8
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


# --- merging cases and splitting a message off ----------------------------------------------------


def _customer_writes(case, channel, identity, text, *, at, external_id, reply_to=None):
    return services.message_add(
        case=case,
        direction="in",
        kind="post",
        text=text,
        channel=channel,
        identity=identity,
        is_public=True,
        external_id=external_id,
        sent_at=at,
        reply_to=reply_to,
    )


@pytest.fixture
def two_cases(customer, channel, identity, agent):
    """``first`` was answered; ``second`` (opened earlier) has an unanswered post with a photo."""
    from cases.models import Attachment

    start = timezone.now() - timedelta(minutes=30)
    second = services.case_open(customer=customer, channel=channel, subject="Second")
    early = _customer_writes(second, channel, identity, "Still no signal", at=start, external_id="s1")
    Attachment.objects.create(message=early, external_url="https://x.test/p.jpg", filename="p.jpg")
    first = services.case_open(customer=customer, channel=channel, subject="First")
    _customer_writes(
        first, channel, identity, "Router broken", at=start + timedelta(minutes=5), external_id="f1"
    )
    services.message_add(
        case=first, direction="out", kind="post", text="On it", channel=channel, author=agent,
        sent_at=start + timedelta(minutes=10),
    )  # fmt: skip
    first.refresh_from_db()
    second.refresh_from_db()
    return first, second, early, start


def test_case_merge_moves_the_timeline_and_closes_the_source(two_cases, agent, channel):
    first, second, early, start = two_cases
    second_events = set(second.events.values_list("pk", flat=True))
    assert first.first_response_due_at is None  # answered

    target = services.case_merge(source=second, target=first, actor=agent, reason="Same outage")

    second.refresh_from_db()
    assert set(target.messages.values_list("external_id", flat=True)) == {"s1", "f1", ""}
    assert Message.objects.get(attachments__filename="p.jpg").case_id == first.pk
    assert second_events <= set(target.events.values_list("pk", flat=True))
    assert second.status == Case.Status.CLOSED and not second.messages.exists()
    assert kinds(second) == ["merged", "status"]
    merged = target.events.filter(kind="merged").get()
    assert merged.actor == agent and merged.before["messages"] == [early.pk]
    assert merged.after["case"] == first.pk and "Same outage" in merged.reason
    # the customer's first message is now the source's, answered after it: no response owed
    assert target.first_inbound_at == start
    assert target.first_responded_at == start + timedelta(minutes=10)
    assert target.first_response_due_at is None and target.next_response_due_at is None


def test_case_merge_owes_the_answer_the_source_owed(two_cases, agent, channel, identity):
    first, second, early, start = two_cases
    later = _customer_writes(
        second, channel, identity, "Hello??", at=start + timedelta(minutes=20), external_id="s2"
    )

    target = services.case_merge(source=second, target=first, actor=agent, reason="Same outage")

    # the answer at +10 min came before the follow-up at +20: a next response is owed from it
    assert target.next_response_due_at == later.sent_at + timedelta(minutes=60)
    assert target.due_at is not None and target.sla_state == Case.SlaState.OK
    assert target.resolution_due_at == min(first.resolution_due_at, second.resolution_due_at)


def test_case_merge_takes_the_higher_priority_and_opens_a_waiting_target(two_cases, agent, channel, identity):
    first, second, early, start = two_cases
    services.case_set_priority(case=second, priority="urgent", actor=agent)
    Case.objects.filter(pk=second.pk).update(category="major")
    services.case_set_status(case=first, status="waiting_on_customer", actor=agent)
    _customer_writes(second, channel, identity, "Any news?", at=timezone.now(), external_id="s3")
    second.refresh_from_db()

    target = services.case_merge(source=second, target=first, actor=agent, reason="Same outage")

    assert target.priority == "urgent" and target.status == Case.Status.OPEN and target.category == "major"
    changes = target.events.filter(
        kind__in=["status", "priority", "category"], reason__startswith="Merged with"
    )
    assert {(e.kind, str(e.after)) for e in changes} == {
        ("status", "{'status': 'open'}"),
        ("priority", "{'priority': 'urgent'}"),
        ("category", "{'category': 'major'}"),
    }
    assert target.next_response_due_at is not None


def test_case_merge_refusals(two_cases, agent, other_department, channel):
    from cases.errors import ServiceError

    first, second, _, _ = two_cases
    with pytest.raises(ReasonRequired):
        services.case_merge(source=second, target=first, actor=agent, reason="  ")
    with pytest.raises(ServiceError) as itself:
        services.case_merge(source=first, target=first, actor=agent, reason="x")
    assert itself.value.field == "source_id"
    outsider = factories.UserFactory(username="outsider")
    factories.MembershipFactory(user=outsider, department=other_department)
    with pytest.raises(NotPermitted):
        services.case_merge(source=second, target=first, actor=outsider, reason="x")
    services.case_set_status(case=first, status="resolved", actor=agent)
    with pytest.raises(ServiceError, match="reopen it first"):
        services.case_merge(source=second, target=first, actor=agent, reason="x")
    assert second.messages.count() == 1  # nothing moved


def test_case_merge_across_customers_keeps_each_message_identity(case, channel, agent, department):
    other = factories.IdentityFactory(kind="x", platform_id="999")
    theirs = services.case_open(customer=other.customer, channel=channel)
    message = _customer_writes(theirs, channel, other, "Me too", at=timezone.now(), external_id="o1")

    services.case_merge(source=theirs, target=case, actor=agent, reason="Same household")

    message.refresh_from_db()
    assert message.case_id == case.pk and message.identity_id == other.pk
    merged = case.events.get(kind="merged")
    assert merged.before["customer"] == other.customer_id and merged.after["customer"] == case.customer_id


def test_merge_and_split_are_integrator_events(two_cases, agent, case, thread):
    from connectors.models import WebhookDelivery, WebhookSubscription

    WebhookSubscription.objects.create(
        name="CRM",
        url="https://crm.example.test/hook",
        event_types=["case.merged", "case.split"],
        signing_salt="s",
    )
    first, second, _, _ = two_cases
    post, reply, answer = thread

    services.case_merge(source=second, target=first, actor=agent, reason="Same outage")
    new = services.message_split(message=post, actor=agent, reason="Billing is separate")

    merged = WebhookDelivery.objects.get(event_type="case.merged").payload["data"]
    assert (merged["id"], merged["merged_case_id"], merged["merged_reference"]) == (
        first.pk,
        second.pk,
        second.reference,
    )
    split = WebhookDelivery.objects.get(event_type="case.split").payload["data"]
    assert (split["id"], split["split_from_case_id"]) == (new.pk, case.pk)
    assert split["message_ids"] == [post.pk, reply.pk, answer.pk]


def test_case_merge_publishes_both_cases_after_commit(
    two_cases, agent, django_capture_on_commit_callbacks, monkeypatch
):
    first, second, _, _ = two_cases
    sent = []
    monkeypatch.setattr("channels_app.publish.publish", lambda *, event, groups: sent.append((event, groups)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.case_merge(source=second, target=first, actor=agent, reason="Same outage")
    assert sent == []
    for callback in callbacks:
        callback()
    merged = {e["case_id"] for e, _ in sent if e.get("change") == "merged"}
    assert merged == {first.pk, second.pk}


@pytest.fixture
def thread(case, channel, identity, agent):
    """On ``case``: the first tweet, then another topic: a post, our reply to it and the customer's answer."""
    start = timezone.now() - timedelta(minutes=20)
    post = _customer_writes(
        case, channel, identity, "Also my bill is wrong\nDetails", at=start, external_id="b1"
    )
    reply = services.message_add(
        case=case, direction="out", kind="post", text="Sorry, DM us", channel=channel, author=agent,
        reply_to=post, sent_at=start + timedelta(minutes=1),
    )  # fmt: skip
    answer = _customer_writes(
        case, channel, identity, "Done", at=start + timedelta(minutes=2), external_id="b2", reply_to=reply
    )
    services.note_add(case=case, author=agent, text="Billing issue too")
    case.refresh_from_db()
    return post, reply, answer


def test_message_split_moves_the_thread_to_a_new_case(case, thread, agent, channel):
    post, reply, answer = thread
    first = case.messages.get(external_id="t1")

    new = services.message_split(message=post, actor=agent, reason="Billing is separate")

    case.refresh_from_db()
    assert set(new.messages.values_list("pk", flat=True)) == {post.pk, reply.pk, answer.pk}
    assert set(case.messages.filter(direction="in").values_list("pk", flat=True)) == {first.pk}
    assert case.messages.filter(direction="note").count() == 1  # notes stay
    assert new.customer_id == case.customer_id and new.department_id == case.department_id
    assert new.subject == "Also my bill is wrong" and new.status == Case.Status.OPEN
    assert kinds(new) == ["created", "split"] and kinds(case)[-1] == "split"
    event = new.events.get(kind="split")
    assert event.before == {
        "case": case.pk,
        "customer": case.customer_id,
        "messages": [post.pk, reply.pk, answer.pk],
    }
    assert event.actor == agent and "Billing is separate" in event.reason
    # the customer's answer in the new case is unanswered: a next response is owed from it
    assert new.first_responded_at == reply.sent_at
    assert new.next_response_due_at == answer.sent_at + timedelta(minutes=60)
    assert new.resolution_due_at is not None
    # the old case's first tweet is still unanswered: its first response stays owed
    assert case.first_response_due_at == first.sent_at + timedelta(minutes=60)
    assert case.last_inbound_at == first.sent_at


def test_message_split_refusals(case, thread, agent, other_department):
    from cases.errors import ServiceError

    post, reply, _ = thread
    with pytest.raises(ReasonRequired):
        services.message_split(message=post, actor=agent, reason="")
    with pytest.raises(ServiceError, match="customer's message"):
        services.message_split(message=reply, actor=agent, reason="x")
    outsider = factories.UserFactory(username="outsider")
    factories.MembershipFactory(user=outsider, department=other_department)
    with pytest.raises(NotPermitted):
        services.message_split(message=post, actor=outsider, reason="x")
    lone = services.case_open(customer=case.customer, channel=case.origin_channel)
    only = _customer_writes(
        lone, case.origin_channel, post.identity, "Hi", at=timezone.now(), external_id="l1"
    )
    with pytest.raises(ServiceError, match="Nothing would be left"):
        services.message_split(message=only, actor=agent, reason="x")
    assert Case.objects.count() == 2


def test_message_split_emits_case_created(case, thread, agent):
    from connectors.models import WebhookDelivery, WebhookSubscription

    WebhookSubscription.objects.create(
        name="BI", url="https://bi.example.test/hook", event_types=["case.created"], signing_salt="s"
    )
    new = services.message_split(message=thread[0], actor=agent, reason="Billing is separate")
    delivery = WebhookDelivery.objects.get(event_type="case.created")
    assert delivery.payload["data"]["id"] == new.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_cases_merged_into_each_other_at_once_end_as_one(department, channel, customer, identity, agent):
    # given two open cases of one customer, each with a customer message
    start = timezone.now() - timedelta(minutes=5)
    a = services.case_open(customer=customer, channel=channel)
    _customer_writes(a, channel, identity, "One", at=start, external_id="race-a")
    b = services.case_open(customer=customer, channel=channel)
    _customer_writes(b, channel, identity, "Two", at=start, external_id="race-b")
    barrier = threading.Barrier(2)
    results = {}

    def merge(source, target):
        from cases.errors import ServiceError

        try:
            barrier.wait(timeout=5)
            services.case_merge(
                source=Case.objects.get(pk=source.pk),
                target=Case.objects.get(pk=target.pk),
                actor=agent,
                reason="Same thing",
            )
            results[source.pk] = "merged"
        except ServiceError as exc:
            results[source.pk] = exc.message
        finally:
            connection.close()

    # when one agent merges a into b while another merges b into a
    threads = [threading.Thread(target=merge, args=pair) for pair in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    # then one merge wins, the other finds its target closed; both messages are on the open case
    assert sorted(results.values(), key=len)[0] == "merged"
    assert any("reopen it first" in r for r in results.values())
    survivor = Case.objects.exclude(status=Case.Status.CLOSED).get(pk__in=[a.pk, b.pk])
    assert set(survivor.messages.values_list("external_id", flat=True)) == {"race-a", "race-b"}
    assert CaseEvent.objects.filter(kind="merged").count() == 2
