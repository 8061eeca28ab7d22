#!/usr/bin/env python
"""Benchmark: the desk pages at 100,000 cases: server time, queries, and queue requests/s over HTTP.

Runs against a database filled by ``generate_load`` (1,000,000 messages for 100,000 cases).
By default that is ``caseline_bench``, what ``bench/generate_load.py --keep`` leaves
behind: when it exists and holds at least ``--cases`` cases it is used as it is and left
alone; otherwise it is created, loaded with ``bench/generate_load.py`` (migrate,
``seed_demo``, ``generate_load``; about a minute and a half) and dropped afterwards
unless ``--keep``. With ``--database-url`` that database is used (loaded first when it
holds fewer cases) and never dropped.

Measured, in this process (Django's test client through every middleware and the
templates, no network), ``--requests`` times each after a warm-up:

- the queue, first page and a page ``--depth`` rows deep (keyset paging), for
  ``--agent`` (the demo agent: Social Care, the largest department);
- the case page, over ``--case-samples`` random cases of that department;
- the supervisor board, for ``--supervisor``;
- the report charts page and each figure's CSV, for ``--supervisor``;

p50/p95/max server time and the number of SQL statements per request. Then over
HTTP: ``--daphne`` daphne processes (one shared socket) serve the queue's first page to
``--clients`` concurrent keep-alive clients for ``--seconds``: requests/s, latency and
errors. The clients run on the same machine, so they take some of its CPU too.

Targets (issue 5): p95 under 40 ms, at most 10 queries per page, a deep page as fast as
the first, at least 100 queue requests/s on 2 cores. Figures go to stdout and to
``bench/results/pages-<time>.json``.

    .venv/bin/python bench/pages.py
    .venv/bin/python bench/pages.py --database-url postgres://postgres@127.0.0.1:5432/mydb
    .venv/bin/python bench/pages.py --requests 100 --seconds 10 --clients 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
THROWAWAY = "caseline_bench"
sys.path.insert(0, str(ROOT))

from tests.faults import servers  # noqa: E402
from tests.faults.client import percentile  # noqa: E402

REPORT_FIGURES = ("promises", "first-response", "volume", "backlog", "department-clock")
ROW_RE = re.compile(r'<tr[^>]* data-case="')


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def _loaded_cases(database_url: str) -> int | None:
    """Cases in the database (None: no such database, or not migrated)."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('cases_case')").fetchone()[0] is None:
                return 0
            return conn.execute("SELECT count(*) FROM cases_case").fetchone()[0]
    except psycopg.OperationalError:
        return None


