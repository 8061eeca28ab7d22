"""Which requests may read from the replica (``config.db_router``), and read-your-writes.

A request may read from the replica when all of these hold:

- a replica is configured (``DATABASE_REPLICA_URL``);
- its method is safe (GET, HEAD, OPTIONS);
- its URL name (``desk:queue``) or path prefix (``/api/v1/``) is listed in
  ``CASELINE_REPLICA_READ_URLS`` (names without a slash, prefixes with a leading slash);
- the browser or client has not written in the last ``CASELINE_REPLICA_PIN_SECONDS``.

A request that writes (any unsafe method, or any write through the ORM, which the router
reports) sets the ``caseline_pin`` cookie to the time of the write; the same client's
reads stay on the primary while it is recent, so an agent who claims a case sees it
claimed on the next page even while the replica lags. The cookie says only "read from
the primary": forging it costs the forger nothing but the replica's help.
"""

from __future__ import annotations

import time

from django.conf import settings

from config import db_router

PIN_COOKIE = "caseline_pin"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _listed(request) -> bool:
    entries = settings.CASELINE_REPLICA_READ_URLS
    match = getattr(request, "resolver_match", None)
    name = match.view_name if match is not None else None
    for entry in entries:
        if entry.startswith("/"):
            if request.path_info.startswith(entry):
                return True
        elif entry == name:
            return True
    return False


def _pinned(request) -> bool:
    try:
        wrote_at = float(request.COOKIES.get(PIN_COOKIE, ""))
    except ValueError:
        return False
    return time.time() - wrote_at < settings.CASELINE_REPLICA_PIN_SECONDS


class ReplicaMiddleware:
    """Place after the session and authentication middleware (the last entry is fine)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = db_router.begin_request()
        state = db_router.current_state()
        try:
            response = self.get_response(request)
        finally:
            db_router.end_request(token)
        if state.wrote or request.method not in SAFE_METHODS:
            pin = settings.CASELINE_REPLICA_PIN_SECONDS
            response.set_cookie(
                PIN_COOKIE,
                f"{time.time():.3f}",
                max_age=max(1, int(pin) + 1),
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        state = db_router.current_state()
        if (
            state is not None
            and request.method in SAFE_METHODS
            and db_router.replica_configured()
            and _listed(request)
            and not _pinned(request)
        ):
            state.read_replica = True
