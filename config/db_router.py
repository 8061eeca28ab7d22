"""Reads from a streaming replica, writes to the primary.

With ``DATABASE_REPLICA_URL`` set, ``config.settings`` adds a ``replica`` database alias,
this router and ``config.replica.ReplicaMiddleware``. The middleware marks the requests
that may read from the replica (safe methods on the URL names and path prefixes listed in
``CASELINE_REPLICA_READ_URLS``, for a user who has not written in the last
``CASELINE_REPLICA_PIN_SECONDS``); this router sends those requests' reads there, and
everything else to the primary:

- every write, always (and every read after a write in the same request);
- everything outside a request: Celery tasks, websocket consumers, management commands;
- sessions (a sign-in must be readable on the next request, whatever the lag).

A replica that cannot be reached costs one request a bounded connect: the request reads
from the primary instead, a warning is logged, and the replica is left alone for
``CASELINE_REPLICA_RETRY_SECONDS`` before it is tried again.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger("caseline.replica")

PRIMARY = "default"
REPLICA = "replica"
# Apps whose rows are read back at once by the next request of the same browser.
PRIMARY_ONLY_APPS = frozenset({"sessions"})


@dataclass
class RequestState:
    """What one request may do and has done; set by the middleware, read by the router."""

    read_replica: bool = False
    wrote: bool = False
    replica_failed: bool = False
    replica_checked: bool = False


_state: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "caseline_db_state", default=None
)
# Monotonic time until which this process leaves an unreachable replica alone.
_replica_down_until = 0.0


def begin_request() -> contextvars.Token:
    return _state.set(RequestState())


def end_request(token: contextvars.Token) -> None:
    _state.reset(token)


def current_state() -> RequestState | None:
    return _state.get()


def replica_configured() -> bool:
    return REPLICA in connections.settings


def _replica_usable(state: RequestState) -> bool:
    """Connect to the replica once per request; on failure fall back to the primary."""
    global _replica_down_until
    if state.replica_failed:
        return False
    if state.replica_checked:
        return True
    if time.monotonic() < _replica_down_until:
        state.replica_failed = True
        return False
    state.replica_checked = True
    connection = connections[REPLICA]
    try:
        connection.ensure_connection()
        if not connection.is_usable():
            raise DatabaseError("replica connection is not usable")
    except Exception as error:  # any failure to reach it: the primary answers instead
        state.replica_failed = True
        _replica_down_until = time.monotonic() + settings.CASELINE_REPLICA_RETRY_SECONDS
        logger.warning("Replica unreachable, reading from the primary: %s", error)
        with contextlib.suppress(Exception):  # the broken connection is dropped either way
            connection.close()
        return False
    return True


def reset_replica_backoff() -> None:
    """Forget an earlier failure (tests, or an operator who fixed the replica)."""
    global _replica_down_until
    _replica_down_until = 0.0


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        state = _state.get()
        if state is None or not state.read_replica or state.wrote:
            return PRIMARY
        if model._meta.app_label in PRIMARY_ONLY_APPS or not replica_configured():
            return PRIMARY
        return REPLICA if _replica_usable(state) else PRIMARY

    def db_for_write(self, model, **hints):
        state = _state.get()
        if state is not None:
            state.wrote = True
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        # The replica holds the same rows: objects read from either belong together.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica follows the primary's schema through replication.
        return db != REPLICA
