"""Connection pools: their health check, and forked processes.

The web processes share PostgreSQL connections through a pool (``DB_POOL``, see
``config.settings``). A pool's connections and maintenance threads belong to the process
that opened it; a forked child (a live test server, a multiprocessing worker) must not
use or close them — their sockets are still the parent's. After a fork the child forgets
every inherited pool, so its first query opens a pool of its own. The inherited pool
objects are kept referenced, never closed, so nothing in the child touches the parent's
sockets.

A connection taken from the pool is checked first (``check_pooled_connection``), so a
restarted PostgreSQL costs no failed request. psycopg_pool's own check is a round trip
per checkout, a fifth of the cost of acknowledging a webhook; this one asks the kernel
instead whether the idle connection's socket has anything to read. An idle connection has
nothing to say: data (PostgreSQL's termination message) or end-of-file means the server
let it go, and only then is the round trip made, which fails and discards it.
"""

from __future__ import annotations

import os
import select
import sys

from django.db.backends.signals import connection_created
from psycopg_pool import ConnectionPool

_inherited: list = []


def forget_inherited_pools() -> None:
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return
    pools = backend.DatabaseWrapper._connection_pools
    _inherited.extend(pools.values())
    pools.clear()


os.register_at_fork(after_in_child=forget_inherited_pools)


def _cheap_pool_check(sender, connection, **kwargs) -> None:
    """Once per pool: Django gave it psycopg_pool's round-trip check (``CONN_HEALTH_CHECKS``);
    use ``check_pooled_connection`` instead. (psycopg_pool keeps it in ``_check``.)"""
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    if pool is not None and getattr(pool, "_check", None) is ConnectionPool.check_connection:
        pool._check = check_pooled_connection


connection_created.connect(_cheap_pool_check, dispatch_uid="cheap-pool-check")


def check_pooled_connection(conn) -> None:
    """psycopg_pool ``check``: raise when ``conn`` is no longer usable (the pool then drops it)."""
    if conn.closed or conn.broken:
        raise ConnectionError("connection closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)
