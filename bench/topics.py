#!/usr/bin/env python
"""Benchmark: the topics job over 1,000,000 customer messages, and the topics page over its table.

    .venv/bin/python bench/topics.py                       # 100,000 cases x 20 messages (1M inbound)
    .venv/bin/python bench/topics.py --cases 5000 --keep   # a quick run, keep the database
    .venv/bin/python bench/topics.py --reuse               # measure again over a loaded database
    .venv/bin/python bench/topics.py --meaning-sample 2000 --meaning-path /tmp/topics-site

What it does, in its own database (``caseline_h3bench`` unless ``--database``; dropped
afterwards unless ``--keep``):

1. **Load**: ``bench/generate_load.py`` migrates it, runs ``seed_demo`` and writes
   ``--cases`` cases of ``--messages-per-case`` messages with COPY (about half of them the
   customer's: the job reads only those). Skipped with ``--reuse`` when the database holds
   at least ``--cases`` cases.
2. **Full count**: ``topics_rebuild`` (empty table, watermark 0) counts every customer
   message, in a process of its own so its peak memory (``ru_maxrss``) is the job's alone:
   messages/s, batches, cells written, the table's rows and size.
3. **Incremental**: ``generate_load`` adds ``--increment`` cases, then ``topics_refresh``
   counts only their customer messages: messages/s of a routine run.
4. **Page**: the topics page (top 50, four filter sets), a phrase's drill-down and the CSV
   of 8 weeks, for an admin, through Django's test client (every middleware and template,
   no network), ``--requests`` each after a warm-up: p50/p95/max and SQL statements.
5. **Sentence model** (``--meaning-sample N``): only where the ``topics`` extra is
   importable (``--meaning-path`` adds a directory to the child's ``PYTHONPATH``): loads
   the model, groups N customer messages by meaning: messages/s and peak memory.

Figures go to stdout and ``bench/results/topics-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE = "caseline_h3bench"
sys.path.insert(0, str(ROOT))


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def _loaded_cases(url: str) -> int | None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('cases_case')").fetchone()[0] is None:
                return 0
            return conn.execute("SELECT count(*) FROM cases_case").fetchone()[0]
    except psycopg.OperationalError:
        return None


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["DEBUG"] = "false"  # DEBUG would keep every query in memory
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ.pop("REDIS_URL", None)  # the database is measured, not live events
    import django

    django.setup()


def _table_figures() -> dict:
    from django.db import connection

    from cases.models import TopicWeek

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [TopicWeek._meta.db_table])
        size = cursor.fetchone()[0]
    return {"rows": TopicWeek.objects.count(), "size_mb": round(size / 2**20, 1)}


def phase_job(args) -> dict:
    from cases.models import Message
    from cases.topics import services

    inbound = Message.objects.filter(direction="in").count()
    started_cpu = time.process_time()
    result = services.topics_rebuild(settle=timedelta(0), batch=args.batch)
    cpu = time.process_time() - started_cpu
    return {
        "inbound_messages": inbound,
        "messages": result.messages,
        "batches": result.batches,
        "cells_written": result.cells,
        "seconds": round(result.seconds, 1),
        "messages_per_second": round(result.messages / result.seconds),
        "python_cpu_seconds": round(cpu, 1),
        "peak_rss_mb": _peak_mb(),
        "table": _table_figures(),
    }


def phase_incremental(args) -> dict:
    from cases.loadgen import generate_load
    from cases.topics import services

    generate_load(cases=args.increment, messages_per_case=args.messages_per_case, seed=7)
    result = services.topics_refresh(settle=timedelta(0), batch=args.batch)
    return {
        "messages": result.messages,
        "seconds": round(result.seconds, 2),
        "messages_per_second": round(result.messages / result.seconds) if result.seconds else None,
        "peak_rss_mb": _peak_mb(),
        "table": _table_figures(),
    }


def phase_pages(args) -> dict:
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from connectors.models import Channel
    from tests.faults.client import percentile

    admin = get_user_model().objects.filter(is_superuser=True).first()
    client = Client()
    client.force_login(admin)
    channel = Channel.objects.filter(kind="x").order_by("pk").first()

    def measure(path: str) -> dict:
        def get():
            response = client.get(path)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
            return body

        for _ in range(3):
            get()
        ms = []
        for _ in range(args.requests):
            started = time.perf_counter()
            body = get()
            ms.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as captured:
            get()
        return {
            "p50_ms": round(percentile(ms, 50), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "max_ms": round(max(ms), 1),
            "queries": len(captured),
            "bytes": len(body),
        }

    from cases.topics import selectors

    top = selectors.topic_list(_default_filters(), limit=1)
    phrase = top[0].phrase if top else "flight"
    paths = {
        "list": "/desk/topics/",
        "list_rising": "/desk/topics/?order=rising",
        "list_channel_bigrams": f"/desk/topics/?channel={channel.pk}&words=2&weeks=12",
        "list_category": "/desk/topics/?category=major&q=bag",
        "detail": "/desk/topics/phrase/?" + urlencode({"phrase": phrase}),
        "csv_8_weeks": "/desk/topics.csv",
    }
    return {name: measure(path) for name, path in paths.items()}


def _default_filters():
    from zoneinfo import ZoneInfo

    from django.conf import settings
    from django.utils import timezone

    from cases.topics import selectors
    from cases.topics.services import week_of

    return selectors.TopicFilters(week=week_of(timezone.now(), ZoneInfo(settings.TIME_ZONE)))


def phase_meaning(args) -> dict:
    from cases.models import Message
    from cases.topics import meaning, phrases

    if not meaning.available():
        return {"available": False}
    texts = [
        phrases.message_text(subject, text)
        for subject, text in Message.objects.filter(direction="in")
        .order_by("-pk")
        .values_list("subject", "text")[: args.meaning_sample]
    ]
    started = time.monotonic()
    grouper = meaning.SentenceGrouper()
    load = time.monotonic() - started
    started = time.monotonic()
    themes = grouper.themes(texts)
    seconds = time.monotonic() - started
    return {
        "available": True,
        "messages": len(texts),
        "model_load_seconds": round(load, 1),
        "seconds": round(seconds, 1),
        "messages_per_second": round(len(texts) / seconds, 1),
        "themes": len(themes),
        "largest_themes": [(name, len(members)) for name, members in themes[:5]],
        "peak_rss_mb": _peak_mb(),
        "torch_threads": __import__("torch").get_num_threads(),
    }


PHASES = {"job": phase_job, "incremental": phase_incremental, "pages": phase_pages, "meaning": phase_meaning}


def _child(phase: str, url: str, args, extra_path: str = "") -> dict:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), extra_path) if p)
    command = [sys.executable, __file__, "--phase", phase, "--database-url", url]
    command += [
        "--batch",
        str(args.batch),
        "--requests",
        str(args.requests),
        "--increment",
        str(args.increment),
    ]
    command += [
        "--messages-per-case",
        str(args.messages_per_case),
        "--meaning-sample",
        str(args.meaning_sample),
    ]
    print(f"-- {phase} ...", flush=True)
    out = subprocess.run(command, check=True, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(figures), flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)  # the phases' own
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--messages-per-case", type=int, default=20)
    parser.add_argument("--increment", type=int, default=1000, help="Cases added before the incremental run.")
    parser.add_argument("--batch", type=int, default=10_000, help="Messages per batch of the job.")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--meaning-sample", type=int, default=0)
    parser.add_argument("--meaning-path", default="", help="A directory holding the topics extra.")
    parser.add_argument("--reuse", action="store_true", help="Use the database as loaded, if loaded enough.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args(argv)

    if args.phase:
        _setup_django(args.database_url)
        print(json.dumps(PHASES[args.phase](args)))
        return 0

    url = urlsplit(args.server_url)._replace(path=f"/{args.database}").geturl()
    report = {
        "bench": "topics",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "parameters": {
            k: getattr(args, k) for k in ("cases", "messages_per_case", "increment", "batch", "requests")
        },
    }
    loaded = _loaded_cases(url) if args.reuse else None
    try:
        if not loaded or loaded < args.cases:
            _admin(args.server_url, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            _admin(args.server_url, f'CREATE DATABASE "{args.database}"')
            print(f"Loading {args.cases:,} cases x {args.messages_per_case} messages ...", flush=True)
            started = time.monotonic()
            loader = [sys.executable, str(ROOT / "bench/generate_load.py"), "--database-url", url]
            loader += ["--cases", str(args.cases), "--messages-per-case", str(args.messages_per_case)]
            subprocess.run(loader, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            report["load_seconds"] = round(time.monotonic() - started, 1)
        _admin(url, "VACUUM ANALYZE")
        report["job"] = _child("job", url, args)
        report["incremental"] = _child("incremental", url, args)
        _admin(url, "ANALYZE cases_topicweek")
        report["pages"] = _child("pages", url, args)
        if args.meaning_sample:
            report["meaning"] = _child("meaning", url, args, args.meaning_path)
    finally:
        if not args.keep:
            _admin(args.server_url, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"topics-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    job = report["job"]
    print(
        f"topics job: {job['messages']:,} customer messages in {job['seconds']}s = "
        f"{job['messages_per_second']:,}/s, peak {job['peak_rss_mb']} MB, {job['table']['rows']:,} cells "
        f"({job['table']['size_mb']} MB); page p95 {report['pages']['list']['p95_ms']} ms"
    )
    print(f"written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
