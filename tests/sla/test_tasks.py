"""The periodic tasks: registered under the names the beat schedule uses, and thin."""

from datetime import UTC, datetime, timedelta

import time_machine

from cases import services
from cases.models import Case
from cases.schedule import CASES_BEAT_SCHEDULE
from config.celery import app


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    for entry in CASES_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks
        assert entry["options"]["expires"] < entry["schedule"]


def test_sla_sweep_task_runs_the_sweep(customer, channel):
    from cases.tasks import sla_sweep

    start = datetime(2025, 1, 7, 10, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        case = services.case_open(customer=customer, channel=channel)
        services.message_add(case=case, direction="in", kind="dm", channel=channel, text="hi")
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        outcome = sla_sweep.delay().get()
    assert outcome["breached"] == 1
    assert Case.objects.get(pk=case.pk).sla_state == Case.SlaState.BREACHED
