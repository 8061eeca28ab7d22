"""Two ASGI server processes sharing Redis and PostgreSQL, as production runs them: an event
committed through one reaches a desk socket held by the other.

Both daphne processes serve ``config.asgi:application`` on the test database, with a channel
layer prefix of their own on the shared Redis. The socket is a signed-in page's (session
cookie, origin header), through the suite's small websocket client
(``tests.faults.client.DeskSocket``: no websocket client library is installed).
"""

from __future__ import annotations

import sys
import uuid

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from cases import selectors
from connectors import api_tokens
from tests.faults import servers
from tests.faults.client import DeskSocket
from tests.test_consumers import build_world, newest_seq, open_case

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.IS_POSTGRES or "redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower(),
        reason="two server processes share PostgreSQL and Redis: set DATABASE_URL and REDIS_URL",
    ),
]


def database_url() -> str:
    db = connection.settings_dict  # the test database, once pytest-django has made it
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_daphne(name: str, env: dict[str, str]) -> tuple[servers.AppProcess, int]:
    port = servers.free_port()
    process = servers.AppProcess(
        name,
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        env,
    )
    try:
        servers.wait_for(
            lambda: servers.port_open(port) or not process.alive(), timeout=60, what=f"{name} to listen"
        )
    except AssertionError:
        process.stop()
        raise
    if not process.alive():
        raise RuntimeError(f"{name} did not start:\n{process.output}")
    return process, port


@pytest.fixture
def two_servers():
    """Processes A and B, one channel layer prefix and Celery queue of their own on the shared Redis."""
    tag = uuid.uuid4().hex[:8]
    env = servers.app_env(
        database_url=database_url(),
        redis_url=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,  # sessions signed in here are read there
        CHANNEL_LAYER_PREFIX=f"cl-live-2p-{tag}",
        CELERY_QUEUE=f"cl-live-2p-{tag}",
        LOG_LEVEL="WARNING",
    )
    started = []
    try:
        for name in ("daphne-a", "daphne-b"):
            started.append(start_daphne(name, env))
        yield started
    finally:
        for process, _ in started:
            process.stop()


def test_an_event_committed_through_one_process_reaches_a_socket_on_the_other(two_servers):
    (a, port_a), (b, port_b) = two_servers
    assert a.process.pid != b.process.pid
    world = build_world()
    case = open_case(world["x"])
    _, key = api_tokens.api_token_create(user=world["colleague"], name="Desk bot", scope="write")
    browser = Client()
    browser.force_login(world["agent"])
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value

    # given an agent's queue page holding its socket on process B
    page = DeskSocket(port_b, session)
    try:
        assert page.receive()["type"] == "hello"
        page.send(
            {
                "action": "queue",
                "view": "department",
                "seq": selectors.live_seq(),
                "replay": True,
                "rows": [case.pk],
            }
        )
        page.send({"action": "ping"})
        assert page.receive()["type"] == "pong"  # the subscription is in place

        # when a colleague claims the case through process A's API
        answer = httpx.post(
            f"http://127.0.0.1:{port_a}/api/v1/cases/{case.pk}/claim/",
            headers={"Authorization": f"Token {key}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

        # then the page on B is pushed the row as it now is, numbered by the claim's case event
        pushed = page.receive(timeout=15)
        while pushed is not None and pushed.get("type") != "queue.row":
            pushed = page.receive(timeout=15)
        assert pushed is not None, "process B closed the socket"
        assert pushed["id"] == case.pk
        assert pushed["seq"] == newest_seq(case)
        assert "Colleague" in pushed["html"]
        assert "replay" not in pushed  # pushed live, not read back
    finally:
        page.close()
