"""The beat schedule names real tasks, and the inbox sweep processes what waits."""

from django.conf import settings

from cases.models import Case
from config.celery import app
from connectors import inbox, tasks
from tests.connectors.helpers import fixture_bytes


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled - set(app.tasks) == set()
    assert {"cases.tasks.sla_sweep", "connectors.process_inbound_batch", "connectors.poll_imap"} <= scheduled


def test_the_inbox_sweep_processes_events_whose_task_never_ran(x_channel):
    # given a stored webhook whose own task was never queued (the broker was down)
    event, created = inbox.inbound_event_store(
        channel=x_channel,
        delivery_id="d-1",
        body=fixture_bytes("x", "mention.json"),
        headers={},
        enqueue=False,
    )
    assert created and event.status == "pending"

    # when beat's batch task runs
    result = tasks.process_inbound_batch()

    # then the event is processed and its tweet is on a case
    event.refresh_from_db()
    assert event.status == "processed"
    assert result["events"] == 1
    assert Case.objects.get().messages.get().text.startswith("@brand my router")
