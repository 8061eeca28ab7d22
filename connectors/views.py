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

import io
import logging
import re
import time
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured, RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, close_old_connections, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import inbox
from .base import SignatureError
from .models import Channel
from .registry import connector_for

logger = logging.getLogger(__name__)

_broker_down_until = 0.0


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        channel = Channel.objects.filter(slug=slug, is_active=True).first()
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
        logger.warning(
            "webhook %s: signature refused (%s) from %s", channel.slug, exc, request.META.get("REMOTE_ADDR")
        )
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
    """Queue the event's processing; when the broker cannot take it, process it here.

    Runs after the event's row is committed, so whatever happens the event is stored
    and the webhook is acknowledged. Processing twice is harmless: the task takes the
    row lock and skips an event already processed.
    """
    global _broker_down_until
    from config.celery import app

    from .tasks import process_inbound_event

    if app.conf.task_always_eager or time.monotonic() >= _broker_down_until:
        try:
            process_inbound_event.delay(event_id)
            return
        except Exception as exc:  # kombu's OperationalError and anything a broker raises
            _broker_down_until = time.monotonic() + settings.WEBHOOK_BROKER_RETRY_SECONDS
            logger.warning("broker unavailable (%s); processing inbound events inline", exc)
    try:
        inbox.inbound_event_process(event_id=event_id)
    except Exception:
        logger.exception("inbound event %s stored but not processed; it stays pending", event_id)


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
            response = await sync_to_async(_serve, thread_sensitive=False)(request, match["slug"])
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
    close_old_connections()
    try:
        try:
            request.get_host()
        except DisallowedHost:
            return HttpResponse("Bad host.", status=400, content_type="text/plain")
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return HttpResponsePermanentRedirect(f"https://{request.get_host()}{request.get_full_path()}")
        try:
            response = webhook(request, slug)
        except Http404:
            response = HttpResponse("No such channel.", status=404, content_type="text/plain")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
    finally:
        close_old_connections()
