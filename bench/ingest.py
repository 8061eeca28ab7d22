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

The stream it sends, the acknowledgement through daphne or uvicorn and the CPU accounting
are in ``bench/_ingest_stream.py``, ``bench/_ingest_http.py`` and ``bench/_machine.py``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from _ingest_http import acknowledge_daphne
from _ingest_stream import (
    MAILBOX,
    MIX,
    PAGE_ID,
    PHONE_NUMBER,
    PUBLIC_URL,
    QUEUE,
    SECRETS,
    WA_NUMBER_ID,
    X_ACCOUNT,
    Stream,
)
from _machine import _cpu_seconds, _cpu_ticks, _python_speed_ms, _steal_share

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
THROWAWAY = "caseline_bench_ingest"


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
