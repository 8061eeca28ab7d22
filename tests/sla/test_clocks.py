"""Service clock rules, each with frozen time, driven through the case services."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from cases import services, sla
from cases.models import Case, CaseEvent, EscalationPath
from tests import factories
from tests.sla.factories import BusinessCalendarFactory

LONDON = ZoneInfo("Europe/London")


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


@pytest.fixture
def email_channel(department):
    ch = factories.ChannelFactory(
        kind="email", name="Support mailbox", slug="support-mail", department=department
    )
    factories.ServicePromiseFactory(
        channel=ch,
        calendar=BusinessCalendarFactory(name="London office"),
        first_response_minutes=240,
        next_response_minutes=240,
        resolution_minutes=3 * 8 * 60,
    )
    return ch


def open_case(customer, channel, at, **kwargs):
    with time_machine.travel(at, tick=False):
        return services.case_open(customer=customer, channel=channel, **kwargs)


def inbound(case, channel, at, text="hello", identity=None):
    with time_machine.travel(at, tick=False):
        services.message_add(
            case=case, direction="in", kind="email" if channel.kind == "email" else "dm", text=text,
            channel=channel, identity=identity, sent_at=at,
        )  # fmt: skip
    case.refresh_from_db()
    return case


def reply(case, channel, agent, at, kind="dm", public=False):
    with time_machine.travel(at, tick=False):
        services.message_add(
            case=case, direction="out", kind=kind, text="On it", channel=channel, author=agent,
            is_public=public, sent_at=at,
        )  # fmt: skip
    case.refresh_from_db()
    return case


def set_status(case, status, agent, at):
    with time_machine.travel(at, tick=False):
        services.case_set_status(case=case, status=status, actor=agent)
    case.refresh_from_db()
    return case


def test_first_response_is_due_on_the_calendar_of_the_first_messages_channel(customer, email_channel):
    # given an e-mail arriving on Friday at 16:00, an hour before the office closes
    case = open_case(customer, email_channel, london(2025, 1, 10, 16, 0))
    inbound(case, email_channel, london(2025, 1, 10, 16, 0))

    # then four working hours run out on Monday at noon, and 75% of them at 11:00
    assert case.first_response_due_at == london(2025, 1, 13, 12, 0)
    assert case.response_risk_at == london(2025, 1, 13, 11, 0)
    # resolution: three eight-hour days from Friday 16:00 -> Wednesday 16:00
    assert case.resolution_due_at == london(2025, 1, 15, 16, 0)
    assert case.due_at == case.first_response_due_at
    assert case.at_risk_at == london(2025, 1, 13, 11, 0)
    assert case.sla_state == Case.SlaState.OK


def test_at_risk_share_is_the_promises_ratio(customer, channel):
    channel.promise.at_risk_ratio = 0.5
    channel.promise.save()
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    assert case.at_risk_at == start + timedelta(minutes=30)


def test_later_messages_do_not_move_the_first_response_clock(customer, channel, email_channel):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    inbound(case, email_channel, start + timedelta(minutes=30))
    inbound(case, channel, start + timedelta(minutes=40))

    assert case.first_response_due_at == start + timedelta(minutes=60)
    assert case.next_response_due_at is None
    assert case.last_channel == channel


def test_follow_up_after_our_answer_uses_the_promise_of_its_channel(customer, channel, email_channel, agent):
    # given a tweet at 10:00 answered on X at 10:20
    case = open_case(customer, channel, london(2025, 1, 7, 10, 0))
    inbound(case, channel, london(2025, 1, 7, 10, 0))
    reply(case, channel, agent, london(2025, 1, 7, 10, 20), kind="post", public=True)
    assert case.first_response_due_at is None and case.first_responded_at == london(2025, 1, 7, 10, 20)

    # when the customer follows up by e-mail at 16:30
    inbound(case, email_channel, london(2025, 1, 7, 16, 30))

    # then the e-mail promise applies: 30 minutes on Tuesday, 210 on Wednesday
    assert case.next_response_due_at == london(2025, 1, 8, 12, 30)
    assert case.last_channel == email_channel
    # the resolution clock stays on the promise of the channel the case began on (24 h on X)
    assert case.due_at == case.resolution_due_at == london(2025, 1, 8, 10, 0)


def test_follow_up_on_another_channel_rebases_a_running_next_response(
    customer, channel, email_channel, agent
):
    case = open_case(customer, channel, london(2025, 1, 7, 9, 0))
    inbound(case, channel, london(2025, 1, 7, 9, 0))
    reply(case, channel, agent, london(2025, 1, 7, 9, 10))

    inbound(case, channel, london(2025, 1, 7, 10, 30))
    assert case.next_response_due_at == london(2025, 1, 7, 11, 30)

    # the conversation moves to e-mail: its promise, counted from the oldest unanswered message
    inbound(case, email_channel, london(2025, 1, 7, 10, 45))
    assert case.next_response_due_at == london(2025, 1, 7, 14, 30)

    # and back to X: the X promise from the same start
    inbound(case, channel, london(2025, 1, 7, 11, 0))
    assert case.next_response_due_at == london(2025, 1, 7, 11, 30)


@pytest.mark.parametrize(
    ("kind", "public"), [("post", True), ("dm", False), ("email", False), ("call", False)]
)
def test_any_outbound_reply_stops_the_response_clock(customer, channel, agent, kind, public):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)

    reply(case, channel, agent, start + timedelta(minutes=5), kind=kind, public=public)

    assert case.first_response_due_at is None and case.response_risk_at is None
    assert case.due_at == case.resolution_due_at == start + timedelta(hours=24)


def test_internal_note_does_not_stop_the_response_clock(customer, channel, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        services.note_add(case=case, author=agent, text="Looking into it")
    case.refresh_from_db()

    assert case.first_response_due_at == start + timedelta(minutes=60)
    assert case.first_responded_at is None


def test_reply_stops_the_next_response_clock_too(customer, channel, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    reply(case, channel, agent, start + timedelta(minutes=5))
    inbound(case, channel, start + timedelta(minutes=30))
    assert case.next_response_due_at == start + timedelta(minutes=90)

    reply(case, channel, agent, start + timedelta(minutes=40))
    assert case.next_response_due_at is None
    assert case.first_responded_at == start + timedelta(minutes=5)


def test_waiting_on_customer_pauses_resolution_and_a_reply_resumes_it(customer, email_channel, agent):
    # given an e-mail on Monday 10:00: resolution due Thursday 10:00 (24 working hours)
    case = open_case(customer, email_channel, london(2025, 1, 13, 10, 0))
    inbound(case, email_channel, london(2025, 1, 13, 10, 0))
    assert case.resolution_due_at == london(2025, 1, 16, 10, 0)
    reply(case, email_channel, agent, london(2025, 1, 13, 11, 0), kind="email")

    # when we wait on the customer from Monday noon
    set_status(case, "waiting_on_customer", agent, london(2025, 1, 13, 12, 0))

    # then no clock runs and 22 working hours are kept
    assert case.resolution_due_at is None and case.due_at is None
    assert case.resolution_remaining_seconds == 22 * 3600
    assert case.sla_state == Case.SlaState.PAUSED

    # when the customer answers on Friday at 15:00, the clock resumes from there
    inbound(case, email_channel, london(2025, 1, 17, 15, 0))
    assert case.status == Case.Status.OPEN
    assert case.resolution_remaining_seconds is None
    # 2 h Friday + 8 Monday + 8 Tuesday + 4 Wednesday
    assert case.resolution_due_at == london(2025, 1, 22, 13, 0)
    # and we owe an answer on the e-mail promise: 2 h Friday + 2 h Monday
    assert case.next_response_due_at == london(2025, 1, 20, 11, 0)
    assert case.sla_state == Case.SlaState.OK


def test_agent_reopening_a_waiting_case_resumes_resolution_without_owing_an_answer(customer, channel, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    reply(case, channel, agent, start + timedelta(minutes=10))
    set_status(case, "waiting_on_customer", agent, start + timedelta(hours=2))
    set_status(case, "open", agent, start + timedelta(hours=50))

    assert case.resolution_due_at == start + timedelta(hours=50 + 22)
    assert case.first_response_due_at is None and case.next_response_due_at is None


def test_monitoring_has_no_clock_and_moving_to_respond_starts_one(customer, channel, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    set_status(case, "monitoring", agent, start + timedelta(minutes=5))
    assert case.due_at is None and case.first_response_due_at is None
    assert case.sla_state == Case.SlaState.NONE

    # customers writing into a monitored case start nothing
    inbound(case, channel, start + timedelta(hours=3))
    assert case.status == Case.Status.MONITORING and case.due_at is None

    # an agent decides it needs an answer: the first response is owed from that moment
    set_status(case, "open", agent, start + timedelta(hours=5))
    assert case.first_response_due_at == start + timedelta(hours=6)
    assert case.resolution_due_at == start + timedelta(hours=5, minutes=24 * 60 - 5)
    assert case.due_at == case.first_response_due_at


def test_reopening_a_resolved_case_resumes_the_resolution_clock(customer, channel, identity, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    reply(case, channel, agent, start + timedelta(minutes=10))
    set_status(case, "resolved", agent, start + timedelta(hours=2))
    assert case.due_at is None and case.resolution_remaining_seconds == 22 * 3600

    inbound(case, channel, start + timedelta(days=2), identity=identity)

    assert case.status == Case.Status.OPEN
    assert case.resolution_due_at == start + timedelta(days=2, hours=22)
    assert case.next_response_due_at == start + timedelta(days=2, hours=1)


def test_transfer_and_escalation_keep_the_customers_clock(customer, channel, agent, other_department):
    EscalationPath.objects.create(from_department=channel.department, to_department=other_department)
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    before = Case.objects.values("due_at", "at_risk_at", "first_response_due_at", "resolution_due_at").get(
        pk=case.pk
    )

    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        services.case_transfer(case=case, to_department=other_department, actor=agent, reason="Refund")

    after = Case.objects.values("due_at", "at_risk_at", "first_response_due_at", "resolution_due_at").get(
        pk=case.pk
    )
    assert after == before


def test_time_in_department_is_counted_from_the_last_move(customer, channel, agent, other_department):
    EscalationPath.objects.create(from_department=channel.department, to_department=other_department)
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    assert sla.department_clock(case, now=start + timedelta(minutes=10)).since == start

    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        services.case_transfer(case=case, to_department=other_department, actor=agent, reason="Refund")
    case.refresh_from_db()

    clock = sla.department_clock(case, now=start + timedelta(minutes=50))
    assert clock.department_id == other_department.pk
    assert clock.since == start + timedelta(minutes=20)
    assert clock.elapsed == clock.working == timedelta(minutes=30)
    annotated = sla.department_entered_at(Case.objects.filter(pk=case.pk)).get()
    assert annotated.department_since == clock.since
    # the customer's clock still counts from the first message
    assert case.first_response_due_at == start + timedelta(minutes=60)


def test_department_working_time_follows_the_channels_calendar(customer, email_channel):
    case = open_case(customer, email_channel, london(2025, 1, 10, 16, 0))
    clock = sla.department_clock(case, now=london(2025, 1, 13, 10, 0))
    assert clock.elapsed == timedelta(days=2, hours=18)
    assert clock.working == timedelta(hours=2)


def test_priority_override_sets_tighter_targets(customer, channel):
    channel.promise.priority_overrides = {"urgent": {"first_response_minutes": 15, "resolution_minutes": 240}}
    channel.promise.save()
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start, priority="urgent"), channel, start)

    assert case.first_response_due_at == start + timedelta(minutes=15)
    assert case.resolution_due_at == start + timedelta(hours=4)


def test_raising_priority_pulls_a_running_response_clock_in_but_lowering_never_pushes_it_out(
    customer, channel
):
    channel.promise.priority_overrides = {
        "urgent": {"first_response_minutes": 15},
        "low": {"first_response_minutes": 600},
    }
    channel.promise.save()
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    assert case.first_response_due_at == start + timedelta(minutes=60)

    case.priority = "urgent"
    sla.on_priority_change(case, previous="normal", at=start + timedelta(minutes=5))
    assert case.first_response_due_at == case.due_at == start + timedelta(minutes=15)

    case.priority = "low"
    sla.on_priority_change(case, previous="urgent", at=start + timedelta(minutes=6))
    assert case.first_response_due_at == start + timedelta(minutes=15)


def test_a_breach_is_kept_while_overdue_and_cleared_once_answered(customer, channel, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, channel, start), channel, start)
    sla.sla_sweep(now=start + timedelta(minutes=61))
    case.refresh_from_db()
    assert case.sla_state == Case.SlaState.BREACHED

    inbound(case, channel, start + timedelta(minutes=70))
    assert case.sla_state == Case.SlaState.BREACHED

    reply(case, channel, agent, start + timedelta(minutes=75))
    assert case.sla_state == Case.SlaState.OK
    assert case.due_at == start + timedelta(hours=24)
    assert case.breach_step == Case.BreachStep.NONE


def test_services_never_record_a_new_breach_the_sweep_does(customer, channel):
    # a message stamped long ago arrives now: overdue, but flagged by the sweep with its event
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = open_case(customer, channel, start + timedelta(hours=3))
    with time_machine.travel(start + timedelta(hours=3), tick=False):
        services.message_add(case=case, direction="in", kind="dm", channel=channel, sent_at=start)
        case.refresh_from_db()
        assert case.sla_state == Case.SlaState.OK and case.due_at < start + timedelta(hours=3)
        sla.sla_sweep()
    case.refresh_from_db()
    assert case.sla_state == Case.SlaState.BREACHED
    assert case.events.filter(kind=CaseEvent.Kind.SLA).count() == 1


def test_channel_without_a_promise_starts_no_clock(customer, department):
    bare = factories.ChannelFactory(kind="phone", slug="phone-line", department=department)
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = inbound(open_case(customer, bare, start), bare, start)
    assert case.due_at is None and case.sla_state == Case.SlaState.NONE


@pytest.fixture
def phone_channel(department):
    ch = factories.ChannelFactory(
        kind="phone", name="Hotline", slug="hotline", department=department, account_id="+14155550100"
    )
    factories.ServicePromiseFactory(channel=ch, first_response_minutes=30, next_response_minutes=30)
    return ch


def phone_call(channel, call_sid: str, at: datetime, duration: int):
    from cases import ingest
    from connectors.base import InboundMessage

    call = InboundMessage(
        platform="phone", external_id=call_sid, author_id="+14155550199", kind="call", sent_at=at,
        text="Call from +14155550199", call_duration=duration,
    )  # fmt: skip
    with time_machine.travel(at, tick=False):
        return ingest.ingest(channel=channel, inbound=call).case


@pytest.mark.parametrize("duration", [0, 95])
def test_an_answered_call_owes_no_response_and_a_missed_one_does(phone_channel, duration):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)

    case = Case.objects.get(pk=phone_call(phone_channel, "CA1", start, duration).pk)

    if duration:  # someone picked up: the customer was answered as the call began
        assert case.first_responded_at == start
        assert case.first_response_due_at is None and case.response_risk_at is None
    else:  # a missed call waits for a call back
        assert case.first_responded_at is None
        assert case.first_response_due_at == start + timedelta(minutes=30)
    assert case.last_inbound_at == start


def test_an_answered_call_after_our_answer_starts_no_next_response_clock(customer, phone_channel, agent):
    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    case = phone_call(phone_channel, "CA1", start, 0)  # missed
    reply(case, phone_channel, agent, start + timedelta(minutes=10), kind="call")  # we called back
    later = start + timedelta(hours=2)

    case = Case.objects.get(pk=phone_call(phone_channel, "CA2", later, 240).pk)  # they call, we pick up
    assert case.next_response_due_at is None and case.due_at == case.resolution_due_at
    assert case.first_responded_at == start + timedelta(minutes=10)

    # a call an agent logs by hand counts the same
    with time_machine.travel(later + timedelta(hours=1), tick=False):
        services.message_add(
            case=case, direction="in", kind="call", text="Call from the customer", channel=phone_channel,
            author=agent, call_duration=60, sent_at=later + timedelta(hours=1),
        )  # fmt: skip
    case.refresh_from_db()
    assert case.next_response_due_at is None
    missed_at = later + timedelta(hours=2)
    case = Case.objects.get(pk=phone_call(phone_channel, "CA3", missed_at, 0).pk)
    assert case.next_response_due_at == missed_at + timedelta(minutes=30)
