"""PostgreSQL restarts (a crash: immediate shutdown) while webhooks arrive.

The app is not restarted: the web processes' connection pool checks a connection before
handing it out and waits (up to DB_POOL_TIMEOUT) for a new one while PostgreSQL is down;
workers reconnect on the next task (CONN_HEALTH_CHECKS). A request that met the outage is
answered 503 (a connection broken under it) or, having waited out the restart, 200 —
never 200 without the event stored — so the webhooks the platform has to resend are
exactly those it got a 5xx for; resent, they are stored once, and every message ends on
exactly one case.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults import client, traffic
from tests.faults.servers import wait_for

pytestmark = pytest.mark.faults


def test_postgres_restart_mid_load_loses_nothing_and_needs_no_app_restart(stack):
    base = stack.daphne()
    worker = stack.worker()
    started = stack.scalar("SELECT pg_postmaster_start_time()")
    deliveries = traffic.mixed(210)
    answers: list[client.Answer] = []

    # when webhooks arrive at 60 a second and PostgreSQL crashes and comes back meanwhile
    def load():
        answers.extend(client.post_all(base, deliveries, rate=60, concurrency=20, timeout=30))

    sender = threading.Thread(target=load)
    sender.start()
    time.sleep(1.0)
    stack.pg.restart(mode="immediate", down_for=1.0)
    sender.join(timeout=120)

    # then every request was answered: 200 (stored) or 503 (not stored, to be resent)
    statuses = {a.status for a in answers}
    assert len(answers) == len(deliveries)
    assert statuses <= {200, 503}, client.summary(answers)
    refused = [a.delivery for a in answers if a.status != 200]
    accepted = [a.delivery for a in answers if a.status == 200]
    assert stack.scalar("SELECT pg_postmaster_start_time()") > started, "PostgreSQL did not restart"
    assert len(accepted) > len(deliveries) // 2

    # and, without restarting anything, every acknowledged message is processed
    assert all(p.alive() for p in stack.processes)
    try:
        wait_for(
            lambda: all(stack.messages_by_external_id([d.external_id for d in accepted]).values()),
            timeout=120,
            what="the acknowledged webhooks to be processed after the restart",
        )
    except AssertionError:
        holders = stack.messages_by_external_id([d.external_id for d in accepted])
        missing = [external_id for external_id, cases in holders.items() if not cases]
        raise AssertionError(
            f"{len(missing)} acknowledged webhooks without their message, e.g. {missing[:5]}; "
            f"events by status: {stack.event_counts()}"
        ) from None

    # when the platform resends what got a 5xx
    resent = client.post_all(base, refused, concurrency=10)

    # then they are taken by the same processes, and each message is on exactly one case
    assert all(a.status == 200 for a in resent), client.summary(resent)
    wait_for(
        lambda: all(
            len(c) == 1 for c in stack.messages_by_external_id([d.external_id for d in deliveries]).values()
        ),
        timeout=120,
        what="the resent webhooks to be processed",
    )
    holders = stack.messages_by_external_id([d.external_id for d in deliveries])
    assert sorted(len(cases) for cases in holders.values()) == [1] * len(deliveries)
    assert stack.scalar("SELECT count(*) FROM connectors_inboundevent") == len(deliveries)
    assert stack.event_counts() == {"processed": len(deliveries)}
    assert worker.alive()
    print(
        f"\nPostgreSQL restart: {len(accepted)} acknowledged, {len(refused)} answered 503 and resent; "
        f"{len(deliveries)} stored once, none lost."
    )
