"""A real streaming replica of the local PostgreSQL, for the read-replica tests.

The session fixture takes a base backup of the primary cluster (``pg_basebackup -R``, so
the copy starts as a hot standby streaming from the primary), runs it as the ``postgres``
OS user on a free port in a temporary directory, and adds the ``replica`` database alias
pointing at the same test database on that port. Everything is stopped and removed at the
end. Tests skip, saying why, where that cannot be done: no PostgreSQL, no pg_basebackup,
not root, or the primary refuses replication connections and its pg_hba.conf cannot be
given a ``host replication all 127.0.0.1/32 trust`` line (added and reloaded when missing).
"""

from __future__ import annotations

import copy
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from config import db_router

REPLICATION_LINE = "host replication all 127.0.0.1/32 trust"
# The standby must allow at least what the primary does (PostgreSQL refuses to start otherwise).
MATCHED_SETTINGS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "scale: runs extra PostgreSQL clusters or processes (slow-ish)")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"), reverse=True)
    return Path(found[0]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=timeout
    )


class Replica:
    """A hot standby of the primary cluster, and the means to lag it or stop it."""

    def __init__(self, pg_bin: Path, primary: dict, root: Path, port: int):
        self.pg_bin, self.primary, self.root, self.port = pg_bin, primary, root, port
        self.data = root / "data"

    def _primary_conn(self, dbname: str = "postgres"):
        return psycopg.connect(
            host=self.primary["HOST"] or "127.0.0.1",
            port=int(self.primary["PORT"] or 5432),
            user=self.primary["USER"],
            dbname=dbname,
            autocommit=True,
        )

    def conn(self):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.primary["USER"], dbname="postgres", autocommit=True
        )

    def sql(self, query: str, *params):
        with self.conn() as conn:
            return conn.execute(query, params).fetchone()

    def start(self) -> None:
        result = _as_postgres(
            str(self.pg_bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )
        if result.returncode:
            raise RuntimeError(
                f"replica did not start: {result.stderr}{(self.root / 'log').read_text()[-2000:]}"
            )

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def pause(self) -> None:
        self.sql("select pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.sql("select pg_get_wal_replay_pause_state()")[0] != "paused":
            if time.monotonic() > deadline:
                raise AssertionError("replay did not pause")
            time.sleep(0.02)

    def resume(self) -> None:
        self.sql("select pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 20) -> float:
        """Wait until the replica has replayed everything the primary wrote so far; seconds taken."""
        started = time.monotonic()
        with self._primary_conn() as conn:
            target = conn.execute("select pg_current_wal_lsn()").fetchone()[0]
        while True:
            behind = self.sql("select pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()) > 0", target)[0]
            if not behind:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"replica still behind {target} after {timeout} s")
            time.sleep(0.02)


def _ensure_replication_allowed(primary: Replica) -> str | None:
    """None when the primary accepts our replication connection, else why not."""
    with primary._primary_conn() as conn:
        rules = conn.execute(
            "select count(*) from pg_hba_file_rules where 'replication' = any(database)"
            " and type = 'host' and auth_method = 'trust'"
            " and (address = '127.0.0.1' or address = 'all' or address is null)"
        ).fetchone()[0]
        if rules:
            return None
        hba_file = conn.execute("show hba_file").fetchone()[0]
        if not os.access(hba_file, os.W_OK):
            return f"the primary refuses replication connections and {hba_file} is not writable"
        with open(hba_file, "a") as hba:
            hba.write(
                f"\n# Streaming replicas on this machine (Caseline's scale tests)\n{REPLICATION_LINE}\n"
            )
        conn.execute("select pg_reload_conf()")
    time.sleep(0.3)
    return None


@pytest.fixture(scope="session")
def replica_cluster(django_db_setup, django_db_blocker):
    """The standby, and the ``replica`` alias pointing at the test database on it."""
    if not settings.IS_POSTGRES:
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("pg_basebackup not found under /usr/lib/postgresql/*/bin")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to run a PostgreSQL cluster as the postgres user")
    primary = connections["default"].settings_dict
    root = Path(tempfile.mkdtemp(prefix="caseline-replica-"))
    shutil.chown(root, "postgres", "postgres")
    replica = Replica(pg_bin, primary, root, _free_port())
    reason = _ensure_replication_allowed(replica)
    if reason:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(reason)
    try:
        result = _as_postgres(
            str(pg_bin / "pg_basebackup"),
            "-h", primary["HOST"] or "127.0.0.1",
            "-p", str(primary["PORT"] or 5432),
            "-U", primary["USER"],
            "-D", str(replica.data),
            "-R", "-X", "stream", "-c", "fast", "--no-sync",
            timeout=120,
        )  # fmt: skip
        if result.returncode:
            pytest.skip(f"pg_basebackup failed: {result.stderr.strip()[:300]}")
        with replica._primary_conn() as conn:
            matched = {
                name: conn.execute(f"show {name}").fetchone()[0]  # noqa: S608 - fixed names
                for name in MATCHED_SETTINGS
            }
        conf = {
            "port": replica.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{root}'",
            "hot_standby": "on",
            "fsync": "off",
            "shared_buffers": "'32MB'",
            "hot_standby_feedback": "on",
            **matched,
        }
        (replica.data / "postgresql.conf").write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
        (replica.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        shutil.chown(replica.data / "postgresql.conf", "postgres", "postgres")
        shutil.chown(replica.data / "pg_hba.conf", "postgres", "postgres")
        replica.start()
        assert replica.sql("select pg_is_in_recovery()")[0] is True
        replica.wait_caught_up()

        alias = copy.deepcopy(primary)
        alias.update(HOST="127.0.0.1", PORT=replica.port, TEST={**alias.get("TEST", {}), "MIRROR": "default"})
        options = alias.setdefault("OPTIONS", {})
        options["connect_timeout"] = 2
        if "pool" in options:
            options["pool"] = {**options["pool"], "timeout": 2.0}
        connections.settings[db_router.REPLICA] = alias
        settings.DATABASES[db_router.REPLICA] = alias
        yield replica
    finally:
        if db_router.REPLICA in connections.settings:
            with django_db_blocker.unblock():
                try:
                    connections[db_router.REPLICA].close()
                    connections[db_router.REPLICA].close_pool()
                except Exception:  # noqa: S110 - the cluster may already be gone
                    pass
            del connections[db_router.REPLICA]
            del connections.settings[db_router.REPLICA]
            settings.DATABASES.pop(db_router.REPLICA, None)
        replica.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def replica(replica_cluster, settings):
    """The router and middleware switched on, replay running and caught up, no back-off."""
    settings.DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "config.replica.ReplicaMiddleware"]
    db_router.reset_replica_backoff()
    if replica_cluster.sql("select pg_get_wal_replay_pause_state()")[0] != "not paused":
        replica_cluster.resume()
    replica_cluster.wait_caught_up()
    yield replica_cluster
    db_router.reset_replica_backoff()
