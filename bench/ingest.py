#!/usr/bin/env python
"""Benchmark: signed webhooks in, messages threaded into cases, on PostgreSQL and Redis.

One command:

    .venv/bin/python bench/ingest.py                 # N = 20,000, then again over 1,000,000 messages
    .venv/bin/python bench/ingest.py -n 2000 --no-load --keep

What it does, in a throwaway database (``caseline_bench_ingest``, dropped afterwards):

1. Migrates, creates five channels (X, Messenger, WhatsApp, e-mail, phone) with their
   secrets in the environment, and builds N webhook bodies of every platform, signed
   as each platform signs them: X tweets and DMs, Messenger messages, WhatsApp
   messages, raw e-mails, Twilio call callbacks. 30% continue a conversation begun
   earlier in the stream (an X reply, a WhatsApp ``context.id``, an e-mail
   ``In-Reply-To``, a second DM or call from the same person).
2. **Acknowledged**: POSTs them through the real URL, middleware and view with the
   Django test ``Client``, in-process, in ``--ack-workers`` processes; each request
   verifies the signature, stores the ``InboundEvent`` and queues its processing task on
   the Redis broker (a queue of the bench's own that no worker reads, purged at the end).
   Reports webhooks/s and p50/p99 acknowledgement latency.
3. **Processed**: ``--workers`` processes drain the inbox as Celery workers would
   (``inbox.inbound_events_process_batch``, or one event per call with
   ``--processor event``), with live events published to the Redis channel layer.
   Reports messages/s and SQL queries per message (every statement the workers sent,
   divided by the messages stored). Meanwhile the tables are analyzed every
   ``--analyze-every`` seconds (5; 0 for never) by autovacuum's rule (those changed by more
   than a tenth since they were last analyzed), as autovacuum keeps a running system's
   statistics current: a fresh database's tables grow from nothing within the run.
4. Unless ``--no-load``: ``manage.py generate_load --cases 100000`` adds 1,000,000
   messages, and steps 2-3 run again with a fresh stream.

``--profile`` runs each processing worker under cProfile, timed in CPU seconds (waits on
PostgreSQL left out), into ``bench/results/ingest-worker-<pid>.prof``; the rates are then
several times lower.

Results go to ``bench/results/ingest-<time>.json`` and stdout, with the machine's
``python_loop_ms`` (``tests.faults.servers.python_speed_ms``: a fixed loop, to compare runs
on machines of different speed; each processing phase records it again just before and
after, with the share of CPU time the hypervisor gave elsewhere meanwhile). ``REDIS_URL`` defaults to
``redis://127.0.0.1:6379/13``: a database number of its own, so no test worker sees
the bench's tasks.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import multiprocessing
import os
import platform
import random
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
THROWAWAY = "caseline_bench_ingest"
QUEUE = "caseline-bench-ingest"
PUBLIC_URL = "https://care.bench.example"

SECRETS = {
    "CASELINE_BENCH_X_CONSUMER_SECRET": "bench-x-consumer-secret",
    "CASELINE_BENCH_META_APP_SECRET": "bench-meta-app-secret",
    "CASELINE_BENCH_MAIL_WEBHOOK": "inbound:bench-mail-password",
    "CASELINE_BENCH_TWILIO_TOKEN": "bench-twilio-token",
}
X_ACCOUNT, PAGE_ID, WA_NUMBER_ID = "777000", "104000000000777", "106540352240777"
MAILBOX, PHONE_NUMBER = "support@bench.example", "+14155550100"
# Share of each platform in the stream.
MIX = {"x_tweet": 25, "x_dm": 15, "messenger": 15, "whatsapp": 20, "email": 15, "call": 10}
TEXTS = [
    "my router has been dead since Monday and nobody answers the phone",
    "I was charged twice this month, I want a refund",
    "thanks, the engineer was great!",
    "how do I change the billing address on my account?",
    "still no signal in the whole street, is there an outage?",
    "this is the third time I write, cancel my contract please",
    "the app keeps logging me out",
    "what a terrible service, never again",
    "can you send me the invoice for March?",
    "parcel arrived damaged, box was soaked",
]


# --- payloads ---------------------------------------------------------------------------------


class Stream:
    """N signed webhook requests of every platform; 30% continue an earlier conversation."""

    def __init__(self, n: int, *, seed: int, tag: str, reply_share: float = 0.3):
        self.rng = random.Random(seed)
        self.tag = tag
        self.n = n
        self.reply_share = reply_share
        self.seq = 0
        self.started: dict[str, list[dict]] = {kind: [] for kind in MIX}
        self.now = datetime.now(UTC) - timedelta(minutes=30)

    def _id(self) -> int:
        self.seq += 1
        return self.seq

    def _at(self) -> datetime:
        self.now += timedelta(milliseconds=50)
        return self.now

    def requests(self) -> list[dict]:
        kinds, weights = zip(*MIX.items(), strict=True)
        out = []
        for _ in range(self.n):
            kind = self.rng.choices(kinds, weights)[0]
            parent = None
            if self.started[kind] and self.rng.random() < self.reply_share:
                parent = self.rng.choice(self.started[kind][-2000:])
            request, thread = getattr(self, f"_{kind}")(parent)
            if parent is None:
                self.started[kind].append(thread)
            out.append(request)
        return out

    def _text(self) -> str:
        return f"{self.rng.choice(TEXTS)} ({self.tag}-{self.seq})"

    def _x_tweet(self, parent):
        at, n = self._at(), self._id()
        author = parent["author"] if parent else f"{self.tag}x{n}"
        tweet = {
            "created_at": at.strftime("%a %b %d %H:%M:%S +0000 %Y"),
            "id_str": f"{self.tag}{n}",
            "text": f"@brand {self._text()}",
            "user": {
                "id_str": author,
                "name": f"Person {author}",
                "screen_name": f"p{author}",
                "followers_count": self.rng.choice([12, 150, 1200, 25000]),
                "verified": False,
            },
        }
        if parent:
            tweet["in_reply_to_status_id_str"] = parent["last"]
            tweet["in_reply_to_user_id_str"] = X_ACCOUNT
        body = json.dumps({"for_user_id": X_ACCOUNT, "tweet_create_events": [tweet]}).encode()
        thread = {"author": author, "last": tweet["id_str"]}
        return _x_request(body), thread

    def _x_dm(self, parent):
        at, n = self._at(), self._id()
        author = parent["author"] if parent else f"{self.tag}d{n}"
        event = {
            "type": "message_create",
            "id": f"{self.tag}{n}",
            "created_timestamp": str(int(at.timestamp() * 1000)),
            "message_create": {
                "target": {"recipient_id": X_ACCOUNT},
                "sender_id": author,
                "message_data": {"text": self._text()},
            },
        }
        users = {author: {"id": author, "name": f"Person {author}", "screen_name": f"p{author}"}}
        body = json.dumps(
            {"for_user_id": X_ACCOUNT, "direct_message_events": [event], "users": users}
        ).encode()
        return _x_request(body), {"author": author}

    def _messenger(self, parent):
        at, n = self._at(), self._id()
        psid = parent["author"] if parent else f"{self.tag}m{n}"
        message = {"mid": f"m_{self.tag}{n}", "text": self._text()}
        if parent:
            message["reply_to"] = {"mid": parent["last"]}
        ms = int(at.timestamp() * 1000)
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": PAGE_ID,
                        "time": ms,
                        "messaging": [
                            {
                                "sender": {"id": psid},
                                "recipient": {"id": PAGE_ID},
                                "timestamp": ms,
                                "message": message,
                            }
                        ],
                    }
                ],
            }
        ).encode()
        return _meta_request("bench-messenger", body), {"author": psid, "last": message["mid"]}

    def _whatsapp(self, parent):
        at, n = self._at(), self._id()
        wa_id = parent["author"] if parent else str(15550000000 + n)
        message = {
            "from": wa_id,
            "id": f"wamid.{self.tag}{n}",
            "timestamp": str(int(at.timestamp())),
            "type": "text",
            "text": {"body": self._text()},
        }
        if parent:
            message["context"] = {"from": "15550783881", "id": parent["last"]}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Person {wa_id}"}, "wa_id": wa_id}],
            "messages": [message],
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340777", "changes": [{"value": value, "field": "messages"}]}],
            }
        ).encode()
        return _meta_request("bench-whatsapp", body), {"author": wa_id, "last": message["id"]}

    def _email(self, parent):
        at, n = self._at(), self._id()
        address = parent["author"] if parent else f"{self.tag}.{n}@customers.example"
        mail = EmailMessage()
        mail["From"] = f"Person {n} <{address}>"
        mail["To"] = MAILBOX
        mail["Subject"] = ("Re: " + parent["subject"]) if parent else f"Help needed {self.tag}-{n}"
        mail["Date"] = format_datetime(at)
        mail["Message-ID"] = make_msgid(idstring=f"{self.tag}{n}", domain="customers.example")
        if parent:
            mail["In-Reply-To"] = parent["last"]
            mail["References"] = " ".join(parent["refs"] + [parent["last"]])
        mail.set_content(f"Hello,\n\n{self._text()}\n\nRegards,\nPerson {n}\n")
        raw = mail.as_bytes()
        thread = {
            "author": address,
            "last": mail["Message-ID"],
            "refs": (parent["refs"] + [parent["last"]]) if parent else [],
            "subject": mail["Subject"] if not parent else parent["subject"],
        }
        auth = base64.b64encode(SECRETS["CASELINE_BENCH_MAIL_WEBHOOK"].encode()).decode()
        request = {
            "path": "/webhooks/bench-mail/",
            "body": raw,
            "content_type": "message/rfc822",
            "headers": {"HTTP_AUTHORIZATION": f"Basic {auth}"},
        }
        return request, thread

    def _call(self, parent):
        at, n = self._at(), self._id()
        number = parent["author"] if parent else f"+1415{(2000000 + n) % 10_000_000:07d}"
        duration = self.rng.randint(20, 900)
        params = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": f"CA{self.tag}{n:030d}"[:34],
            "CallStatus": "completed",
            "Direction": "inbound",
            "From": number,
            "To": PHONE_NUMBER,
            "CallDuration": str(duration),
            "Timestamp": format_datetime(at + timedelta(seconds=duration)),
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE{self.tag}{n}",
        }
        body = urlencode(params).encode()
        path = "/webhooks/bench-phone/"
        from connectors import voice

        sig = voice.signature(
            SECRETS["CASELINE_BENCH_TWILIO_TOKEN"], PUBLIC_URL + path, sorted(params.items())
        )
        request = {
            "path": path,
            "body": body,
            "content_type": "application/x-www-form-urlencoded",
            "headers": {"HTTP_X_TWILIO_SIGNATURE": sig},
        }
        return request, {"author": number}


def _x_request(body: bytes) -> dict:
    from connectors import x

    return {
        "path": "/webhooks/bench-x/",
        "body": body,
        "content_type": "application/json",
        "headers": {
            "HTTP_X_TWITTER_WEBHOOKS_SIGNATURE": x.signature(
                SECRETS["CASELINE_BENCH_X_CONSUMER_SECRET"], body
            )
        },
    }


def _meta_request(slug: str, body: bytes) -> dict:
    from connectors import meta

    return {
        "path": f"/webhooks/{slug}/",
        "body": body,
        "content_type": "application/json",
        "headers": {
            "HTTP_X_HUB_SIGNATURE_256": meta.signature(body, SECRETS["CASELINE_BENCH_META_APP_SECRET"])
        },
    }


# --- setup ------------------------------------------------------------------------------------


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def _channels() -> None:
    from cases.models import Department, ServicePromise
    from connectors.models import Channel

    social, _ = Department.objects.get_or_create(slug="bench-social", defaults={"name": "Bench social care"})
    service, _ = Department.objects.get_or_create(slug="bench-service", defaults={"name": "Bench service"})
    rows = [
        ("bench-x", "x", X_ACCOUNT, social, {"consumer_secret": "CASELINE_BENCH_X_CONSUMER_SECRET"}),
        ("bench-messenger", "facebook", PAGE_ID, social, {"app_secret": "CASELINE_BENCH_META_APP_SECRET"}),
        (
            "bench-whatsapp",
            "whatsapp",
            WA_NUMBER_ID,
            social,
            {"app_secret": "CASELINE_BENCH_META_APP_SECRET"},
        ),
        ("bench-mail", "email", MAILBOX, service, {"webhook_secret": "CASELINE_BENCH_MAIL_WEBHOOK"}),
        ("bench-phone", "phone", PHONE_NUMBER, service, {"auth_token": "CASELINE_BENCH_TWILIO_TOKEN"}),
    ]
    for slug, kind, account, department, secret_env in rows:
        channel, _ = Channel.objects.update_or_create(
            slug=slug,
            defaults={
                "kind": kind,
                "name": slug,
                "account_id": account,
                "department": department,
                "secret_env": secret_env,
                "is_active": True,
            },
        )
        minutes = 60 if channel.is_social else 8 * 60
        ServicePromise.objects.get_or_create(
            channel=channel, defaults={"first_response_minutes": minutes, "next_response_minutes": minutes}
        )


# --- the two phases ---------------------------------------------------------------------------


def _ack_worker(requests: list[dict], out) -> None:
    from django.db import connections
    from django.test import Client

    connections.close_all()
    client = Client()
    latencies, statuses = [], {}
    for request in requests:
        began = time.perf_counter()
        response = client.post(
            request["path"], data=request["body"], content_type=request["content_type"], **request["headers"]
        )
        latencies.append(time.perf_counter() - began)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    connections.close_all()
    out.send({"latencies": latencies, "statuses": statuses})


def acknowledge(requests: list[dict], workers: int) -> dict:
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    chunks = [requests[i::workers] for i in range(workers)]
    pipes, procs = [], []
    began = time.perf_counter()
    for chunk in chunks:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_ack_worker, args=(chunk, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    results = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - began
    latencies = sorted(lat for r in results for lat in r["latencies"])
    statuses: dict = {}
    for r in results:
        for code, count in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    return {
        "webhooks": len(requests),
        "workers": workers,
        "seconds": round(elapsed, 2),
        "per_second": round(len(requests) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


# --- acknowledgement through daphne ----------------------------------------------------------


def _raw_request(request: dict) -> bytes:
    """The HTTP/1.1 bytes of one stream request (its WSGI-style ``HTTP_*`` headers spelt out)."""
    lines = [
        f"POST {request['path']} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {request['content_type']}",
        f"Content-Length: {len(request['body'])}",
    ]
    for key, value in request["headers"].items():
        name = "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_"))
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request["body"]


async def _http_connection(port: int, raw: list[bytes], latencies: list[float], statuses: dict) -> None:
    """Send ``raw`` requests one after the other on one keep-alive connection."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in raw:
            began = time.perf_counter()
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            length, chunked = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            elif length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            code = int(head.split(b" ", 2)[1])
            statuses[code] = statuses.get(code, 0) + 1
            if head.lower().find(b"connection: close") >= 0:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def _http_loader(port: int, raw: list[bytes], concurrency: int, out) -> None:
    import asyncio

    latencies: list[float] = []
    statuses: dict = {}

    async def run() -> None:
        await asyncio.gather(
            *(_http_connection(port, raw[i::concurrency], latencies, statuses) for i in range(concurrency))
        )

    cpu = time.process_time()
    asyncio.run(run())
    out.send({"latencies": latencies, "statuses": statuses, "cpu": time.process_time() - cpu})


