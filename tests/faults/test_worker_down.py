"""No Celery worker is running: inbound events and replies wait in the database, then are
processed when workers start, none twice (two workers compete for them)."""

from __future__ import annotations

import pytest

from tests.faults import client, traffic
from tests.faults.fake_x import FakeX
from tests.faults.servers import wait_for

pytestmark = pytest.mark.faults


def test_events_and_replies_wait_until_a_worker_starts_and_none_is_processed_twice(stack):
    with FakeX() as x_api:
        stack.execute("UPDATE connectors_channel SET api_base_url = %s WHERE kind = 'x'", (x_api.url,))
        base = stack.daphne()
        # given a case opened by a mention, while a worker was still running
        worker = stack.worker()
        mention = traffic.x_mention(1, author="4242", text="my router is dead")
        assert client.post_all(base, [mention])[0].status == 200
        wait_for(
            lambda: stack.messages_by_external_id([mention.external_id])[mention.external_id], what="the case"
        )
        worker.stop()

        # when webhooks arrive and an agent replies with no worker running
        deliveries = traffic.mixed(30)
        answers = client.post_all(base, deliveries, concurrency=6)
        reply = stack.stage(
            "reply", "--external-id", mention.external_id, "--text", "Sorry! Looking into it."
        )

        # then everything is acknowledged and waits in the database, visibly
        assert [a.status for a in answers] == [200] * len(deliveries)
        assert stack.event_counts() == {"processed": 1, "pending": len(deliveries)}
        state = stack.scalar("SELECT delivery_state FROM cases_message WHERE id = %s", (reply["message"],))
        assert state == "queued"
        assert x_api.requests == []

        # when two workers start
        stack.worker()
        stack.worker()

        # then every event is processed, each message on exactly one case, and the reply is sent once
        wait_for(
            lambda: stack.event_counts() == {"processed": len(deliveries) + 1},
            timeout=90,
            what="the workers to process the waiting events",
        )
        holders = stack.messages_by_external_id([d.external_id for d in deliveries])
        assert {eid: cases for eid, cases in holders.items() if len(cases) != 1} == {}
        wait_for(
            lambda: (
                stack.scalar("SELECT delivery_state FROM cases_message WHERE id = %s", (reply["message"],))
                == "sent"
            ),
            timeout=60,
            what="the reply to be sent",
        )
        assert len(x_api.requests) == 1
        assert x_api.requests[0]["json"]["reply"]["in_reply_to_tweet_id"] == mention.external_id

        # and a redelivered send task, or the platform retrying its webhooks, changes nothing
        stack.stage("resend", "--message-id", str(reply["message"]))
        again = client.post_all(base, deliveries[:10])
        assert {a.status for a in again} == {200}
        wait_for(
            lambda: (
                sum(
                    "send_message" in line and "succeeded" in line
                    for p in stack.processes
                    for line in p.lines
                )
                >= 2
            ),
            timeout=30,
            what="the redelivered send task to run",
        )
        assert len(x_api.requests) == 1
        assert stack.event_counts() == {"processed": len(deliveries) + 1}
        assert (
            stack.scalar("SELECT count(*) FROM cases_message WHERE direction = 'in'") == len(deliveries) + 1
        )
