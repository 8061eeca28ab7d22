"""The topics job: counts that match the messages, incremental, once per message and case."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, connections, transaction

from cases import tasks
from cases.demo import seed_demo
from cases.models import Message, TopicState, TopicWeek
from cases.topics import selectors, services
from cases.topics.services import topics_refresh

from .conftest import LAST_WEEK, NOW, THIS_WEEK, oracle, table, write

RUN = {"now": NOW + timedelta(hours=1), "settle": timedelta(0)}


def _filters(**kwargs):
    return selectors.TopicFilters(week=THIS_WEEK, weeks=4, **kwargs)


@pytest.fixture
def demo(db):
    """The demo contact centre, seeded as if it were Thursday 5 March 2026 (its conversations
    end in the six days before), plus a complaint new this week."""
    with time_machine.travel(NOW - timedelta(hours=2), tick=False):
        seed_demo(customers=40, cases=40)
    from connectors.models import Channel

    channel = Channel.objects.filter(kind="x").order_by("pk").first()
    write(channel=channel, text="The app crashes at check-in again", at=NOW - timedelta(days=9))
    for hours in range(1, 7):
        write(
            channel=channel,
            text=f"App crashes at check-in, tried {hours} times",
            at=NOW - timedelta(hours=hours),
        )
    return channel


def test_the_job_on_demo_data_counts_what_the_messages_say_and_finds_rising_phrases(demo):
    # when the job runs over the demo's messages
    result = topics_refresh(**RUN)

    # then every customer message was read, once, and the table agrees with the messages
    inbound = Message.objects.filter(direction="in")
    assert result.messages == inbound.count() > 100
    assert result.last_message_id == inbound.order_by("-pk").first().pk
    # (the oracle reads customer messages only: a counted reply or note would show here)
    assert table() == oracle()
    # the complaint new this week rises, and the demo has other rising phrases too
    rising = selectors.topic_list(_filters(order="rising"))
    crash = next(row for row in rising if row.phrase == "app crashes")
    assert (crash.this_week, crash.last_week, crash.cases_this_week) == (6, 1, 6)
    assert crash.change_label == "+500%"
    # "rising" lists only phrases written more this week than last (the demo has many)
    assert len(rising) > 5 and all(row.trend == "rising" and row.change > 0 for row in rising)
    assert rising == sorted(rising, key=lambda row: (-row.change, -row.this_week, row.phrase))
    # the sparkline series covers the four weeks, this week last
    assert crash.series[-2:] == [1, 6]


def test_running_again_counts_nothing_twice_and_then_only_what_is_new(demo):
    first = topics_refresh(**RUN)
    before = table()

    again = topics_refresh(**RUN)
    assert (again.messages, table()) == (0, before)

    write(channel=demo, text="Lounge closed at Faro", at=NOW)
    third = topics_refresh(**RUN)
    assert third.messages == 1
    assert third.last_message_id > first.last_message_id
    after = table()
    # "at" is a stop word: it breaks the run
    assert after - before == {("lounge", THIS_WEEK): 1, ("lounge closed", THIS_WEEK): 1,
                              ("closed", THIS_WEEK): 1, ("faro", THIS_WEEK): 1}  # fmt: skip
    assert after == oracle()
    assert TopicState.objects.get().messages_counted == first.messages + 1


def test_small_batches_resume_at_the_watermark_and_give_the_same_counts(demo):
    # when the job stops after one batch of 50, then runs on in batches of 50
    partial = topics_refresh(batch=50, max_batches=1, **RUN)
    assert partial.messages == 50
    assert TopicState.objects.get().last_message_id == partial.last_message_id
    rest = topics_refresh(batch=50, **RUN)

    # then it read every message once, the counts agree, and the cases too
    assert partial.messages + rest.messages == Message.objects.filter(direction="in").count()
    assert table() == oracle()
    crash = TopicWeek.objects.get(phrase="app crashes", week=THIS_WEEK)
    assert (crash.messages, crash.cases) == (6, 6)


def test_a_case_counts_once_per_week_across_runs_and_again_the_next_week(channel):
    case, _ = write(channel=channel, text="Seat belt broken", at=NOW - timedelta(days=8))
    topics_refresh(**RUN)
    write(channel=channel, case=case, text="Still a broken seat belt", at=NOW - timedelta(days=7, hours=12))
    write(channel=channel, case=case, text="Seat belt fixed? No.", at=NOW - timedelta(days=1))
    topics_refresh(**RUN)

    last = TopicWeek.objects.get(phrase="seat belt", week=LAST_WEEK)
    this = TopicWeek.objects.get(phrase="seat belt", week=THIS_WEEK)
    assert (last.messages, last.cases) == (2, 1)
    assert (this.messages, this.cases) == (1, 1)
    # the cell keeps the newest examples, oldest first
    assert last.examples == list(
        Message.objects.filter(case=case, sent_at__lt=NOW - timedelta(days=3))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def test_cells_are_per_channel_department_and_category(channel, department, other_department):
    from tests import factories

    mailbox = factories.ChannelFactory(kind="email", name="Mail", slug="mail", department=other_department)
    write(channel=channel, text="Wifi broken", at=NOW)
    write(channel=mailbox, text="Wifi broken", at=NOW)
    topics_refresh(**RUN)

    cells = TopicWeek.objects.filter(phrase="wifi broken").order_by("channel__name")
    assert [(c.channel.name, c.department.name, c.messages) for c in cells] == [
        ("Brand on X", "Social Care", 1), ("Mail", "Billing", 1),
    ]  # fmt: skip
    assert selectors.topic_list(_filters(channel_id=mailbox.pk, words=2))[0].phrase == "wifi broken"
    assert (
        selectors.topic_list(_filters(department_ids=frozenset({department.pk}), contains="wifi"))[
            0
        ].this_week
        == 1
    )


def test_replies_notes_and_messages_not_yet_settled_are_left_alone(channel, agent):
    from cases import services as case_services

    case, _ = write(channel=channel, text="Where is my refund", at=NOW)
    with time_machine.travel(NOW, tick=False):
        case_services.message_add(
            case=case, direction="out", kind="post", text="Voucher approved", author=agent
        )
        case_services.note_add(case=case, author=agent, text="Voucher approved internally")
    assert topics_refresh(**RUN).messages == 1
    assert not TopicWeek.objects.filter(phrase__contains="voucher").exists()

    # a message stored a moment ago waits: a lower id may not be committed yet
    case_services.message_add(case=case, direction="in", kind="post", text="Hello? Refund?", channel=channel)
    assert topics_refresh().messages == 0
    assert topics_refresh(settle=timedelta(0)).messages == 1


def test_old_weeks_are_dropped_and_old_messages_passed_over(channel, settings):
    settings.CASELINE_TOPICS_KEEP_WEEKS = 2
    write(channel=channel, text="Ancient complaint", at=NOW - timedelta(weeks=3))
    write(channel=channel, text="Recent complaint", at=NOW - timedelta(days=1))
    TopicWeek.objects.create(
        phrase="stale", words=1, week=THIS_WEEK - timedelta(weeks=5), department=channel.department
    )

    topics_refresh(**RUN)

    assert set(TopicWeek.objects.values_list("phrase", flat=True)) == {
        "recent",
        "recent complaint",
        "complaint",
    }


@pytest.mark.django_db(transaction=True)
def test_a_run_while_another_holds_the_watermark_is_skipped(channel):
    write(channel=channel, text="Gate changed", at=NOW)
    TopicState.objects.get_or_create(pk=1)
    held, release = threading.Event(), threading.Event()

    def other_run():
        with transaction.atomic():
            TopicState.objects.select_for_update().get(pk=1)
            held.set()
            release.wait(10)
        connections.close_all()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(10)
        result = topics_refresh(**RUN)
    finally:
        release.set()
        thread.join()
    assert result.skipped and result.messages == 0
    assert not TopicWeek.objects.exists()
    assert topics_refresh(**RUN).messages == 1
    connection.close()


def test_the_task_runs_the_job(channel, settings):
    write(channel=channel, text="Boarding pass missing", at=NOW)
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        outcome = tasks.topics_refresh()
    assert outcome["messages"] == 1 and not outcome["skipped"]
    assert TopicWeek.objects.filter(phrase="boarding pass missing").exists()


def test_rebuild_counts_everything_again(channel):
    write(channel=channel, text="Cabin too cold", at=NOW)
    topics_refresh(**RUN)
    TopicWeek.objects.update(messages=99)
    assert services.topics_rebuild(**RUN).messages == 1
    assert TopicWeek.objects.get(phrase="cabin").messages == 1
