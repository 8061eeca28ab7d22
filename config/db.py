"""Connection pools and forked processes.

The web processes share PostgreSQL connections through a pool (``DB_POOL``, see
``config.settings``). A pool's connections and maintenance threads belong to the process
that opened it; a forked child (a live test server, a multiprocessing worker) must not
use or close them — their sockets are still the parent's. After a fork the child forgets
every inherited pool, so its first query opens a pool of its own. The inherited pool
objects are kept referenced, never closed, so nothing in the child touches the parent's
sockets.
"""

from __future__ import annotations

import os
import sys

_inherited: list = []


def forget_inherited_pools() -> None:
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return
    pools = backend.DatabaseWrapper._connection_pools
    _inherited.extend(pools.values())
    pools.clear()


os.register_at_fork(after_in_child=forget_inherited_pools)
