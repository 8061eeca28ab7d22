"""Fixtures for fault tests: a throwaway PostgreSQL cluster and Redis, and the app on them.

The cluster is made once per session and migrated once into a template database
(with one channel per platform, see ``tests.faults.stage``); each test gets a fresh
copy of it. Redis is started per test, so a test may kill it freely. The app runs
in subprocesses (``Stack.daphne()``, ``Stack.worker()``) pointed at both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.faults import servers, traffic

TEMPLATE = "faults_template"


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: starts, stops and kills its own PostgreSQL and Redis")


def pytest_collection_modifyitems(config, items):
    missing = []
    if servers.pg_bin() is None:
        missing.append("PostgreSQL server binaries (" + servers.PG_BIN_GLOB + ")")
    if not shutil.which(servers.REDIS_SERVER):
        missing.append("redis-server")
    if missing:
        skip = pytest.mark.skip(reason="fault tests need " + " and ".join(missing))
        for item in items:
            if "faults" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_cluster():
    # Not under pytest's temporary folder: that one is private to us, and the cluster
    # may have to run as the postgres user.
    cluster = servers.ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="caseline-faults-pg-"))).init()
    cluster.start()
    try:
        cluster.create_database(TEMPLATE)
        env = servers.app_env(database_url=cluster.url(TEMPLATE), redis_url=None)
        servers.manage(env, "migrate", "--noinput", "-v", "0")
        subprocess.run(
            [sys.executable, "-m", "tests.faults.stage", "seed", "--agents", "2"],
            cwd=servers.ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield cluster
    finally:
        cluster.destroy()


class Stack:
    """One test's services and app processes; everything it started is stopped at the end."""

    def __init__(self, pg: servers.ThrowawayPostgres, redis: servers.ThrowawayRedis, database: str):
        self.pg = pg
        self.redis = redis
        self.database = database
        self.processes: list[servers.AppProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return servers.app_env(
            database_url=self.pg.url(self.database),
            redis_url=self.redis.url,
            PUBLIC_URL=traffic.PUBLIC_URL,
            **traffic.SECRET_VALUES,
            **extra,
        )

    def daphne(self, *, processes: int = 1, access_log: bool = True, **extra: str) -> str:
        """Start daphne on the stack; its base URL."""
        started, port = servers.start_daphne(self.env(**extra), processes=processes, access_log=access_log)
        self.processes.extend(started)
        self.daphnes = started
        return f"http://127.0.0.1:{port}"

    def worker(self, *, nice: int = 0, **extra: str) -> servers.AppProcess:
        process = servers.start_worker(
            self.env(**extra), queue="caseline", name=f"faults-{uuid.uuid4().hex[:6]}", nice=nice
        )
        self.processes.append(process)
        return process

    def stage(self, *args: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "tests.faults.stage", *args],
            cwd=servers.ROOT,
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return json.loads(result.stdout)

    # --- reading the database the app wrote ------------------------------------------------

    def query(self, sql: str, params=()) -> list[tuple]:
        return self.pg.query(self.database, sql, params)

    def scalar(self, sql: str, params=()):
        return self.pg.scalar(self.database, sql, params)

    def execute(self, sql: str, params=()) -> None:
        self.pg.execute(self.database, sql, params)

    def event_counts(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM connectors_inboundevent GROUP BY status"))

    def messages_by_external_id(self, external_ids) -> dict[str, list[int]]:
        """For each external id, the cases holding a message with it (one each when all is well)."""
        found: dict[str, list[int]] = {eid: [] for eid in external_ids}
        rows = self.query(
            "SELECT external_id, case_id FROM cases_message WHERE external_id = ANY(%s)", (list(found),)
        )
        for external_id, case_id in rows:
            found[external_id].append(case_id)
        return found

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def report(self) -> str:
        return "\n\n".join(f"--- {p.name} ---\n" + "\n".join(list(p.lines)[-60:]) for p in self.processes)


@pytest.fixture
def redis_server(tmp_path):
    server = servers.ThrowawayRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(pg_cluster, redis_server, request):
    if not pg_cluster.running:  # a test that stopped it and failed before starting it again
        pg_cluster.start()
    database = f"faults_{uuid.uuid4().hex[:10]}"
    pg_cluster.create_database(database, template=TEMPLATE)
    current = Stack(pg_cluster, redis_server, database)
    yield current
    current.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(current.report())
    if not pg_cluster.running:
        pg_cluster.start()
    pg_cluster.drop_database(database)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
