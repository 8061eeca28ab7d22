"""Triage: explainable scores, priority and category, monitoring, and surges of mentions."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from cases import services, triage
from cases.errors import NotPermitted, ReasonRequired, ServiceError
from cases.models import Case, CaseEvent, Incident, Message, TriageSettings
from tests import factories
from tests.sla.factories import EscalationPathFactory

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def write(customer, channel, text, *, followers=None, verified=False, case=None, at=None, platform_id=None):
    """A customer post arriving through the services, then triaged as the ingest does."""
    identity = factories.IdentityFactory(
        customer=customer,
        kind="x",
        platform_id=platform_id or f"p{customer.pk}",
        follower_count=followers,
        verified=verified,
    )
    case = case or services.case_open(customer=customer, channel=channel)
    message = services.message_add(
        case=case, direction="in", kind="post", text=text, channel=channel, identity=identity,
        is_public=True, sent_at=at or NOW,
    )  # fmt: skip
    result = triage.triage_apply(case=message.case, message=message)
    return Case.objects.get(pk=case.pk), message, result


def test_breakdown_is_stored_on_the_message_and_adds_up(customer, channel):
    text = "Your service is down again and nobody answers. Useless."
    case, message, result = write(customer, channel, text, followers=15_000)

    message.refresh_from_db()
    breakdown = message.triage
    assert breakdown["score"] == result.score == sum(breakdown["points"].values())
    assert (
        breakdown["sentiment"]["compound"] == SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    )
    assert breakdown["intents"] == {"outage": ["is down"]}
    assert breakdown["followers"] == 15_000 and breakdown["points"]["reach"] > 0
    assert "outage (is down)" in breakdown["reasons"]


def test_low_reach_rant_goes_to_monitoring_with_no_clock(customer, channel):
    case, _, result = write(
        customer, channel, "This company is the absolute worst, garbage service", followers=80
    )

    assert (result.category, result.priority, result.monitor) == ("rant", "low", True)
    assert case.status == Case.Status.MONITORING
    assert case.due_at is None and case.sla_state == Case.SlaState.NONE
    status = case.events.get(kind=CaseEvent.Kind.STATUS)
    assert status.after == {"status": "monitoring"} and "monitor" in status.reason and status.actor is None


def test_low_reach_praise_is_monitored_too(customer, channel):
    case, _, result = write(customer, channel, "Love the new app, thank you so much!", followers=12)
    assert result.category == "praise" and case.status == Case.Status.MONITORING


@pytest.mark.parametrize(
    ("followers", "verified", "tier"),
    [(250_000, False, "standard"), (300, True, "standard"), (10, False, "vip")],
)
def test_reach_or_tier_keeps_a_rant_in_the_answer_queue(customer, channel, followers, verified, tier):
    customer.tier = tier
    customer.save()
    case, _, result = write(
        customer, channel, "Absolutely awful, worst service ever", followers=followers, verified=verified
    )
    assert not result.monitor
    assert case.status == Case.Status.NEW
    assert result.points["reach"] + result.points["tier"] > 0


def test_safety_words_make_an_urgent_major_case(customer, channel):
    case, _, result = write(
        customer, channel, "Your engineer left exposed wires, there were sparks. Dangerous!"
    )
    assert result.intents == {"safety": ["sparks", "dangerous"]}
    assert (case.priority, case.category) == ("urgent", "major")
    priority = case.events.get(kind=CaseEvent.Kind.PRIORITY)
    assert priority.before == {"priority": "normal"} and priority.after == {"priority": "urgent"}
    assert priority.reason.startswith(f"Triage score {result.score}")


def test_refund_request_is_a_minor_issue(customer, channel):
    case, _, result = write(customer, channel, "Please refund my last bill, I was on holiday")
    assert result.intents == {"refund": ["refund"]}
    assert (case.category, case.priority) == ("minor", "normal")
    assert case.status == Case.Status.NEW


def test_keywords_match_whole_words_only(customer, channel):
    _, _, result = write(customer, channel, "Courteous staff, sued nobody, suede shoes")
    assert "legal" not in result.intents


def test_a_question_is_a_question(customer, channel):
    case, _, result = write(customer, channel, "How do I change my plan")
    assert result.category == "question" and case.category == "question"
    assert case.priority == "normal" and case.status == Case.Status.NEW


def test_admins_edit_the_keyword_list(customer, channel):
    TriageSettings.objects.create(intent_keywords={"outage": ["broadband"], "billing": ["invoice"]})
    _, _, result = write(customer, channel, "No broadband since Tuesday, where is my invoice")
    assert result.intents == {"outage": ["broadband"], "billing": ["invoice"]}
    assert result.points["intent"] == 25 + triage.DEFAULT_INTENT_POINTS


def test_repeat_contacts_in_the_window_raise_the_score(customer, channel):
    other = services.case_open(customer=customer, channel=channel)
    for days in (1, 2, 5):  # the third is outside the default three-day window
        services.message_add(
            case=other,
            direction="in",
            kind="dm",
            text="hi",
            channel=channel,
            sent_at=NOW - timedelta(days=days),
        )
    _, _, result = write(customer, channel, "Still waiting for an engineer")
    assert result.repeat_contacts == 2
    assert result.points["repeat"] == 2 * triage.REPEAT_POINTS


def test_triage_never_lowers_priority(customer, channel, agent):
    case = services.case_open(customer=customer, channel=channel, priority="urgent")
    case, _, result = write(customer, channel, "Thanks, all sorted now, great job!", case=case, followers=5)
    assert result.priority == "low"
    assert case.priority == "urgent"
    assert not case.events.filter(kind=CaseEvent.Kind.PRIORITY).exists()


def test_triage_to_urgent_tightens_the_running_response_clock(customer, channel):
    channel.promise.priority_overrides = {"urgent": {"first_response_minutes": 10}}
    channel.promise.save()
    case, _, _ = write(customer, channel, "There is smoke coming from the router, is it unsafe?")
    assert case.priority == "urgent"
    assert case.first_response_due_at == NOW + timedelta(minutes=10)
    assert case.due_at == NOW + timedelta(minutes=10)


def test_monitored_customer_asking_a_question_comes_back_to_the_queue(customer, channel):
    case, _, _ = write(customer, channel, "Worst. Company. Ever. Awful.", followers=10)
    assert case.status == Case.Status.MONITORING

    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        case, _, result = write(
            customer, channel, "Can anyone there tell me when my line will be fixed?", case=case,
            at=NOW + timedelta(hours=1), platform_id=f"p{customer.pk}-2",
        )  # fmt: skip

    assert result.category == "question"
    assert case.status == Case.Status.OPEN
    assert case.first_response_due_at == NOW + timedelta(hours=2)
    assert list(case.events.filter(kind="status").values_list("after", flat=True)) == [
        {"status": "monitoring"},
        {"status": "open"},
    ]


def test_agents_move_cases_between_respond_and_monitor_with_a_reason(case, agent):
    with pytest.raises(ReasonRequired):
        triage.case_monitor(case=case, actor=agent, reason="")
    triage.case_monitor(case=case, actor=agent, reason="Venting about the weather")
    case.refresh_from_db()
    assert case.status == Case.Status.MONITORING and case.due_at is None

    triage.case_respond(case=case, actor=agent, reason="Asked for a callback")
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and case.first_response_due_at == NOW + timedelta(minutes=60)
    reasons = list(case.events.filter(kind="status").values_list("reason", flat=True))
    assert reasons == ["Venting about the weather", "Asked for a callback"]
    with pytest.raises(ServiceError):
        triage.case_respond(case=case, actor=agent, reason="Again")


def test_an_outsider_cannot_change_monitoring(case, other_department):
    outsider = factories.UserFactory(username="outsider")
    factories.MembershipFactory(user=outsider, department=other_department)
    with pytest.raises(NotPermitted):
        triage.case_monitor(case=case, actor=outsider, reason="Not mine")


def test_quiet_monitored_cases_are_closed(customer, channel):
    quiet, _, _ = write(
        customer, channel, "Worst company ever, awful", followers=3, at=NOW - timedelta(days=8)
    )
    other = factories.CustomerFactory()
    recent, _, _ = write(other, channel, "Worst company ever, awful", followers=3, at=NOW - timedelta(days=2))
    assert quiet.status == recent.status == Case.Status.MONITORING

    assert triage.monitoring_autoclose() == 1

    assert Case.objects.get(pk=quiet.pk).status == Case.Status.CLOSED
    assert Case.objects.get(pk=recent.pk).status == Case.Status.MONITORING
    assert "7 days" in Case.objects.get(pk=quiet.pk).events.get(kind="status", after__status="closed").reason


def test_category_path_escalates_after_triage(customer, channel, department, other_department):
    EscalationPathFactory(
        from_department=department, to_department=other_department, trigger="category", category="major"
    )
    case, _, _ = write(customer, channel, "Total outage in my street since this morning")
    assert case.department == other_department
    assert case.events.get(kind=CaseEvent.Kind.ESCALATED).reason == "Category is major issue"


def test_only_customer_messages_are_triaged(case, agent, channel):
    reply = services.message_add(
        case=case, direction="out", kind="dm", text="Hi", channel=channel, author=agent
    )
    with pytest.raises(ServiceError) as exc:
        triage.triage_apply(case=case, message=reply)
    assert exc.value.field == "message"


# --- surges ------------------------------------------------------------------------------


def mentions(channel, count, *, start, minutes, prefix, cases=None):
    """``count`` customer posts on ``channel`` spread over ``minutes`` from ``start``.

    One new case each, unless ``cases`` (a number) says how many cases they share.
    """
    customers = factories.CustomerFactory.create_batch(cases or count)
    department = channel.department
    made = Case.objects.bulk_create(
        [
            Case(reference=f"C-{prefix}{i:04d}", customer=c, department=department)
            for i, c in enumerate(customers)
        ]
    )
    step = timedelta(minutes=minutes) / count
    Message.objects.bulk_create(
        [
            Message(
                case=made[i % len(made)], channel=channel, direction="in", kind="post", is_public=True,
                text="down?", sent_at=start + step * i,
            )
            for i in range(count)
        ]
    )  # fmt: skip
    return made


def test_a_burst_of_200_mentions_in_10_minutes_opens_exactly_one_incident(channel):
    # a quiet day before: 48 mentions in 24 hours, one per half hour
    mentions(channel, 48, start=NOW - timedelta(hours=24), minutes=24 * 60 - 1, prefix="Q", cases=5)
    burst = mentions(channel, 200, start=NOW, minutes=10, prefix="B")

    opened = []
    for minute in range(1, 16):  # the beat runs surge detection every minute
        opened += triage.surge_detect(now=NOW + timedelta(minutes=minute))

    assert len(opened) == 1 and Incident.objects.count() == 1
    incident = Incident.objects.get()
    assert incident.channel == channel and incident.status == Incident.Status.OPEN
    assert incident.baseline == pytest.approx(48 / 288, abs=0.01)
    assert set(incident.cases.values_list("pk", flat=True)) == {c.pk for c in burst}


def test_no_incident_below_the_minimum_or_the_factor(channel, department):
    mentions(channel, 19, start=NOW - timedelta(minutes=4), minutes=4, prefix="S")
    assert triage.surge_detect(now=NOW) == []

    busy = factories.ChannelFactory(kind="facebook", slug="busy-page", department=department)
    # a busy page: 30 per five minutes all day, 60 now (2x, not 4x)
    mentions(
        busy, 30 * 288, start=NOW - timedelta(hours=24, minutes=5), minutes=24 * 60, prefix="D", cases=20
    )
    mentions(busy, 60, start=NOW - timedelta(minutes=4), minutes=4, prefix="N", cases=20)
    assert triage.surge_detect(now=NOW) == []
    assert not Incident.objects.exists()


def test_supervisors_hear_of_a_new_incident(channel, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "channels_app.publish.publish", lambda *, event, groups: sent.append((event, list(groups)))
    )
    mentions(channel, 25, start=NOW - timedelta(minutes=4), minutes=4, prefix="A")
    with django_capture_on_commit_callbacks(execute=True):
        (incident,) = triage.surge_detect(now=NOW)
    assert sent == [
        (
            {
                "type": "incident.opened",
                "incident_id": incident.pk,
                "channel_id": channel.pk,
                "mention_count": 25,
                "baseline": 0.0,
            },
            ["supervisors"],
        )
    ]


def test_one_public_reply_to_every_case_of_an_incident(channel, agent, supervisor):
    cases = mentions(channel, 21, start=NOW - timedelta(minutes=4), minutes=4, prefix="R")
    for case in cases:
        factories.IdentityFactory(customer=case.customer, kind="x")
    (incident,) = triage.surge_detect(now=NOW)

    replies = triage.incident_reply(
        incident=incident, author=agent, text="We know about the outage and are on it."
    )

    assert len(replies) == 21 and {r.case_id for r in replies} == {c.pk for c in cases}
    assert all(r.is_public and r.delivery_state == "queued" and r.reply_to_id for r in replies)
    assert Case.objects.filter(pk__in=[c.pk for c in cases], first_responded_at__isnull=False).count() == 21

    with pytest.raises(NotPermitted):
        triage.incident_close(incident=incident, actor=agent)
    triage.incident_close(incident=incident, actor=supervisor)
    assert Incident.objects.get().status == Incident.Status.CLOSED
