"""Caseline spread over hosts: web, worker and beat processes each on a host of its own.

Five hosts (network namespaces, tests/scale/hosts.py), each reaching PostgreSQL and Redis
only over its own veth link and serving at its own address, as production runs:

    A, B   web: uvicorn serving config.asgi (HTTP and websockets)
    C, D   workers: ``celery -A config worker -Q <queue>.ingest`` (prefork, one child each)
    E      beat: ``celery -A config beat``

with queues per job on (``CASELINE_CELERY_QUEUES``), a Celery queue and channel layer prefix
of their own on the shared Redis, and a short Redis visibility timeout
(``CELERY_VISIBILITY_TIMEOUT``). The test process is the outside world: the agents'
browsers and the load balancer, reaching each host at its address.

- Claims made through host A's API reach a desk socket held on host B.
- A batch of inbound events is worked by C and D together; C is frozen while its batch's
  transaction is open (the events it took still locked, some of their messages written),
  then killed with its host; D and
  beat's safety net finish the work, Redis hands C's unacknowledged task to D, and every
  event, message, customer and case exists exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test import Client

from cases import selectors
from cases.models import Case, CaseEvent, Message
from config.celery import app
from connectors import api_tokens
from connectors.models import InboundEvent
from customers.models import Customer, Identity
from tests.scale import hosts
from tests.test_consumers import build_world, newest_seq, open_case

pytestmark = [
    pytest.mark.scale,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    # The suite runs tasks inline; this test sends to the real broker on purpose.
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

WEB_PORT = 8000
VISIBILITY_TIMEOUT = 8  # seconds before Redis hands a vanished worker's task to another
EVENTS, AUTHORS = 1000, 200  # five tweets from each author, interleaved
CLAIMS = 10
X_ACCOUNT = "1"  # build_world's X channel
RECEIVED = re.compile(r"Task connectors\.process_inbound_batch\[([0-9a-f-]+)\] received")
FINISHED = re.compile(
    "|".join(
        [
            r"Task connectors\.process_inbound_batch\[([0-9a-f-]+)\] succeeded",
            r"Discarding revoked task: connectors\.process_inbound_batch\[([0-9a-f-]+)\]",
        ]
    )
)


@dataclass
class Cluster:
    network: hosts.Network
    tag: str
    web_a: hosts.Host
    web_b: hosts.Host
    worker_c: hosts.Host
    worker_d: hosts.Host
    beat_e: hosts.Host
    processes: dict

    @property
    def ingest_queue(self) -> str:
        return f"{self.tag}.ingest"

    def report(self) -> str:
        return "\n\n".join(
            f"--- {p.name} ---\n" + "\n".join(list(p.lines)[-60:]) for p in self.processes.values()
        )


def forget_queues(tag: str) -> None:
    """Remove this run's queues, bindings and unacknowledged tasks from the shared Redis."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for pattern in (f"{tag}*", f"_kombu.binding*.{tag}*"):
            for key in client.scan_iter(pattern):
                client.delete(key)
        for delivery_tag, payload in client.hgetall("unacked").items():
            if tag.encode() in payload:
                client.hdel("unacked", delivery_tag)
                client.zrem("unacked_index", delivery_tag)
    finally:
        client.close()


