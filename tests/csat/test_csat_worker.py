"""The survey through a real Celery worker on Redis: resolving queues the task after commit, the
worker asks the customer and the outbox sends the question; a case resolved, reopened and
resolved again queues two tasks and is still asked once."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection

from cases import services
from cases.models import Message, SatisfactionSurvey
from config.celery import app
from tests.csat.conftest import PUBLIC_URL
from tests.desk.conftest import open_case
from tests.faults import servers
from tests.test_worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.postgres]


@pytest.fixture
def queue(transactional_db):
    """A queue of this test's own that this process sends tasks to, for real (not inline)."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (set REDIS_URL)")
    name = f"caseline-csat-test-{os.getpid()}"
    saved = {
        "task_always_eager": app.conf.task_always_eager,
        "task_default_queue": app.conf.task_default_queue,
    }
    app.conf.update(task_always_eager=False, task_default_queue=name)
    app.amqp.__dict__.pop("queues", None)  # cached from the old default queue
    yield name
    app.conf.update(saved)
    app.amqp.__dict__.pop("queues", None)
    connection.close()


@contextmanager
def worker(queue: str):
    """A worker with surveys on, consuming ``queue`` (``tests/faults/servers.start_worker``)."""
    db = settings.DATABASES["default"]
    env = servers.app_env(
        database_url=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        redis_url=settings.REDIS_URL,
        CASELINE_CSAT_ENABLED="true",
        PUBLIC_URL=PUBLIC_URL,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    process = servers.start_worker(env, queue=queue, name=queue)
    try:
        yield process
    finally:
        process.stop()
        print(process.output[-4000:])


def test_a_real_worker_asks_once_and_sends_the_question(queue, mailbox, agent):
    case = open_case(channel=mailbox, kind="email", assignee=agent)

    # resolved, reopened and resolved again: two survey tasks wait on the queue
    services.case_set_status(case=case, status="resolved", actor=agent)
    services.case_set_status(case=case, status="open", actor=agent)
    services.case_set_status(case=case, status="resolved", actor=agent)
    assert not SatisfactionSurvey.objects.filter(case=case).exists()  # resolving asked nobody itself

    with worker(queue):
        # the first task asks and queues the send behind the second task, which asks nobody
        wait_for(
            lambda: Message.objects.filter(case=case, direction="out", delivery_state="sent").exists(),
            timeout=60,
            what="the survey to be sent",
        )

    survey = SatisfactionSurvey.objects.select_related("message").get(case=case)
    assert survey.message.channel_id == mailbox.pk and survey.message.external_id
    assert f"{PUBLIC_URL}/s/" in survey.message.text
    assert Message.objects.filter(case=case, direction="out").count() == 1
