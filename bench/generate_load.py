#!/usr/bin/env python
"""Benchmark: how long ``generate_load`` takes to write 100,000 cases and 1,000,000 messages.

By default it creates a throwaway PostgreSQL database ``caseline_bench`` on the local
server, migrates it, seeds the demo (so the load has agents to assign), runs the load,
writes the timings to ``bench/results/`` and to stdout, and drops the database.

    .venv/bin/python bench/generate_load.py
    .venv/bin/python bench/generate_load.py --cases 10000 --keep
    .venv/bin/python bench/generate_load.py --database-url postgres://postgres@127.0.0.1:5432/mydb

With ``--database-url`` the database is used as it is (migrated, never dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
THROWAWAY = "caseline_bench"


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="Use this database instead of a throwaway one.")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER),
        help="Where the throwaway database is created (a maintenance database URL).",
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--messages-per-case", type=int, default=10)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--method", choices=["auto", "copy", "orm"], default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-demo", action="store_true", help="Skip seed_demo (the load then has no agents)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the throwaway database afterwards.")
    args = parser.parse_args(argv)

    throwaway = not args.database_url
    database_url = args.database_url or urlsplit(args.server_url)._replace(path=f"/{THROWAWAY}").geturl()
    if throwaway:
        _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')
        _admin(args.server_url, f'CREATE DATABASE "{THROWAWAY}"')

    # Settings read the environment once, at import: set it before Django starts.
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ.setdefault("DEBUG", "false")  # DEBUG would keep every query in memory
    os.environ.pop("REDIS_URL", None)  # measure the database, not live events to Redis
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    from cases.loadgen import generate_load

    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        call_command("migrate", verbosity=0)
        timings["migrate"] = time.monotonic() - started
        if not args.no_demo:
            started = time.monotonic()
            call_command("seed_demo", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
            timings["seed_demo"] = time.monotonic() - started
        result = generate_load(
            cases=args.cases,
            messages_per_case=args.messages_per_case,
            batch=args.batch,
            method=args.method,
            seed=args.seed,
            progress=lambda line: print("  " + line, flush=True),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database()), version()")
            size, version = cursor.fetchone()
    finally:
        connections.close_all()
        if throwaway and not args.keep:
            _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')

    report = {
        "bench": "generate_load",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": version.split(",")[0],
        },
        "parameters": {
            "cases": args.cases,
            "messages_per_case": args.messages_per_case,
            "batch": args.batch,
            "seed": args.seed,
        },
        "load": result.as_dict(),
        "other_seconds": {k: round(v, 3) for k, v in timings.items()},
        "database_size_mb": round(size / 2**20, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"generate_load-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    load = report["load"]
    print(
        f"generate_load: {load['counts']['cases']:,} cases, {load['counts']['messages']:,} messages, "
        f"{load['rows']:,} rows in {load['seconds']['total']:.1f}s = {load['rows_per_second']:,} rows/s "
        f"({load['method']}, {os.cpu_count()} CPUs); database {report['database_size_mb']} MB"
    )
    print(json.dumps(report, indent=2))
    print(f"written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