def _prepare(args) -> tuple[str, bool]:
    """The database URL to measure, and whether this run created it (then it drops it)."""
    url = args.database_url or urlsplit(args.server_url)._replace(path=f"/{THROWAWAY}").geturl()
    found = _loaded_cases(url)
    created = False
    if found is None:
        if args.database_url:
            raise SystemExit(f"cannot connect to {url}")
        _admin(args.server_url, f'CREATE DATABASE "{THROWAWAY}"')
        created = True
        found = 0
    if found >= args.cases:
        print(f"Using {urlsplit(url).path[1:]}: {found:,} cases already loaded.", flush=True)
    else:
        print(f"Loading {args.cases:,} cases into {urlsplit(url).path[1:]} (generate_load) ...", flush=True)
        loader = [sys.executable, str(ROOT / "bench/generate_load.py"), "--database-url", url]
        subprocess.run([*loader, "--cases", str(args.cases)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    _vacuum_once(url)
    return url, created


def _vacuum_once(database_url: str) -> None:
    """VACUUM ANALYZE a freshly loaded database, as autovacuum would have soon after the load:
    until the visibility map is set, index-only reads (the board's) visit the table too."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(last_vacuum, last_autovacuum) FROM pg_stat_user_tables WHERE relname = 'cases_case'"
        ).fetchone()
        if row is None or row[0] is None:
            print("VACUUM ANALYZE (never vacuumed since the load) ...", flush=True)
            conn.execute("VACUUM ANALYZE")


def _setup_django(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["DEBUG"] = "false"  # as served; DEBUG would also keep every query in memory
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ["SESSION_COOKIE_SECURE"] = "false"
    os.environ["CSRF_COOKIE_SECURE"] = "false"
    os.environ["CHANNEL_LAYER_PREFIX"] = "cl-bench-pages"
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def _stats(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {
        "requests": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
    }


def _get(client, path: str):
    """GET ``path``, reading a streamed body to its end (a CSV's statements run as it is read)."""
    response = client.get(path)
    if response.streaming:
        response.streamed_bytes = sum(len(chunk) for chunk in response.streaming_content)
    return response


def _measure(client, paths: list[str], *, requests: int, warmup: int, check) -> dict:
    """Time ``requests`` GETs cycling through ``paths`` after ``warmup`` untimed ones, then count
    each path's SQL statements once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(warmup):
        check(_get(client, paths[n % len(paths)]))
    seconds, cpu = [], []
    for n in range(requests):
        path = paths[n % len(paths)]
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = _get(client, path)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
        check(response)
    queries = set()
    for path in paths[: min(len(paths), 20)]:
        with CaptureQueriesContext(connection) as captured:
            check(_get(client, path))
        queries.add(len(captured))
    # Our own CPU per request (PostgreSQL's not included): what the page costs whatever else runs.
    cpu_ms = sorted(c * 1000 for c in cpu)
    return {**_stats(seconds), "cpu_p50_ms": round(percentile(cpu_ms, 50), 2), "queries": sorted(queries)}


def _expect(status: int, rows: int | None = None):
    def check(response) -> None:
        if response.status_code != status:
            raise RuntimeError(f"{response.request['PATH_INFO']} answered {response.status_code}")
        if rows is not None:
            found = len(ROW_RE.findall(response.content.decode()))
            if found != rows:
                raise RuntimeError(f"{response.request['PATH_INFO']} showed {found} rows, expected {rows}")

    return check


def _in_process(args) -> tuple[dict, dict]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from cases import selectors
    from cases.models import Case

    users = get_user_model().objects
    agent = users.get(email=args.agent)
    supervisor = users.get(email=args.supervisor)
    departments = selectors.user_department_ids(user=agent)
    work = Case.objects.filter(department_id__in=departments, status__in=selectors.WORK_STATUSES)
    open_cases = work.count()
    deep_row = selectors.case_queue(user=agent, view="department").values_list("due_at", "id")[args.depth]
    cursor = selectors.QueueCursor(due_at=deep_row[0], id=deep_row[1]).encode()
    rng = random.Random(args.seed)
    ids = list(work.values_list("id", flat=True))
    sample = Case.objects.filter(pk__in=rng.sample(ids, min(args.case_samples, len(ids))))
    references = list(sample.values_list("reference", flat=True))

    agent_client = Client()
    agent_client.force_login(agent)
    boss_client = Client()
    boss_client.force_login(supervisor)
    page = selectors.QUEUE_PAGE_SIZE
    runs = {
        "queue_first_page": (agent_client, ["/desk/?view=department"], _expect(200, page)),
        f"queue_page_{args.depth}_rows_deep": (
            agent_client,
            [f"/desk/?view=department&after={cursor}"],
            _expect(200, page),
        ),
        "case_page": (agent_client, [f"/desk/cases/{ref}/" for ref in references], _expect(200)),
        "supervisor_board": (boss_client, ["/desk/board/"], _expect(200)),
        # the report charts over the default period (the last 30 days), and their CSVs
        "reports_charts": (boss_client, ["/desk/reports/"], _expect(200)),
        "reports_csv": (
            boss_client,
            [f"/desk/reports/{figure}.csv" for figure in REPORT_FIGURES],
            _expect(200),
        ),
    }
    results = {}
    for name, (client, paths, check) in runs.items():
        print(f"  {name} ...", flush=True)
        results[name] = _measure(client, paths, requests=args.requests, warmup=args.warmup, check=check)
    context = {
        "agent": args.agent,
        "agent_work_cases": open_cases,
        "cases": Case.objects.count(),
        "messages_per_case_page": round(
            sum(c.messages.count() for c in sample[:20]) / max(1, min(20, len(references))), 1
        ),
        "supervisor": args.supervisor,
        "deep_cursor": cursor,
        "session_cookie": agent_client.cookies[settings.SESSION_COOKIE_NAME].value,
    }
    return results, context


def _http(args, database_url: str, redis_url: str, session: str) -> dict:
    """Queue requests/s over HTTP from ``--clients`` keep-alive clients against daphne."""
    from django.conf import settings

    os.environ["FAULTS_ASGI"] = "config.asgi:application"  # the site as deployed
    env = servers.app_env(
        database_url=database_url,
        redis_url=redis_url or None,
        CHANNEL_LAYER_PREFIX="cl-bench-pages",
        SECRET_KEY=os.environ["SECRET_KEY"],  # the session cookie was signed with it
        **dict(pair.split("=", 1) for pair in args.server_env),
    )
    if args.server == "uvicorn":
        processes, port = servers.start_uvicorn(env, processes=args.daphne)
    else:
        processes, port = servers.start_daphne(env, processes=args.daphne, access_log=False)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session}"
    path = "/desk/?view=department"
    stop = threading.Event()
    measuring = threading.Event()
    lock = threading.Lock()
    seconds: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200 and len(ROW_RE.findall(body.decode())) > 0
                problem = None if ok else f"status {response.status}"
            except (OSError, http.client.HTTPException) as error:
                problem = repr(error)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - started
            if measuring.is_set():
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        seconds.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(args.http_warmup)
        measuring.set()
        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        pids = [process.process.pid for process in processes]
        cpu_before, client_cpu_before = _cpu_seconds(pids), time.process_time()
        time.sleep(args.seconds)
        measuring.clear()
        elapsed = time.perf_counter() - started
        server_cpu = _cpu_seconds(pids) - cpu_before
        client_cpu = time.process_time() - client_cpu_before
        stop.set()
        for thread in threads:
            thread.join(timeout=35)
    finally:
        for process in processes:
            process.stop()
    return {
        "server": f"{args.server} x{args.daphne} (config.asgi:application, DEBUG off)",
        "server_env": args.server_env,
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(seconds) / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:5],
        "load_average_1m_at_start": round(load_before, 2),
        # CPU the daphne processes spent per request (PostgreSQL's share not included): with the
        # machine shared, requests/s says how much CPU we got; this says what a request costs.
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(seconds)), 1),
        "client_cpu_seconds": round(client_cpu, 1),
        "server_cpu_seconds": round(server_cpu, 1),
        **_stats(seconds or [0.0]),
    }


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes ``pids`` (all their threads) have used so far."""
    return sum(servers.cpu_seconds(pid) for pid in pids)


def _print(report: dict) -> None:
    print(f"\nDesk pages at {report['data']['cases']:,} cases ({report['machine']})")
    print(
        f"  {report['data']['agent']}: {report['data']['agent_work_cases']:,} cases in the department queue;"
        f" case pages average {report['data']['messages_per_case_page']} messages"
    )
    print(f"  {'page':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'CPU p50':>8}  queries")
    for name, row in report["pages"].items():
        queries = "/".join(str(q) for q in row["queries"])
        print(
            f"  {name:34} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['max_ms']:>8} {row['cpu_p50_ms']:>8}  {queries}"
        )
    h = report["http"]
    print(
        f"  HTTP queue first page, {h['server']}, {h['clients']} clients for {h['seconds']} s:"
        f" {h['requests_per_second']} requests/s, p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms,"
        f" {h['errors']} errors (1-minute load average {h['load_average_1m_at_start']} at the start)"
    )
    print(
        f"  server CPU {h['server_cpu_ms_per_request']} ms per request ({h['server_cpu_seconds']} s in all;"
        f" the clients used {h['client_cpu_seconds']} s, PostgreSQL is not counted)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="Measure this database (loaded first when short of cases).")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER),
        help="Where caseline_bench is found or created (a maintenance database URL).",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""), help="Cache as deployed.")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--agent", default="agent@demo.caseline.test")
    parser.add_argument("--supervisor", default="supervisor@demo.caseline.test")
    parser.add_argument("--depth", type=int, default=20_000, help="Rows before the deep queue page.")
    parser.add_argument("--case-samples", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200, help="Timed requests per page.")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--daphne", type=int, default=2, help="Server processes for the HTTP part.")
    parser.add_argument(
        "--server", choices=["uvicorn", "daphne"], default="uvicorn", help="uvicorn is the production server."
    )
    parser.add_argument("--clients", type=int, default=4, help="Concurrent HTTP clients.")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--http-warmup", type=float, default=3.0)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="More environment for the daphne processes (e.g. another DJANGO_SETTINGS_MODULE to try).",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep caseline_bench when this run created it.")
    args = parser.parse_args(argv)

    database_url, created = _prepare(args)
    try:
        _setup_django(database_url, args.redis_url)
        from django.db import connection, connections

        print("In process:", flush=True)
        pages, data = _in_process(args)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres = cursor.fetchone()[0]
        connections.close_all()
        print("Over HTTP ...", flush=True)
        http_figures = _http(args, database_url, args.redis_url, data.pop("session_cookie"))
    finally:
        if created and not args.keep:
            from django.db import connections

            connections.close_all()
            _admin(args.server_url, f'DROP DATABASE IF EXISTS "{THROWAWAY}" WITH (FORCE)')
    report = {
        "bench": "pages",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()},"
        f" PostgreSQL {postgres}, cache {'Redis' if args.redis_url else 'in-memory'}",
        "parameters": {k: v for k, v in vars(args).items() if k not in ("server_url", "redis_url")},
        "data": data,
        "pages": pages,
        "http": http_figures,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"pages-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    _print(report)
    print(f"Written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
