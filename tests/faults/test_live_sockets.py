"""Live sockets while Redis is down: they go offline at once (never hang), and once Redis is
back a page that reconnects is told what it missed (a refresh), so nothing is lost."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults import client, traffic
from tests.faults.client import DeskSocket

pytestmark = pytest.mark.faults


def newest_event_id(stack) -> int:
    return stack.scalar("SELECT coalesce(max(id), 0) FROM cases_caseevent")


def follow_queue(socket: DeskSocket, seq: int) -> None:
    socket.send({"action": "queue", "view": "department", "seq": seq, "rows": []})


def try_to_connect(port: int, session: str) -> str:
    """What a page gets when it opens its socket: refused, closed after the handshake, or open."""
    try:
        socket = DeskSocket(port, session, timeout=10)
    except (ConnectionError, OSError):
        return "refused"
    try:
        return "closed" if socket.receive(timeout=10) is None else "open"
    except (ConnectionError, OSError):
        return "closed"
    finally:
        socket.close()


def test_sockets_go_offline_with_redis_and_a_reconnecting_page_catches_up(stack):
    session = stack.stage("seed", "--agents", "1", "--sessions")["agents"][0]["session"]
    base = stack.daphne(WEBHOOK_BROKER_RETRY_SECONDS="2")
    port = int(base.rsplit(":", 1)[1])
    stack.worker()

    # given a queue page following its department live
    page = DeskSocket(port, session)
    assert page.receive()["type"] == "hello"
    seen = newest_event_id(stack)
    follow_queue(page, seen)
    first = traffic.mixed(1, kinds=("x",))
    assert client.post_all(base, first)[0].status == 200
    pushed = page.receive(timeout=30)
    while pushed and pushed.get("type") not in ("queue.row", "refresh"):
        pushed = page.receive(timeout=30)
    assert pushed is not None, "no live push while Redis was up"

    # when Redis dies
    stack.redis.stop()
    seen = newest_event_id(stack)
    missed = traffic.mixed(3, kinds=("whatsapp",))
    assert {a.status for a in client.post_all(base, missed)} == {200}

    # then a page that (re)connects is told at once that it is offline, never left hanging
    started = time.monotonic()
    assert try_to_connect(port, session) in ("refused", "closed")
    assert time.monotonic() - started < 10

    # when Redis is back and the page reconnects, saying what it last saw
    stack.redis.start()
    page, answer = reconnect(port, session, seen)

    # then it is told to refresh, and the refreshed queue holds what arrived meanwhile
    assert answer == {"type": "refresh", "region": "queue"}
    references = [
        stack.scalar(
            "SELECT c.reference FROM cases_case c JOIN cases_message m ON m.case_id = c.id WHERE m.external_id = %s",
            (delivery.external_id,),
        )
        for delivery in missed
    ]
    with httpx.Client(base_url=base, cookies={"sessionid": session}, timeout=30) as browser:
        queue = browser.get("/desk/")
    assert queue.status_code == 200
    assert all(reference and reference in queue.text for reference in references)

    # and the next message reaches the page: pushed live, or (if the socket dropped) by a refresh
    seen = newest_event_id(stack)
    follow_queue(page, seen)
    later = traffic.mixed(1, kinds=("facebook",))
    assert client.post_all(base, later)[0].status == 200
    pushed = page.receive(timeout=30)
    while pushed and pushed.get("type") not in ("queue.row", "refresh"):
        pushed = page.receive(timeout=30)
    if pushed is None:
        page, pushed = reconnect(port, session, seen)
    assert pushed["type"] in ("queue.row", "refresh"), pushed
    page.close()


def reconnect(port: int, session: str, seen: int, attempts: int = 10) -> tuple[DeskSocket, dict]:
    """Open the socket as a page does after a drop (retrying with a pause), follow the queue
    from ``seen`` and return the socket with its first answer."""
    for _ in range(attempts):
        time.sleep(1)
        try:
            page = DeskSocket(port, session)
            hello = page.receive(timeout=30)
            if hello is None:
                continue
            follow_queue(page, seen)
            answer = page.receive(timeout=30)
        except (ConnectionError, OSError):
            continue
        if answer is not None:
            return page, answer
    raise AssertionError(f"the page could not reconnect in {attempts} attempts")