def _skip_reason() -> str | None:
    if not settings.IS_POSTGRES:
        return "needs PostgreSQL (set DATABASE_URL)"
    if not settings.REDIS_URL:
        return "needs Redis (set REDIS_URL)"
    return hosts.unavailable()


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker):
    reason = _skip_reason()
    if reason:
        pytest.skip(f"hosts in network namespaces: {reason}")
    db = connection.settings_dict  # the test database
    redis_url = urlsplit(settings.REDIS_URL)
    tag = f"clh-{uuid.uuid4().hex[:8]}"
    network = hosts.Network()
    schedule = Path(tempfile.mkdtemp(prefix="caseline-beat-"))
    try:
        network.forward(int(db["PORT"] or 5432), to_host=db["HOST"] or "127.0.0.1")
        network.forward(redis_url.port or 6379, to_host=redis_url.hostname or "127.0.0.1")
        web_a, web_b = network.add_host("a"), network.add_host("b")
        worker_c, worker_d, beat_e = network.add_host("c"), network.add_host("d"), network.add_host("e")
        addresses = [h.address for h in network.hosts]
        credentials = redis_url.netloc.rpartition("@")[0] + "@" if "@" in redis_url.netloc else ""

        def env_of(host: hosts.Host, **extra: str) -> dict[str, str]:
            password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
            database_url = (
                f"postgres://{db['USER']}{password}@{network.gateway}:{db['PORT'] or 5432}/{db['NAME']}"
                f"?application_name=caseline-host-{host.name}"
            )
            return hosts.servers.app_env(
                database_url=database_url,
                redis_url=redis_url._replace(
                    netloc=f"{credentials}{network.gateway}:{redis_url.port or 6379}"
                ).geturl(),
                SECRET_KEY=settings.SECRET_KEY,  # sessions signed in here are read there
                ALLOWED_HOSTS=",".join(["127.0.0.1", "localhost", *addresses]),
                CHANNEL_LAYER_PREFIX=tag,
                CELERY_QUEUE=tag,
                CASELINE_CELERY_QUEUES="true",
                CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
                CELERY_UNACKED_RESTORE_SECONDS="1",
                **{"LOG_LEVEL": "WARNING", **extra},
            )

        def worker(host: hosts.Host) -> list[str]:
            return [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", f"{tag}.ingest",
                "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-n", f"ingest@host-{host.name}",
            ]  # fmt: skip

        processes = {}
        for host in (web_a, web_b):
            uvicorn = [
                sys.executable, "-m", "uvicorn", "config.asgi:application",
                "--host", host.address, "--port", str(WEB_PORT), "--http", "httptools",
                "--loop", "uvloop", "--lifespan", "off", "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            processes[host.name] = host.start("uvicorn", uvicorn, env_of(host))
        for host in (worker_c, worker_d):
            processes[host.name] = host.start("worker", worker(host), env_of(host, LOG_LEVEL="INFO"))
        processes["e"] = beat_e.start(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel=INFO",
                "-s",
                str(schedule / "schedule"),
                "--pidfile",
                str(schedule / "beat.pid"),
            ],  # fmt: skip
            env_of(beat_e, LOG_LEVEL="INFO"),
        )
        started = Cluster(network, tag, web_a, web_b, worker_c, worker_d, beat_e, processes)

        def ready() -> bool:
            for process in processes.values():
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{process.output[-3000:]}")
            return (
                all(hosts.port_open(h.address, WEB_PORT) for h in (web_a, web_b))
                and all(processes[n].saw(" ready.") for n in ("c", "d"))
                and processes["e"].saw("beat: Starting")
            )

        hosts.wait_until(ready, timeout=90, what="the web, worker and beat processes", interval=0.2)
        yield started
        print(started.report())
    finally:
        network.destroy()
        forget_queues(tag)
        for leftover in schedule.iterdir():
            leftover.unlink()
        schedule.rmdir()


# --- a claim through one host, pushed to a socket on another -----------------------------------


def test_claims_through_host_a_reach_a_socket_held_on_host_b(cluster):
    world = build_world()
    cases = [open_case(world["x"], text=f"My parcel {n} never came") for n in range(CLAIMS)]
    _, key = api_tokens.api_token_create(user=world["colleague"], name="Desk bot", scope="write")
    browser = Client()
    browser.force_login(world["agent"])
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    api = httpx.Client(
        base_url=f"http://{cluster.web_a.address}:{WEB_PORT}",
        headers={"Authorization": f"Token {key}"},
        timeout=30,
    )
    sent_a, _ = cluster.web_a.link_bytes()
    sent_b, _ = cluster.web_b.link_bytes()

    # given an agent's queue page holding its socket on host B, at B's address
    page = hosts.HostSocket(cluster.web_b.address, WEB_PORT, session)
    answered_ms, pushed_ms = [], []
    try:
        assert page.receive()["type"] == "hello"
        page.send(
            {
                "action": "queue",
                "view": "department",
                "seq": selectors.live_seq(),
                "replay": True,
                "rows": [case.pk for case in cases],
            }
        )
        page.send({"action": "ping"})
        assert page.receive()["type"] == "pong"  # the subscription is in place
        assert api.get("/api/v1/cases/").status_code == 200  # A has served a request

        for case in cases:
            # when a colleague claims a case through host A's API, at A's address
            started = time.perf_counter()
            answer = api.post(f"/api/v1/cases/{case.pk}/claim/")
            answered = time.perf_counter()
            assert answer.status_code == 200, answer.text

            # then the page on B is pushed the row as it now is, numbered by the claim's case event
            pushed = page.receive(timeout=15)
            while pushed is not None and not (pushed.get("type") == "queue.row" and pushed["id"] == case.pk):
                pushed = page.receive(timeout=15)
            arrived = time.perf_counter()
            assert pushed is not None, "host B closed the socket"
            assert pushed["seq"] == newest_seq(case)
            assert "Colleague" in pushed["html"]
            assert "replay" not in pushed  # pushed live, not read back
            answered_ms.append((answered - started) * 1000)
            pushed_ms.append((arrived - started) * 1000)
    finally:
        page.close()
        api.close()

    assert Case.objects.filter(pk__in=[c.pk for c in cases], assignee=world["colleague"]).count() == CLAIMS
    # both web hosts reached PostgreSQL and Redis over their own links
    assert cluster.web_a.link_bytes()[0] > sent_a
    assert cluster.web_b.link_bytes()[0] > sent_b
    print(
        f"{CLAIMS} claims on A: answered in {statistics.median(answered_ms):.1f} ms (median),"
        f" max {max(answered_ms):.1f} ms; pushed to B's socket {statistics.median(pushed_ms):.1f} ms"
        f" after the claim was sent (median), max {max(pushed_ms):.1f} ms;"
        f" each: {', '.join(f'{ms:.0f}' for ms in pushed_ms)} ms"
    )


