"""Webhooks: one URL per channel, ``/webhooks/<channel slug>/``, for every platform.

The view only checks that the request is the platform's, stores it and answers; the
work happens in the inbox task. It never answers 500: a forged request gets 403, an
oversized one 413, a configuration problem 503 (the platform retries later), and
anything it can verify is stored, however malformed.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import inbox
from .base import SignatureError
from .models import Channel
from .registry import connector_for

logger = logging.getLogger(__name__)


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
    except SignatureError as exc:
        logger.warning(
            "webhook %s: signature refused (%s) from %s", channel.slug, exc, request.META.get("REMOTE_ADDR")
        )
        return HttpResponse("Invalid signature.", status=403, content_type="text/plain")
    inbox.inbound_event_store(
        channel=channel,
        delivery_id=connector.delivery_id(request, channel),
        body=body,
        headers=request.headers,
        content_type=request.content_type or "",
    )
    return HttpResponse("OK", content_type="text/plain")
