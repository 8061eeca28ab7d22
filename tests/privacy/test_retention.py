"""Retention: beat purges raw inbound events past INBOUND_EVENT_RETENTION_DAYS, processed and
ignored ones only; pending and failed events wait, whatever their age."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from cases import privacy
from cases.schedule import CASES_BEAT_SCHEDULE
from config.celery import app
from connectors import inbox
from connectors.models import InboundEvent

pytestmark = pytest.mark.django_db


def stored(channel, delivery_id: str, *, status: str, age_days: float) -> InboundEvent:
    event, _ = inbox.inbound_event_store(
        channel=channel, delivery_id=delivery_id, body=b'{"x": 1}', headers={}, enqueue=False
    )
    InboundEvent.objects.filter(pk=event.pk).update(
        status=status, received_at=timezone.now() - timedelta(days=age_days)
    )
    return event


@pytest.fixture
def events(channel):
    return {
        name: stored(channel, name, status=status, age_days=age)
        for name, status, age in [
            ("old-processed", "processed", 91),
            ("old-ignored", "ignored", 200),
            ("old-pending", "pending", 120),
            ("old-failed", "failed", 120),
            ("recent-processed", "processed", 89),
            ("recent-ignored", "ignored", 1),
        ]
    }


def remaining() -> set[str]:
    return set(InboundEvent.objects.values_list("delivery_id", flat=True))


def test_processed_and_ignored_events_past_retention_are_purged(events, settings):
    settings.INBOUND_EVENT_RETENTION_DAYS = 90

    assert privacy.inbound_events_purge(batch_size=1) == 2

    assert remaining() == {"old-pending", "old-failed", "recent-processed", "recent-ignored"}
    assert privacy.inbound_events_purge() == 0


def test_zero_days_keeps_everything(events, settings):
    settings.INBOUND_EVENT_RETENTION_DAYS = 0
    assert privacy.inbound_events_purge() == 0
    assert len(remaining()) == 6


def test_the_beat_task_is_scheduled_registered_and_purges(events, settings):
    settings.INBOUND_EVENT_RETENTION_DAYS = 30
    app.loader.import_default_modules()
    entry = CASES_BEAT_SCHEDULE["privacy-retention-sweep"]
    assert entry["task"] in app.tasks and entry in django_settings.CELERY_BEAT_SCHEDULE.values()

    outcome = app.tasks[entry["task"]].delay().get()

    assert outcome == {"purged": 3, "erasures": 0}
    assert remaining() == {"old-pending", "old-failed", "recent-ignored"}
