"""Webhooks: one URL per channel, ``/webhooks/<channel slug>/``, for every platform.

The view only checks that the request is the platform's, stores it and answers; the
work happens in the inbox task. It never answers 500: a forged request gets 403, an
oversized one 413, a configuration problem or a database outage 503 (the platform
retries later), and anything it can verify is stored, however malformed.

Two faults are handled here rather than left to the platform's retries:

- The broker is down: the event is stored and acknowledged all the same, and processed
  inline in the request instead of queued (``_queue_or_process``). After one failed
  publish, requests skip the broker for ``WEBHOOK_BROKER_RETRY_SECONDS`` so an outage costs
  one bounded connection attempt (see the ``CELERY_BROKER_*`` timeouts in settings),
  not one per webhook.
- A replayed X or Meta body: a delivery already stored is acknowledged and ignored (its
  delivery id is the body's digest). Where raw events are purged after a while, a
  body whose platform timestamps are all older than ``WEBHOOK_REPLAY_WINDOW_HOURS``
  is refused, since its first delivery may no longer be there to match it.

``webhook_fast_path`` serves the POSTs of this view straight from ASGI, without the
page middleware (sessions, CSRF, messages, CSP...) that a machine-to-machine request
does not use: it halves the cost of an acknowledgement under load.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured, RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import inbox
from .base import SignatureError
from .models import Channel
from .registry import connector_for

logger = logging.getLogger(__name__)

_broker_down_until = 0.0


# Active channels by slug, looked up once per CHANNEL_CACHE_SECONDS per process instead of
# once per webhook. A change saved in this process drops the cache at once (signals below);
# other processes see it within the TTL (a deactivated channel answers 404 that much later).
CHANNEL_CACHE_SECONDS = 5.0
_channels: dict[str, tuple[float, Channel | None]] = {}


def _active_channel(slug: str) -> Channel | None:
    now = time.monotonic()
    cached = _channels.get(slug)
    if cached is not None and cached[0] > now:
        return cached[1]
    channel = Channel.objects.filter(slug=slug, is_active=True).first()
    if len(_channels) > 1000:  # slugs are the caller's to choose: keep the cache bounded
        _channels.clear()
    _channels[slug] = (now + CHANNEL_CACHE_SECONDS, channel)
    return channel


def _forget_channels(**kwargs) -> None:
    _channels.clear()


post_save.connect(_forget_channels, sender=Channel, dispatch_uid="webhook-channel-cache-save")
post_delete.connect(_forget_channels, sender=Channel, dispatch_uid="webhook-channel-cache-delete")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        channel = _active_channel(slug)
    except DatabaseError:
        logger.exception("webhook %s: database unavailable", slug)
        return HttpResponse("Try again later.", status=503, content_type="text/plain")
    if channel is None:
        raise Http404("No such channel.")
    try:
        connector = connector_for(channel.kind)
    except (LookupError, ImportError):
        logger.exception("webhook %s: no connector for %s channels", slug, channel.kind)
        return HttpResponse("Connector unavailable.", status=503, content_type="text/plain")
    try:
        if request.method == "GET":
            response = connector.challenge(request, channel)
            return response if response is not None else HttpResponse(status=405)
        return _receive(request, channel, connector)
    except ImproperlyConfigured as exc:
        logger.error("webhook %s is misconfigured: %s", slug, exc)
        return HttpResponse("Channel misconfigured.", status=503, content_type="text/plain")
    except Exception:
        logger.exception("webhook %s: request not handled", slug)
        return HttpResponse("Try again later.", status=503, content_type="text/plain")


def _receive(request: HttpRequest, channel: Channel, connector) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    try:
        body = request.body
    except RequestDataTooBig:
        body = None
    if body is None or (limit is not None and (declared > limit or len(body) > limit)):
        logger.warning("webhook %s: body of %s bytes refused (limit %s)", channel.slug, declared, limit)
        return HttpResponse("Request body too large.", status=413, content_type="text/plain")
    try:
        connector.verify(request, channel)
        _refuse_replay(connector, body)
    except SignatureError as exc:
        # A refusal may carry the answer its platform expects instead of 403 (Amazon SNS
        # sends basic auth only after a 401 challenge): that is a handshake, not a forgery.
        answer = getattr(exc, "response", None)
        logger.log(
            logging.INFO if answer is not None else logging.WARNING,
            "webhook %s: signature refused (%s) from %s",
            channel.slug,
            exc,
            request.META.get("REMOTE_ADDR"),
        )
        if answer is not None:
            return answer
        # Counted for the channel's health (a cache counter: no database write for a forgery).
        from cases.health import signature_failure_record

        signature_failure_record(channel_id=channel.pk)
        return HttpResponse("Invalid signature.", status=403, content_type="text/plain")
    event, created = inbox.inbound_event_store(
        channel=channel,
        delivery_id=connector.delivery_id(request, channel),
        body=body,
        headers=request.headers,
        content_type=request.content_type or "",
        enqueue=False,
    )
    if created:
        event_id = event.pk
        transaction.on_commit(lambda: _queue_or_process(event_id))
    return HttpResponse("OK", content_type="text/plain")


def replay_window() -> timedelta | None:
    """How old a signed body's newest event may be; None when any age is accepted."""
    hours = getattr(settings, "WEBHOOK_REPLAY_WINDOW_HOURS", 0) or 0
    return timedelta(hours=hours) if hours > 0 else None


