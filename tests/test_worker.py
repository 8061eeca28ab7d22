"""One real Celery worker, on Redis, against the test database.

Unit tests run tasks inline; this test proves the queued path works end to end: a
signed webhook is stored and acknowledged, a worker process picks the task from
Redis and threads the tweet into a case, and a reply queued by an agent is sent by
the worker to a fake X API.
"""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings
from django.db import connection

from cases import services
from cases.models import Case, Message
from config.celery import app
from connectors.models import InboundEvent
from tests.connectors.helpers import (
    X_ACCESS_TOKEN,
    X_CONSUMER_SECRET,
    X_SECRET_ENV,
    FakeAPI,
    fixture_bytes,
    post_x_webhook,
)
from tests.faults import servers

pytestmark = [pytest.mark.worker, pytest.mark.postgres]


def wait_for(predicate, *, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def worker(transactional_db, monkeypatch):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (set REDIS_URL)")
    db = settings.DATABASES["default"]
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    queue = f"caseline-test-{os.getpid()}"
    env = servers.app_env(
        database_url=database_url,
        redis_url=settings.REDIS_URL,
        **{X_SECRET_ENV["consumer_secret"]: X_CONSUMER_SECRET, X_SECRET_ENV["access_token"]: X_ACCESS_TOKEN},
    )
    # This process sends to the same private queue, and for real, not inline.
    saved = {
        "task_always_eager": app.conf.task_always_eager,
        "task_default_queue": app.conf.task_default_queue,
    }
    app.conf.update(task_always_eager=False, task_default_queue=queue)
    app.amqp.__dict__.pop("queues", None)  # cached from the old default queue
    process = servers.start_worker(env, queue=queue, name=queue)
    try:
        wait_for(
            lambda: bool(app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5)),
            timeout=60,
            what="the worker to answer a ping",
        )
        yield process
    finally:
        process.stop()
        print(process.output[-4000:])
        app.conf.update(saved)
        app.amqp.__dict__.pop("queues", None)
        connection.close()


def test_a_real_worker_processes_webhooks_and_sends_replies(worker, client, channel, agent, monkeypatch):
    # given the suite's X channel, its secrets in the environment, and a fake X API
    for role, var in X_SECRET_ENV.items():
        monkeypatch.setenv(var, {"consumer_secret": X_CONSUMER_SECRET, "access_token": X_ACCESS_TOKEN}[role])
    with FakeAPI() as fake_x:
        channel.secret_env = dict(X_SECRET_ENV)
        channel.api_base_url = fake_x.url
        channel.save()

        # when X delivers a mention
        response = post_x_webhook(client, channel, fixture_bytes("x", "mention.json"))

        # then it is acknowledged at once and the worker threads it into a case
        assert response.status_code == 200
        wait_for(
            lambda: InboundEvent.objects.filter(status="processed").exists(), what="the event to be processed"
        )
        case = Case.objects.get()
        assert case.messages.get().text.startswith("@brand my router")

        # when an agent replies, the worker sends it to X
        fake_x.respond(201, {"data": {"id": "1050125000000000000", "text": "Sorry!"}})
        reply = services.case_reply(
            case=case, author=agent, channel=channel, text="Sorry! DM us.", is_public=True
        )
        wait_for(
            lambda: Message.objects.get(pk=reply.pk).delivery_state == "sent", what="the reply to be sent"
        )

    reply.refresh_from_db()
    assert reply.external_id == "1050125000000000000"
    assert fake_x.requests[0]["json"]["reply"]["in_reply_to_tweet_id"] == "1050118621198921728"
