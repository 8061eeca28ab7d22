"""The connection pool's checkout check: no round trip for a live connection, a dead one refused."""

from __future__ import annotations

import select

import psycopg
import pytest
from django.db import connection

from config.db import check_pooled_connection

pytestmark = pytest.mark.django_db


def _dsn() -> str:
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}}
    )


def _round_trips(conn: psycopg.Connection) -> list[str]:
    """Record every statement the connection sends (the pool's own check sends an empty one)."""
    sent: list[str] = []
    original = conn.execute

    def execute(query, *args, **kwargs):
        sent.append(str(query))
        return original(query, *args, **kwargs)

    conn.execute = execute
    return sent


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")
def test_a_live_idle_connection_passes_without_a_round_trip():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        sent = _round_trips(conn)

        check_pooled_connection(conn)

        assert sent == []
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")
def test_a_connection_the_server_ended_is_refused():
    with (
        psycopg.connect(_dsn(), autocommit=True) as victim,
        psycopg.connect(_dsn(), autocommit=True) as admin,
    ):
        pid = victim.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        # the server's goodbye reaches the idle socket (the backend may leave pg_stat_activity
        # a moment before its last bytes are readable here, so wait on the socket itself)
        readable, _, _ = select.select([victim.fileno()], [], [], 10)
        assert readable, "the terminated backend's goodbye never reached the socket"

        with pytest.raises(psycopg.OperationalError):
            check_pooled_connection(victim)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")
def test_the_web_pool_uses_the_cheap_check():
    pool = getattr(connection, "pool", None)
    if pool is None:
        pytest.skip("DB_POOL is off in this run")
    connection.ensure_connection()

    assert pool._check is check_pooled_connection
