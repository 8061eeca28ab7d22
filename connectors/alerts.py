"""Technical alerts in: ``POST /webhooks/alerts/<source slug>/`` from a monitoring system.

Two shapes are read: Prometheus Alertmanager's webhook (version 4: ``status``, ``alerts[]``
with ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``,
``generatorURL``) and a generic JSON object (``title``, ``status`` firing|resolved,
``severity``, ``starts_at``, ``ends_at``, ``id``, ``description``, ``labels``), one or a list.

The request is checked with the source's shared secret: ``X-Caseline-Signature:
sha256=<hex HMAC-SHA256 of the body>``, or ``Authorization: Bearer <secret>`` (all
Alertmanager's ``http_config.authorization`` can send), both compared in constant time.
Missing credentials answer 401, wrong ones 403, and nothing is stored. A verified body is
stored first as an ``InboundEvent`` (provider ``alerts``, no channel), answered 200, and
processed by a task; a body that cannot be read is stored and marked failed, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import InboundEvent

logger = logging.getLogger(__name__)

PROVIDER = "alerts"
SIGNATURE_HEADER = "X-Caseline-Signature"
# Alertmanager reports a firing alert's end as this zero time.
_ZERO_TIME_PREFIX = "0001-01-01"


@dataclass(frozen=True)
class AlertValue:
    """One alert as read from a body, before it is saved."""

    fingerprint: str
    status: str
    title: str
    description: str = ""
    severity: str = ""
    labels: dict = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""


class AlertParseError(ValueError):
    """The body is not an alert this door reads; the message says what is wrong."""


def _secret(source) -> str:
    return os.environ.get(source.secret_env or "", "")


def credentials_check(request: HttpRequest, body: bytes, source) -> int | None:
    """None when the request carries the source's secret; else the status to answer (401 or 403)."""
    secret = _secret(source)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    authorization = request.headers.get("Authorization", "")
    if not signature and not authorization.startswith("Bearer "):
        return 401
    if not secret:
        logger.error("alert source %s: environment variable %s is not set", source.slug, source.secret_env)
        return 403
    if signature:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(signature.encode(), expected.encode()) else 403
    token = authorization.removeprefix("Bearer ").strip()
    return None if hmac.compare_digest(token.encode(), secret.encode()) else 403


@csrf_exempt
@require_POST
def alert_webhook(request: HttpRequest, slug: str) -> HttpResponse:
    from cases.models import AlertSource

    try:
        source = AlertSource.objects.filter(slug=slug, is_active=True).first()
    except DatabaseError:
        logger.exception("alert webhook %s: database unavailable", slug)
        return HttpResponse("Try again later.", status=503, content_type="text/plain")
    if source is None:
        return HttpResponse("No such alert source.", status=404, content_type="text/plain")
    body = request.body
    refused = credentials_check(request, body, source)
    if refused is not None:
        logger.warning("alert webhook %s: credentials refused from %s", slug, request.META.get("REMOTE_ADDR"))
        text = "Credentials required." if refused == 401 else "Invalid credentials."
        return HttpResponse(text, status=refused, content_type="text/plain")
    try:
        event = alert_event_store(source=source, body=body, content_type=request.content_type or "")
    except DatabaseError:
        logger.exception("alert webhook %s: not stored", slug)
        return HttpResponse("Try again later.", status=503, content_type="text/plain")
    event_id = event.pk
    transaction.on_commit(lambda: _queue(event_id))
    return HttpResponse("OK", content_type="text/plain")


def alert_event_store(*, source, body: bytes, content_type: str = "") -> InboundEvent:
    """Store a verified alert delivery as it came, pending; known by source and body digest."""
    digest = hashlib.sha256(body).hexdigest()
    return InboundEvent.objects.create(
        provider=PROVIDER,
        channel=None,
        delivery_id=f"{source.slug}:{digest}"[:255],
        body=bytes(body),
        headers={"x-caseline-alert-source": source.slug},
        content_type=content_type[:255],
    )


def _queue(event_id: int) -> None:
    from .tasks import process_alert_event

    try:
        process_alert_event.delay(event_id)
    except Exception:  # the beat sweep takes pending alert events
        logger.exception("alert event %s stored but not queued", event_id)


# --- Reading bodies --------------------------------------------------------------------------


def _time(value, name: str) -> datetime | None:
    if value in (None, "") or (isinstance(value, str) and value.startswith(_ZERO_TIME_PREFIX)):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise AlertParseError(f"{name} is not an ISO 8601 time: {value!r}")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.utc)
    return parsed


def _status(value, name: str) -> str:
    if value not in ("firing", "resolved"):
        raise AlertParseError(f"{name} must be 'firing' or 'resolved', not {value!r}")
    return value