def _cpu_seconds(pid: int, **kwargs) -> float:
    """``tests.faults.servers.cpu_seconds`` (importable once ``main`` has put the project on the path)."""
    from tests.faults.servers import cpu_seconds

    return cpu_seconds(pid, **kwargs)


def _python_speed_ms() -> float:
    from tests.faults.servers import python_speed_ms

    return python_speed_ms()


def _servers_cpu_seconds(processes) -> float:
    """CPU seconds of the server processes and of their child processes (uvicorn's workers)."""
    pids = {p.process.pid for p in processes}
    for pid in list(pids):
        with contextlib.suppress(FileNotFoundError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pids.update(int(c) for c in children)
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _cpu_seconds(pid, reaped_children=True)
    return total


def _backend_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL backend connected to the bench database but this one."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _cpu_seconds(pid)
    return total


def acknowledge_daphne(requests: list[dict], servers: int, concurrency: int, server: str = "daphne") -> dict:
    """POST the stream to daphne (``config.asgi:application``, as in production) on 127.0.0.1:
    ``servers`` processes on one socket, ``concurrency`` keep-alive connections from one
    asyncio client process. ``server="uvicorn"`` serves the same app with uvicorn instead."""
    from django.db import connections

    from tests.faults import servers as fault_servers

    env = {k: v for k, v in os.environ.items() if k != "DB_POOL"}
    env.update({"FAULTS_ASGI": "config.asgi:application", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
    if server == "uvicorn":
        daphnes, port = fault_servers.start_uvicorn(env, processes=servers, log_level="info")
    else:
        daphnes, port = fault_servers.start_daphne(env, processes=servers, access_log=False)
    try:
        raw = [_raw_request(r) for r in requests]
        # Warm each process up (imports, connections), outside the measurement.
        warm: dict = {}
        import asyncio

        asyncio.run(
            _http_connection(
                port,
                [b"GET /webhooks/bench-x/?crc_token=warm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] * 20,
                [],
                warm,
            )
        )
        connections.close_all()
        server_cpu = _servers_cpu_seconds(daphnes)
        db_cpu = _backend_cpu_seconds()
        connections.close_all()
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        began = time.perf_counter()
        proc = ctx.Process(target=_http_loader, args=(port, raw, concurrency, child))
        proc.start()
        result = parent.recv()
        proc.join()
        elapsed = time.perf_counter() - began
        server_cpu = _servers_cpu_seconds(daphnes) - server_cpu
        db_cpu = _backend_cpu_seconds() - db_cpu
        connections.close_all()
    finally:
        for process in daphnes:
            process.stop()
    latencies = sorted(result["latencies"])
    n = len(requests)
    return {
        "webhooks": n,
        "server": server,
        "servers": servers,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "per_second": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(result["statuses"].items())},
        # CPU per acknowledged webhook: daphne processes, their PostgreSQL backends, and the
        # load generator (which shares the machine). cores * 1000 / server+db is what two
        # idle cores would reach without the client.
        "cpu_ms_per_webhook": {
            "daphne": round(server_cpu * 1000 / n, 3),
            "postgres": round(db_cpu * 1000 / n, 3),
            "client": round(result["cpu"] * 1000 / n, 3),
        },
        "idle_machine_estimate_per_second": round(
            (os.cpu_count() or 1) * n / max(server_cpu + db_cpu, 1e-9), 1
        ),
        "broker_messages": _queue_length(),
    }


def _queue_length() -> int:
    from config.celery import app

    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(QUEUE, passive=True).message_count
        except conn.channel_errors:  # on Redis an empty queue is no key at all
            return 0


def _process_worker(processor: str, batch: int, out) -> None:
    from django.db import connection, connections

    from connectors import inbox
    from connectors.models import InboundEvent

    connections.close_all()
    queries = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    cpu_before = _cpu_seconds(os.getpid()), _cpu_seconds(backend)

    kinds: dict[str, int] = {}
    log_kinds = os.environ.get("BENCH_STATEMENTS")

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        if log_kinds:
            kind = re.sub(r"\d+", "N", " ".join(sql.split()[:6]))[:110]
            kinds[kind] = kinds.get(kind, 0) + 1
        return execute(sql, params, many, context)

    events = retries = deferred = 0
    reruns: dict[str, int] = {}
    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile(time.process_time)  # CPU, not time spent waiting
        profile.enable()
    with connection.execute_wrapper(count):
        if processor == "batch":
            while True:
                try:
                    done = inbox.inbound_events_process_batch(limit=batch)
                except inbox.TRANSIENT_ERRORS:  # as the task would: try again, a while
                    retries += 1
                    if retries > MAX_BATCH_RETRIES:  # the database is gone (the bench ended)
                        raise
                    time.sleep(0.05)
                    continue
                if not done.events:
                    break
                events += done.events - done.statuses.get("pending", 0)
                deferred += done.statuses.get("pending", 0)
                for cause, count in done.reruns.items():
                    reruns[cause] = reruns.get(cause, 0) + count
        else:
            while True:
                ids = list(
                    InboundEvent.objects.filter(status=InboundEvent.Status.PENDING)
                    .order_by("received_at", "pk")
                    .values_list("pk", flat=True)[:batch]
                )
                if not ids:
                    break
                for event_id in ids:
                    if inbox.inbound_event_process(event_id=event_id) is not None:
                        events += 1
    cpu = _cpu_seconds(os.getpid()) - cpu_before[0], _cpu_seconds(backend) - cpu_before[1]
    if profile is not None:
        profile.disable()
        RESULTS.mkdir(exist_ok=True)
        profile.dump_stats(RESULTS / f"ingest-worker-{os.getpid()}.prof")
    connections.close_all()
    if log_kinds:
        for kind, n in sorted(kinds.items(), key=lambda item: -item[1]):
            print(f"[{os.getpid()}] {n:7d}  {kind}", file=sys.stderr)
    out.send(
        {
            "queries": queries,
            "events": events,
            "retries": retries,
            "deferred": deferred,
            "reruns": reruns,
            "python_cpu": cpu[0],
            "postgres_cpu": cpu[1],
        }
    )


def process(processor: str, workers: int, batch: int, analyze_every: float = 0) -> dict:
    from django.db import connections
    from django.db.models import Count

    from cases.models import Message
    from connectors.models import InboundEvent

    before = Message.objects.count()
    connections.close_all()
    loop_before, ticks_before = _python_speed_ms(), _cpu_ticks()
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    stop_analyzing = threading.Event()
    analyzer = threading.Thread(target=_analyze_while, args=(stop_analyzing, analyze_every), daemon=True)
    began = time.perf_counter()
    for _ in range(workers):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_process_worker, args=(processor, batch, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    if analyze_every:
        analyzer.start()
    results = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - began
    ticks_after = _cpu_ticks()
    stop_analyzing.set()
    if analyze_every:
        analyzer.join()
    loop_after = _python_speed_ms()
    messages = Message.objects.count() - before
    statuses = dict(
        InboundEvent.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    queries = sum(r["queries"] for r in results)
    python_cpu = sum(r["python_cpu"] for r in results)
    postgres_cpu = sum(r["postgres_cpu"] for r in results)
    cpu_ms = (python_cpu + postgres_cpu) * 1000 / max(messages, 1)
    return {
        "processor": processor,
        "workers": workers,
        "batch": batch,
        "messages": messages,
        "seconds": round(elapsed, 2),
        "per_second": round(messages / elapsed, 1),
        "queries_per_message": round(queries / max(messages, 1), 2),
        # CPU the workers and their PostgreSQL backends spent per message: what the rate
        # would be on an otherwise idle machine is about cores / this.
        "cpu_ms_per_message": {
            "python": round(python_cpu * 1000 / max(messages, 1), 3),
            "postgres": round(postgres_cpu * 1000 / max(messages, 1), 3),
            "total": round(cpu_ms, 3),
        },
        "idle_machine_estimate_per_second": round((os.cpu_count() or 1) * 1000 / cpu_ms, 1)
        if cpu_ms
        else None,
        "batches_retried": sum(r.get("retries", 0) for r in results),
        "events_deferred": sum(r.get("deferred", 0) for r in results),
        # Chunks of ten events rolled back and run again one by one, by cause.
        "chunks_rerun": {
            cause: sum(r["reruns"].get(cause, 0) for r in results)
            for cause in sorted({c for r in results for c in r["reruns"]})
        },
        "event_statuses": statuses,
        "analyzed_every_seconds": analyze_every or None,
        # The machine's own speed around this phase (it moves by a fifth within an hour on
        # shared hosts): the fixed loop just before and just after, and the share of CPU
        # time the hypervisor gave elsewhere (steal) while the workers ran.
        "machine": {
            "python_loop_ms": [loop_before, loop_after],
            "steal_share": _steal_share(ticks_before, ticks_after),
        },
    }


def _cpu_ticks() -> list[int]:
    """The machine's CPU ticks by kind, from /proc/stat's ``cpu`` line ([] off Linux)."""
    try:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return []


def _steal_share(before: list[int], after: list[int]) -> float | None:
    """Steal ticks (the eighth field) as a share of all ticks between two readings."""
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8])
    return round(delta[7] / total, 3) if total else None


# Failed batches a worker tries again before it gives up (a lost deadlock, a restart).
MAX_BATCH_RETRIES = 100
# The tables the inbox writes and reads; a fresh database starts with no statistics on them.
ANALYZED_TABLES = (
    "connectors_inboundevent",
    "customers_customer",
    "customers_identity",
    "cases_case",
    "cases_message",
    "cases_caseevent",
)


def _analyze_while(stop, every: float) -> None:
    """What autovacuum does for a running system: keep the planner's statistics current.

    The throwaway database starts empty, and its tables grow from nothing to tens of
    thousands of rows within the run, while autovacuum (off on some servers, and otherwise
    napping a minute between rounds) never analyzes them in time: the planner, believing
    them empty, scans whole tables for look-ups an index answers (the batch's repeat-contact
    look-up took 45 ms instead of 0.3 ms by the end of a run). A long-running system has
    current statistics; this thread gives the bench's database the same, by autovacuum's
    own rule: every ``every`` seconds it analyzes the tables changed by more than
    ``autovacuum_analyze_threshold`` rows plus ``autovacuum_analyze_scale_factor`` of the
    table since they were last analyzed (so a table of a million rows is left alone)."""
    from django.db import connection

    rule = """
        SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        WHERE s.relname = ANY(%s) AND s.n_mod_since_analyze >
            current_setting('autovacuum_analyze_threshold')::float
            + current_setting('autovacuum_analyze_scale_factor')::float * greatest(c.reltuples, 0)
    """
    try:
        while not stop.wait(every):
            with connection.cursor() as cursor:
                cursor.execute(rule, [list(ANALYZED_TABLES)])
                due = [row[0] for row in cursor.fetchall()]
                if due:
                    cursor.execute(f"ANALYZE {', '.join(due)}")
    finally:
        connection.close()


def run_round(label: str, args, *, seed: int) -> dict:
    started = time.perf_counter()
    requests = Stream(args.n, seed=seed, tag=label).requests()
    print(
        f"[{label}] built {len(requests)} signed webhooks in {time.perf_counter() - started:.1f}s", flush=True
    )
    load_before = os.getloadavg()[0]
    if args.ack_via == "daphne":
        ack = acknowledge_daphne(requests, args.ack_servers, args.ack_concurrency)
    elif args.ack_via == "uvicorn":
        ack = acknowledge_daphne(requests, args.ack_servers, args.ack_concurrency, server="uvicorn")
    else:
        ack = acknowledge(requests, args.ack_workers)
    ack["load_average_1m_before"] = round(load_before, 2)
    print(f"[{label}] acknowledged: {json.dumps(ack)}", flush=True)
    _purge_queue()
    if args.ack_only:
        return {"acknowledged": ack}
    load_before = os.getloadavg()[0]
    done = process(args.processor, args.workers, args.batch, args.analyze_every)
    done["load_average_1m_before"] = round(load_before, 2)
    print(f"[{label}] processed: {json.dumps(done)}", flush=True)
    return {"acknowledged": ack, "processed": done}


def _purge_queue() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="Webhooks per round.")
    parser.add_argument("--server-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument(
        "--ack-via",
        choices=["daphne", "uvicorn", "client"],
        default="uvicorn",
        help=(
            "uvicorn: HTTP to uvicorn (httptools, uvloop) serving config.asgi, as in production; "
            "daphne: the same app on daphne, for comparison; client: Django's test Client in-process."
        ),
    )
    parser.add_argument("--ack-servers", type=int, default=2, help="daphne processes (--ack-via daphne).")
    parser.add_argument(
        "--ack-concurrency", type=int, default=32, help="Open connections (--ack-via daphne)."
    )
    parser.add_argument("--ack-workers", type=int, default=2, help="Client processes (--ack-via client).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--processor", choices=["batch", "event"], default="batch")
    parser.add_argument("--load-cases", type=int, default=100_000)
    parser.add_argument("--no-load", action="store_true", help="Skip the round over 1,000,000 messages.")
    parser.add_argument("--keep", action="store_true", help="Keep the throwaway database.")
    parser.add_argument(
        "--analyze-every",
        type=float,
        default=5.0,
        help="Seconds between ANALYZE runs while processing, as autovacuum would (0: never).",
    )
    parser.add_argument(
        "--ack-only", action="store_true", help="Measure acknowledgement only (implies --no-load)."
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile each processing worker into bench/results/ingest-worker-<pid>.prof (slower).",
    )
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["BENCH_PROFILE"] = "1"

    database_url = urlsplit(args.server_url)._replace(path=f"/{THROWAWAY}").geturl()
    _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')
    _admin(args.server_url, f'CREATE DATABASE "{THROWAWAY}"')

    # Settings read the environment once, at import: set it before Django starts.
    os.environ.update(SECRETS)
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": args.redis_url,
            "CELERY_QUEUE": QUEUE,
            "CHANNEL_LAYER_PREFIX": "cl-bench-ingest",
            "PUBLIC_URL": PUBLIC_URL,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": "bench-only-not-a-secret",
            "DEBUG": "false",  # DEBUG would keep every query in memory
            "ALLOWED_HOSTS": "testserver,127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            # The bench forks its workers: a connection pool made before the fork would be
            # shared by them. The servers it starts (daphne, uvicorn) keep the default.
            "DB_POOL": "false",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    # Load the whole request and processing path before the workers fork, so they share it.
    import config.urls  # noqa: F401
    from connectors import inbox  # noqa: F401

    report: dict = {
        "benchmark": "ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
            "python_loop_ms": _python_speed_ms(),
        },
        "n": args.n,
        "mix": MIX,
        "reply_share": 0.3,
        "ack_method": (
            f"HTTP/1.1 keep-alive to {args.ack_servers} {args.ack_via} processes serving config.asgi:application"
            if args.ack_via != "client"
            else "django.test.Client in-process (full middleware, URL routing, view)"
        ),
    }
    try:
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            report["machine"]["postgresql"] = cursor.fetchone()[0]
        _channels()
        report["empty"] = run_round("e", args, seed=args.seed)
        if not (args.no_load or args.ack_only):
            began = time.perf_counter()
            call_command("generate_load", cases=args.load_cases, verbosity=0)
            from cases.models import Message

            report["load"] = {
                "messages": Message.objects.count(),
                "seconds": round(time.perf_counter() - began, 1),
            }
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            print(f"load: {report['load']}", flush=True)
            report["loaded"] = run_round("l", args, seed=args.seed + 1)
            empty, loaded = (
                report["empty"]["processed"]["per_second"],
                report["loaded"]["processed"]["per_second"],
            )
            report["loaded_vs_empty"] = round(loaded / empty, 3)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"ingest-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
