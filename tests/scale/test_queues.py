"""Queues per job: every task has a queue of its own job, or the default one on purpose."""

from __future__ import annotations

import pytest

from config import celery as celery_config
from config.celery import app

pytestmark = pytest.mark.scale

EXPECTED = {
    "connectors.process_inbound_event": "ingest",
    "connectors.process_inbound_batch": "ingest",
    "connectors.poll_imap": "ingest",
    "connectors.send_message": "outbound",
    "connectors.deliver_webhook": "outbound",
    "connectors.requeue_stalled_sends": "sweeps",
    "connectors.redeliver_webhooks": "sweeps",
    "cases.tasks.sla_sweep": "sweeps",
    "cases.tasks.surge_detect": "sweeps",
    "cases.tasks.monitoring_autoclose": "sweeps",
    "cases.tasks.csat_survey_send": "outbound",
    "cases.reports.topics_refresh": "reports",
    "cases.privacy.retention_sweep": "sweeps",
    "cases.privacy.run_erasure_request": None,
}


def registered_tasks() -> list[str]:
    app.loader.import_default_modules()
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def routed_queue(name: str) -> str:
    return app.amqp.router.route({}, name)["queue"].name


@pytest.fixture
def queues_on(settings):
    settings.CASELINE_CELERY_QUEUES = True
    return settings.CELERY_TASK_DEFAULT_QUEUE


def test_each_task_goes_to_its_jobs_queue(queues_on):
    registered_tasks()
    for name, job in EXPECTED.items():
        assert name in app.tasks, name
        assert routed_queue(name) == (f"{queues_on}.{job}" if job else queues_on), name


def test_every_registered_task_has_a_job_or_is_meant_for_the_default_queue(queues_on):
    tasks = registered_tasks()
    assert len(tasks) >= len(EXPECTED)
    unrouted = [
        name
        for name in tasks
        if celery_config.job_for(name) is None and name not in celery_config.DEFAULT_QUEUE_TASKS
    ]
    assert unrouted == [], "route these in config/celery.py JOB_ROUTES or list them in DEFAULT_QUEUE_TASKS"
    for name in tasks:
        job = celery_config.job_for(name)
        assert routed_queue(name) == (f"{queues_on}.{job}" if job else queues_on)
    assert {celery_config.job_for(name) for name in tasks} >= {"ingest", "outbound", "sweeps"}


def test_the_scheduled_tasks_are_registered_and_routed(queues_on, settings):
    tasks = set(registered_tasks())
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in tasks
        assert routed_queue(entry["task"]).startswith(queues_on)


def test_with_queues_off_everything_goes_to_the_default_queue(settings):
    settings.CASELINE_CELERY_QUEUES = False
    for name in registered_tasks():
        assert routed_queue(name) == settings.CELERY_TASK_DEFAULT_QUEUE


def test_a_report_task_would_go_to_the_reports_queue(queues_on):
    assert celery_config.job_for("cases.reports.export_csv") == "reports"
    assert routed_queue("cases.reports.export_csv") == f"{queues_on}.reports"
