"""X's API fails (dropped connections, 429 with Retry-After, 5xx), then recovers: a real
worker retries with back-off, honours Retry-After, gives up with the reason after the
limit, an agent sends it again by hand, and X receives each reply exactly once."""

from __future__ import annotations

import time

import pytest

from connectors.outbound import MAX_ATTEMPTS
from tests.faults import client, traffic
from tests.faults.fake_x import FakeX
from tests.faults.servers import wait_for

pytestmark = pytest.mark.faults


def reply_state(stack, message_id: int) -> tuple[str, int, str]:
    return stack.query(
        "SELECT delivery_state, send_attempts, delivery_error FROM cases_message WHERE id = %s", (message_id,)
    )[0]


def test_failing_platform_api_is_retried_then_the_reply_is_sent_exactly_once(stack):
    with FakeX() as x_api:
        stack.execute("UPDATE connectors_channel SET api_base_url = %s WHERE kind = 'x'", (x_api.url,))
        base = stack.daphne()
        stack.worker()
        mention = traffic.x_mention(2, author="4343", text="still no signal")
        assert client.post_all(base, [mention])[0].status == 200
        wait_for(
            lambda: stack.messages_by_external_id([mention.external_id])[mention.external_id], what="the case"
        )

        # given X drops the connection, then rate-limits, then fails, then recovers
        x_api.script.extend(["drop", (429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})])
        started = time.monotonic()
        first = stack.stage("reply", "--external-id", mention.external_id, "--text", "We are on it.")

        # then the worker tries again until X takes it, and X has it once
        wait_for(
            lambda: reply_state(stack, first["message"])[0] == "sent", timeout=90, what="the reply to be sent"
        )
        took = time.monotonic() - started
        state, attempts, _ = reply_state(stack, first["message"])
        assert attempts == 4
        assert [r["answer"] if r["answer"] == "drop" else r["answer"][0] for r in x_api.requests] == [
            "drop", 429, 503, 201,
        ]  # fmt: skip
        assert len(x_api.posted) == 1
        # the dropped connection waited the back-off (10 s), the others what X asked (1 s)
        assert took >= 12, took

        # given X fails every try
        x_api.script.extend([(503, {"Retry-After": "1"})] * MAX_ATTEMPTS)
        second = stack.stage(
            "reply", "--external-id", mention.external_id, "--text", "Any news on your side?"
        )

        # then after the limit the reply is failed, with the reason, and nothing was posted
        wait_for(
            lambda: reply_state(stack, second["message"])[0] == "failed", timeout=60, what="the reply to fail"
        )
        state, attempts, error = reply_state(stack, second["message"])
        assert attempts == MAX_ATTEMPTS
        assert "503" in error
        assert len(x_api.posted) == 1

        # when the agent sends it again by hand, X has it once
        stack.stage("retry", "--message-id", str(second["message"]))
        wait_for(
            lambda: reply_state(stack, second["message"])[0] == "sent", timeout=30, what="the retried reply"
        )
        assert [p["json"]["text"] for p in x_api.posted] == ["We are on it.", "Any news on your side?"]

        # and a redelivered task never sends a confirmed reply again
        stack.stage("resend", "--message-id", str(first["message"]))
        stack.stage("resend", "--message-id", str(second["message"]))
        time.sleep(2)
        assert len(x_api.posted) == 2
        assert len(x_api.requests) == 4 + MAX_ATTEMPTS + 1