def _refuse_replay(connector, body: bytes) -> None:
    """``SignatureError`` for a body whose platform-given times are all outside the window.

    Only connectors that can read their platform's event times (``event_times``) are
    checked, and a body without any readable time is let through: it is stored, and
    parsing says what is wrong with it.
    """
    window = replay_window()
    reader = getattr(connector, "event_times", None)
    if window is None or reader is None:
        return
    times = reader(body)
    if times and max(times) < datetime.now(UTC) - window:
        raise SignatureError(f"Every event in the body is older than the replay window ({window}).")


def _queue_or_process(event_id: int) -> None:
    """See that the stored event gets processed; when the broker cannot take it, process it here.

    Runs after the event's row is committed, so whatever happens the event is stored
    and the webhook is acknowledged. With a broker, webhooks do not each send a task:
    a batch task (``process_inbound_batch``, which takes every pending event) is queued
    at most once per ``WEBHOOK_BATCH_SECONDS`` per process (``_batch_scheduled``), and
    Beat's batch sweeps whatever a lost task left. Without a broker (tasks run eagerly)
    the event is processed here, alone. Processing twice is harmless: both paths take
    the row lock and skip an event already processed.
    """
    global _broker_down_until
    from config.celery import app

    from .tasks import process_inbound_event

    if app.conf.task_always_eager:
        try:
            process_inbound_event.delay(event_id)
        except Exception:
            logger.exception("inbound event %s stored but not processed; it stays pending", event_id)
        return
    just_failed = False
    if time.monotonic() >= _broker_down_until:
        try:
            _batch_scheduled()
            return
        except Exception as exc:  # kombu's OperationalError and anything a broker raises
            _broker_down_until = time.monotonic() + settings.WEBHOOK_BROKER_RETRY_SECONDS
            logger.warning("broker unavailable (%s); processing inbound events inline", exc)
            just_failed = True
    try:
        inbox.inbound_event_process(event_id=event_id)
        if just_failed:
            # The batch queued last may have been lost with the broker: the events it was to
            # take (stored in the last interval) are processed here too.
            inbox.inbound_events_process_batch()
    except Exception:
        logger.exception("inbound event %s stored but not processed; it stays pending", event_id)


# Default of ``settings.WEBHOOK_BATCH_SECONDS``: how often a process may queue the batch task.
BATCH_SECONDS = 1.0
# Monotonic time this process last queued the batch task, and whether a send is already
# set for the end of the interval (a timer in this process: no delayed task in the broker,
# which a worker would hold unacknowledged for the while).
_batch_sent_at = float("-inf")
_batch_timer_armed = False
_batch_lock = threading.Lock()
# While webhooks ride on a send to come, the broker is still checked (a PING) this often, so
# an outage is noticed, and webhooks processed inline, within a fraction of a second.
BROKER_CHECK_SECONDS = 0.25
_broker_checked_at = 0.0
_broker_client = None


def _batch_scheduled() -> None:
    """Make sure a batch task runs after this moment: at most one queued per interval.

    A quiet channel's webhook queues the batch at once. Within the interval after that,
    the first webhook sets a timer to queue one batch when the interval ends, and the
    following ones ride on it: under load, one broker message per interval per process,
    and each event waits at most about that long. Raises what the broker raises (or its
    PING, while riding); the schedule is then left as it was.
    """
    global _batch_sent_at, _batch_timer_armed
    from .tasks import process_inbound_batch

    interval = getattr(settings, "WEBHOOK_BATCH_SECONDS", BATCH_SECONDS)
    with _batch_lock:
        now = time.monotonic()
        if _batch_timer_armed:
            _check_broker(now)
            return
        if now >= _batch_sent_at + interval:
            process_inbound_batch.delay()
            _batch_sent_at = now
            return
        _check_broker(now)
        _arm_timer(_batch_sent_at + interval - now)
        _batch_timer_armed = True


def _arm_timer(delay: float) -> None:
    timer = threading.Timer(delay, _send_trailing_batch)
    timer.daemon = True
    timer.start()


