"""Redis dies while webhooks arrive, then comes back.

Decision (see connectors/views.py): a webhook whose processing cannot be queued is
processed inline, in the request that stored it. So while Redis is down every webhook
is still stored, acknowledged within a bounded time, and threaded into its case; live
updates are skipped, never raised; pages keep working. When Redis is back, webhooks
are queued again and the worker, which reconnects by itself, processes them.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults import client, traffic
from tests.faults.servers import wait_for

pytestmark = pytest.mark.faults


def processed(stack, deliveries) -> bool:
    holders = stack.messages_by_external_id([d.external_id for d in deliveries])
    return all(len(cases) == 1 for cases in holders.values())


def test_webhooks_are_stored_acknowledged_and_processed_while_redis_is_down(stack):
    # given the app, a worker and a signed-in agent, all on the throwaway Redis
    seeded = stack.stage("seed", "--agents", "1", "--sessions")
    session = seeded["agents"][0]["session"]
    base = stack.daphne(WEBHOOK_BROKER_RETRY_SECONDS="3")
    worker = stack.worker()
    before = traffic.mixed(6)
    assert {a.status for a in client.post_all(base, before)} == {200}
    wait_for(lambda: processed(stack, before), timeout=60, what="the worker to process the first webhooks")
    # the worker commits before it logs, so its log line may trail the database by a moment
    wait_for(lambda: worker.saw("succeeded"), timeout=30, what="the worker's log to show it processed them")

    # when Redis dies and webhooks keep coming
    stack.redis.stop()
    during = traffic.mixed(48)
    answers = client.post_all(base, during, concurrency=4)

    # then every one is acknowledged, and quickly: only the first pays a (bounded) broker attempt
    assert [a.status for a in answers] == [200] * len(during), client.summary(answers)
    figures = client.summary(answers)
    assert figures["max_ms"] < 5000, figures
    assert figures["p95_ms"] < 1000, figures
    # and each message is processed inline onto exactly one case, with Redis still down: by the
    # web process itself, at the end of the second its batch was due (no worker can reach us)
    wait_for(lambda: processed(stack, during), timeout=30, what="the web process to process inline")
    holders = stack.messages_by_external_id([d.external_id for d in during])
    assert {eid: len(cases) for eid, cases in holders.items() if len(cases) != 1} == {}
    assert stack.event_counts().get("pending", 0) == 0

    # and the desk keeps working without live updates
    case_reference = stack.scalar(
        "SELECT c.reference FROM cases_case c JOIN cases_message m ON m.case_id = c.id "
        "WHERE m.external_id = %s",
        (during[0].external_id,),
    )
    with httpx.Client(base_url=base, cookies={"sessionid": session}, timeout=30) as browser:
        queue = browser.get("/desk/")
        page = browser.get(f"/desk/cases/{case_reference}/")
    assert queue.status_code == 200, queue.text[-2000:]
    assert page.status_code == 200, page.text[-2000:]
    assert case_reference in queue.text

    # when Redis comes back
    stack.redis.start()
    time.sleep(3.5)  # the webhooks' broker back-off (WEBHOOK_BROKER_RETRY_SECONDS)
    handled_by_worker = sum("process_inbound_batch" in line and "succeeded" in line for line in worker.lines)
    after = traffic.mixed(6)
    answers = client.post_all(base, after)

    # then webhooks are queued again (batched: one task for the burst) and the same worker,
    # reconnected, processes them
    assert {a.status for a in answers} == {200}
    wait_for(
        lambda: processed(stack, after), timeout=90, what="the reconnected worker to process new webhooks"
    )
    wait_for(
        lambda: (
            sum("process_inbound_batch" in line and "succeeded" in line for line in worker.lines)
            >= handled_by_worker + 1
        ),
        timeout=30,
        what="the worker's log to show it processed them",
    )
    counts = stack.event_counts()
    assert counts == {"processed": len(before) + len(during) + len(after)}, counts