# --- a worker killed mid-batch; another finishes it ------------------------------------------------


def tweet_event(channel, index: int) -> InboundEvent:
    author = 900000 + index % AUTHORS
    body = {
        "for_user_id": X_ACCOUNT,
        "tweet_create_events": [
            {
                "created_at": datetime.now(UTC).strftime("%a %b %d %H:%M:%S +0000 %Y"),
                "id_str": str(1_700_000_000 + index),
                "text": f"@brand my parcel number {index} never came",
                "user": {
                    "id_str": str(author),
                    "screen_name": f"hc{author}",
                    "name": f"Host customer {author}",
                },
            }
        ],
    }
    return InboundEvent(
        channel=channel,
        provider="x",
        delivery_id=str(1_700_000_000 + index),
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        content_type="application/json",
    )


def in_open_batch(host: str) -> list[int]:
    """The ids of the events host's worker holds locked inside an open batch transaction that
    has already written messages (none when it is between batches, or not writing yet)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.id FROM pg_stat_activity a JOIN connectors_inboundevent e ON e.xmax = a.backend_xid"
            " WHERE a.application_name = %s AND a.datname = current_database()"
            " AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted"
            " AND l.relation = 'cases_message'::regclass AND l.mode = 'RowExclusiveLock')",
            [f"caseline-host-{host}"],
        )
        return [row[0] for row in cursor.fetchall()]


def backend_cpu(*names: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving these hosts (same machine)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = ANY(%s)",
            [[f"caseline-host-{name}" for name in names]],
        )
        pids = [row[0] for row in cursor.fetchall()]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += hosts.servers.cpu_seconds(pid)
    return total


def work_cpu(cluster) -> float:
    """CPU seconds of the two worker hosts and their PostgreSQL backends so far."""
    return cluster.worker_c.cpu_seconds() + cluster.worker_d.cpu_seconds() + backend_cpu("c", "d")


def waited(cluster, predicate, *, timeout: float, what: str) -> None:
    """Wait for ``predicate``; on timeout, fail with what every process said."""
    try:
        hosts.wait_until(predicate, timeout=timeout, what=what, interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{cluster.report()}") from None


def pending() -> int:
    return InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).count()


def test_a_worker_killed_mid_batch_is_finished_by_another_with_nothing_lost_or_doubled(cluster):
    channel = build_world()["x"]
    InboundEvent.objects.bulk_create([tweet_event(channel, i) for i in range(EVENTS)], batch_size=500)
    c, d = cluster.processes["c"], cluster.processes["d"]

    # given two batches queued on the ingest queue: C and D work the inbox together
    cpu_at_start = work_cpu(cluster)
    started = time.perf_counter()
    for _ in range(2):
        app.send_task("connectors.process_inbound_batch", queue=cluster.ingest_queue)

    # when C is inside a batch (its transaction open, the events it took locked, some of their
    # messages written), its host is frozen, then killed: no shutdown, no rollback sent, the
    # task never acknowledged
    held: list[int] = []
    deadline = time.monotonic() + 60
    while not held:
        assert time.monotonic() < deadline, f"C never took a batch\n{cluster.report()}"
        assert pending() > 0, f"the inbox emptied before C was caught mid-batch\n{cluster.report()}"
        if in_open_batch("c") and EVENTS - pending() >= 100:
            os.killpg(c.process.pid, signal.SIGSTOP)
            time.sleep(0.1)  # a statement already sent finishes; a COMMIT would show here
            held = in_open_batch("c")
            if not held:
                os.killpg(c.process.pid, signal.SIGCONT)
        time.sleep(0.01)
    done_before_kill = EVENTS - pending()
    killed_at = time.perf_counter()
    cpu_at_kill = work_cpu(cluster)
    # the one task C took and had not finished: the batch it was killed in
    finished = {a or b for a, b in FINISHED.findall(c.output)}
    unfinished = [task for task in RECEIVED.findall(c.output) if task not in finished]
    assert len(unfinished) == 1, c.output[-3000:]
    cluster.worker_c.kill()
    assert not c.alive()
    cpu_after_kill = work_cpu(cluster)  # D's alone now

    # then D (with beat's batch every 5 s from E) finishes the inbox
    waited(cluster, lambda: pending() == 0, timeout=120, what="the inbox to empty")
    finished_at = time.perf_counter()
    cpu_at_end = work_cpu(cluster)
    # and Redis hands the task C took and never acknowledged to D
    waited(
        cluster,
        lambda: f"[{unfinished[0]}] received" in d.output,
        timeout=VISIBILITY_TIMEOUT + 30,
        what=f"C's task {unfinished[0]} to reach D",
    )
    assert cluster.processes["e"].saw("Sending due task process-inbound-batch")

    # nothing lost, nothing doubled
    events = InboundEvent.objects.filter(channel=channel)
    assert events.count() == EVENTS
    assert events.filter(status=InboundEvent.Status.PROCESSED).count() == EVENTS, list(
        events.exclude(status=InboundEvent.Status.PROCESSED).values("status", "error")[:5]
    )
    assert not events.filter(attempts__gt=0).exists()
    # the events C was killed holding among them, each with its one message
    held_deliveries = set(InboundEvent.objects.filter(pk__in=held).values_list("delivery_id", flat=True))
    assert len(held_deliveries) == len(held)
    assert Message.objects.filter(channel=channel, external_id__in=held_deliveries).count() == len(held)
    messages = Message.objects.filter(channel=channel, direction="in")
    expected_ids = {str(1_700_000_000 + i) for i in range(EVENTS)}
    assert messages.count() == EVENTS
    assert set(messages.values_list("external_id", flat=True)) == expected_ids
    assert (
        CaseEvent.objects.filter(kind=CaseEvent.Kind.MESSAGE_IN, message__channel=channel).count() == EVENTS
    )
    authors = {str(900000 + i) for i in range(AUTHORS)}
    identities = Identity.objects.filter(kind="x", platform_id__in=authors)
    assert identities.count() == AUTHORS
    assert Customer.objects.filter(identities__in=identities).distinct().count() == AUTHORS
    cases = Case.objects.filter(messages__channel=channel).distinct()
    assert cases.count() == AUTHORS  # each author's five tweets on one case
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.CREATED, case__in=cases).count() == AUTHORS
    per_case = Case.objects.filter(pk__in=cases.values("pk")).annotate(n=Count("messages"))
    assert set(per_case.values_list("n", flat=True)) == {EVENTS // AUTHORS}

    done_after = EVENTS - done_before_kill
    print(
        f"{EVENTS} events: {done_before_kill} by C and D in {killed_at - started:.2f} s"
        f" ({done_before_kill / (killed_at - started):.0f} msg/s on 2 workers,"
        f" {(cpu_at_kill - cpu_at_start) / done_before_kill * 1000:.2f} ms CPU per message, workers"
        f" and their PostgreSQL backends); C killed holding {len(held)} events locked; the other"
        f" {done_after} by D in {finished_at - killed_at:.2f} s ({done_after / (finished_at - killed_at):.0f}"
        f" msg/s, {(cpu_at_end - cpu_after_kill) / done_after * 1000:.2f} ms CPU per message)"
    )