def _send_trailing_batch() -> None:
    """The timer's send: queue the batch; when the broker refuses, process the waiting events here."""
    global _batch_sent_at, _batch_timer_armed, _broker_down_until
    from .tasks import process_inbound_batch

    with _batch_lock:
        _batch_timer_armed = False
        _batch_sent_at = time.monotonic()
    try:
        process_inbound_batch.delay()
        return
    except Exception as exc:  # as in _queue_or_process
        _broker_down_until = time.monotonic() + settings.WEBHOOK_BROKER_RETRY_SECONDS
        logger.warning("broker unavailable (%s); processing inbound events inline", exc)
    try:
        while inbox.inbound_events_process_batch().more:
            pass
    except Exception:
        logger.exception("inbound events stored but not processed; they stay pending")
    finally:
        if not connection.in_atomic_block:
            connection.close()  # this timer thread's own connection


def _check_broker(now: float) -> None:
    """PING a Redis broker at most every ``BROKER_CHECK_SECONDS``; raises when it does not answer."""
    global _broker_checked_at, _broker_client
    url = settings.CELERY_BROKER_URL or ""
    if now - _broker_checked_at < BROKER_CHECK_SECONDS or not url.startswith(("redis://", "rediss://")):
        return
    _broker_checked_at = now
    if _broker_client is None:
        import redis

        _broker_client = redis.Redis.from_url(
            url,
            socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        )
    _broker_client.ping()


# --- ASGI fast path --------------------------------------------------------------------------

_WEBHOOK_PATH = re.compile(r"^/webhooks/(?P<slug>[-a-zA-Z0-9_]+)/$")


def webhook_fast_path(app):
    """Wrap the site's ASGI ``app``: webhook POSTs are served by ``webhook`` directly.

    What the middleware stack would have done for such a request is kept: the host is
    validated against ALLOWED_HOSTS, plain HTTP is redirected when SECURE_SSL_REDIRECT
    is on, the body is capped at DATA_UPLOAD_MAX_MEMORY_SIZE while it is read, and the
    database connection is health-checked before and released after, as for a request.
    Everything else (GET handshakes included) goes to ``app``.
    """

    async def application(scope, receive, send):
        match = _WEBHOOK_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "POST":
            return await app(scope, receive, send)
        body = await _read_body(scope, receive)
        if body is None:
            response = HttpResponse("Request body too large.", status=413, content_type="text/plain")
        elif body is False:
            return None  # the client went away
        else:
            request = ASGIRequest(scope, io.BytesIO(body))
            # Into the loop's default executor, as ``sync_to_async(thread_sensitive=False)``
            # would, in a copy of this task's context; without asgiref's wrapping (context
            # copied back, a shielded future), which cost a tenth of an acknowledgement.
            context = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(None, context.run, _serve, request, match["slug"])
        response.headers["Content-Length"] = str(len(response.content))
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.content})
        return None

    application.webhook_fast_path = True
    return application


async def _read_body(scope, receive) -> bytes | None | bool:
    """The request body; None when it is over the limit, False when the client disconnected."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                if limit is not None and int(value) > limit:
                    return None
            except ValueError:
                pass
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _serve(request: HttpRequest, slug: str) -> HttpResponse:
    """Answer one webhook POST on this thread's database connection.

    Unlike a page request, the connection is not health-checked (a ``SELECT 1``) before
    use: a connection that died while idle (PostgreSQL restarted) fails the request's
    first statement, and then, only then, it is replaced and the request run once more
    (storing is idempotent). After the request a connection that saw an error or is past
    ``CONN_MAX_AGE`` is closed, as Django does after a request.
    """
    try:
        try:
            request.get_host()
        except DisallowedHost:
            return HttpResponse("Bad host.", status=400, content_type="text/plain")
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return HttpResponsePermanentRedirect(f"https://{request.get_host()}{request.get_full_path()}")
        response = _webhook_or_404(request, slug)
        if response.status_code == 503 and connection.errors_occurred and not connection.is_usable():
            connection.close()
            response = _webhook_or_404(request, slug)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
    finally:
        _release_connection()


def _webhook_or_404(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        return webhook(request, slug)
    except Http404:
        return HttpResponse("No such channel.", status=404, content_type="text/plain")


def _release_connection() -> None:
    """What ``close_old_connections`` does at the end of a request, without arming a health
    check for the next one: close a connection left in a transaction, one that saw an error
    and is no longer usable, or one past its maximum age."""
    if connection.connection is None:
        return
    if connection.in_atomic_block or not connection.get_autocommit():
        connection.close()
    elif connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
    elif connection.close_at is not None and time.monotonic() >= connection.close_at:
        connection.close()