def _text_dict(value, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertParseError(f"{name} must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _alertmanager(data: dict) -> list[AlertValue]:
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise AlertParseError("alerts must be a list")
    common = _text_dict(data.get("commonLabels"), "commonLabels")
    values = []
    for n, alert in enumerate(alerts):
        where = f"alerts[{n}]"
        if not isinstance(alert, dict):
            raise AlertParseError(f"{where} must be an object")
        labels = {**common, **_text_dict(alert.get("labels"), f"{where}.labels")}
        annotations = _text_dict(alert.get("annotations"), f"{where}.annotations")
        fingerprint = str(alert.get("fingerprint") or "")
        if not fingerprint:
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:32]
        starts_at = _time(alert.get("startsAt"), f"{where}.startsAt")
        if starts_at is None:
            raise AlertParseError(f"{where}.startsAt is required")
        values.append(
            AlertValue(
                fingerprint=fingerprint[:255],
                status=_status(alert.get("status"), f"{where}.status"),
                title=(annotations.get("summary") or labels.get("alertname") or fingerprint)[:255],
                description=annotations.get("description", ""),
                severity=labels.get("severity", "")[:32],
                labels=labels,
                starts_at=starts_at,
                ends_at=_time(alert.get("endsAt"), f"{where}.endsAt"),
                generator_url=str(alert.get("generatorURL") or "")[:1000],
            )
        )
    return values


def _generic(item: dict, where: str) -> AlertValue:
    if not isinstance(item, dict):
        raise AlertParseError(f"{where} must be an object")
    ident = str(item.get("id") or "")
    title = str(item.get("title") or "")
    if not ident:
        raise AlertParseError(f"{where}.id is required")
    if not title:
        raise AlertParseError(f"{where}.title is required")
    return AlertValue(
        fingerprint=ident[:255],
        status=_status(item.get("status"), f"{where}.status"),
        title=title[:255],
        description=str(item.get("description") or ""),
        severity=str(item.get("severity") or "")[:32],
        labels=_text_dict(item.get("labels"), f"{where}.labels"),
        starts_at=_time(item.get("starts_at"), f"{where}.starts_at") or timezone.now(),
        ends_at=_time(item.get("ends_at"), f"{where}.ends_at"),
    )


def alerts_parse(body: bytes, *, source_format: str = "alertmanager") -> list[AlertValue]:
    """The alerts of a stored body; ``AlertParseError`` naming what is wrong."""
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlertParseError(f"The body is not JSON: {exc}") from exc
    if isinstance(data, dict) and "alerts" in data:
        return _alertmanager(data)
    if isinstance(data, list):
        return [_generic(item, f"[{n}]") for n, item in enumerate(data)]
    if isinstance(data, dict):
        return [_generic(data, "body")]
    raise AlertParseError("The body must be an object or a list of objects")


def alert_event_apply(event: InboundEvent) -> tuple[str, str]:
    """Save the alerts of a stored (locked) delivery through ``cases.urgent.alerts_apply``; the
    status and note to record. An unreadable body or an unknown source is failed with the reason."""
    from cases import urgent
    from cases.models import AlertSource

    slug = (event.headers or {}).get("x-caseline-alert-source", "")
    source = AlertSource.objects.filter(slug=slug).first()
    if source is None:
        return InboundEvent.Status.FAILED, f"Parse error: no alert source {slug!r}"
    try:
        alerts = alerts_parse(event.body, source_format=source.format)
    except AlertParseError as exc:
        return InboundEvent.Status.FAILED, f"Parse error: {exc}"
    urgent.alerts_apply(source=source, alerts=alerts, event=event)
    return InboundEvent.Status.PROCESSED, ""


def alert_event_process(*, event_id: int) -> InboundEvent | None:
    """Process one stored alert delivery under its row lock (taken without waiting); a processed
    event is left as it is. What goes wrong is written on the event, failed, never raised
    (database outages excepted)."""
    from .inbox import TRANSIENT_ERRORS

    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, provider=PROVIDER)
            .first()
        )
        if event is None or event.status == InboundEvent.Status.PROCESSED:
            return event
        try:
            with transaction.atomic():
                status, error = alert_event_apply(event)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            logger.exception("alert event %s failed", event.pk)
            status, error = InboundEvent.Status.FAILED, f"{type(exc).__name__}: {exc}"
        event.status, event.error, event.processed_at = status, error[:4000], timezone.now()
        if status == InboundEvent.Status.FAILED:
            event.attempts = min(event.attempts + 1, 32767)
        event.save(update_fields=["status", "error", "processed_at", "attempts"])
    return event


def pending_alert_event_ids(limit: int = 100) -> list[int]:
    """Alert deliveries still pending (their task was lost): for the beat sweep."""
    return list(
        InboundEvent.objects.filter(provider=PROVIDER, status=InboundEvent.Status.PENDING)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
