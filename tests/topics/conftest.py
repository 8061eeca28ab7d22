"""Helpers for the topics tests: customer messages written through the services, and an
oracle that counts phrases straight from the messages table."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings

from cases import services
from cases.models import Message, TopicWeek
from cases.topics import phrases
from cases.topics.services import week_of
from tests import factories

# A Thursday: the week of Monday 2 March 2026 against the week of 23 February.
NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
THIS_WEEK = datetime(2026, 3, 2).date()
LAST_WEEK = THIS_WEEK - timedelta(weeks=1)


def write(*, channel, text: str, at: datetime, case=None, customer=None, subject: str = ""):
    """A customer's message on ``case`` (a new case for ``customer`` when none), at ``at``."""
    with time_machine.travel(at, tick=False):  # stored when it was written
        if case is None:
            customer = customer or factories.CustomerFactory()
            case = services.case_open(customer=customer, channel=channel, subject=subject)
        identity = factories.IdentityFactory(customer=case.customer, kind="x")
        message = services.message_add(
            case=case, direction="in", kind="post", text=text, channel=channel, identity=identity, sent_at=at
        )
    return case, message


def oracle() -> Counter:
    """messages per (phrase, week), counted from every inbound message."""
    zone = ZoneInfo(settings.TIME_ZONE)
    counts: Counter = Counter()
    for subject, text, sent_at in Message.objects.filter(direction="in").values_list(
        "subject", "text", "sent_at"
    ):
        week = week_of(sent_at, zone)
        for phrase in phrases.phrases(phrases.message_text(subject, text)):
            counts[(phrase, week)] += 1
    return counts


def table() -> Counter:
    counts: Counter = Counter()
    for phrase, week, n in TopicWeek.objects.filter(kind="phrase").values_list("phrase", "week", "messages"):
        counts[(phrase, week)] += n
    return counts


@pytest.fixture
def x_channel(channel):
    return channel
