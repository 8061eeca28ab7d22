"""The durable inbox: store every delivery first, then process it.

``inbound_event_store`` keeps the raw body exactly as it arrived (one row per channel
and delivery id, so a re-delivery changes nothing) and queues processing after
commit. ``inbound_event_process`` parses a stored event with its channel's connector
and hands each message to ``cases.ingest``; whatever goes wrong is written on the
event (failed, with the error), never lost, and ``manage.py replay_inbox`` runs it
again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from cases import ingest

from .base import ParseError
from .models import Channel, InboundEvent
from .registry import connector_for

logger = logging.getLogger(__name__)

# Request headers worth keeping with a stored event: how it was sent and signed.
# Credentials (cookies, authorization, API keys) are never stored.
_KEPT_HEADERS = frozenset({"content-type", "content-length", "user-agent"})
_SECRET_MARKERS = ("auth", "cookie", "token", "key", "secret", "password")
MAX_ERROR_LENGTH = 4000
# Database trouble is not the event's fault: the task is retried, the event left as it was.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def selected_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers stored with an event: content type, user agent and the
    platform's ``X-...`` headers (signatures, delivery ids), minus anything credential-like."""
    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _KEPT_HEADERS or (
            lower.startswith("x-") and not any(marker in lower for marker in _SECRET_MARKERS)
        ):
            kept[lower] = str(value)[:1000]
    return kept


@transaction.atomic
def inbound_event_store(
    *,
    channel: Channel,
    delivery_id: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    content_type: str = "",
    enqueue: bool = True,
) -> tuple[InboundEvent, bool]:
    """Store one delivery as an InboundEvent; ``(event, created)``.

    Unique on (channel, delivery id): a second delivery of the same event returns the
    stored row with ``created`` False and queues nothing. A new event is queued for
    processing after commit (``enqueue``), so a rolled-back request queues nothing and
    the worker always finds the row.
    """
    event, created = InboundEvent.objects.get_or_create(
        channel=channel,
        delivery_id=delivery_id[:255],
        defaults={
            "provider": channel.kind,
            "body": bytes(body),
            "headers": selected_headers(headers or {}),
            "content_type": (content_type or "")[:255],
        },
    )
    if created and enqueue:
        event_id = event.pk
        transaction.on_commit(lambda: _enqueue(event_id))
    return event, created


def _enqueue(event_id: int) -> None:
    from .tasks import process_inbound_event

    try:
        process_inbound_event.delay(event_id)
    except Exception:  # a broker outage must not fail the webhook; the event waits in the inbox
        logger.exception(
            "inbound event %s stored but not queued; replay_inbox --status pending runs it", event_id
        )


def inbound_event_process(*, event_id: int) -> InboundEvent | None:
    """Parse and ingest one stored event; return it with its new status.

    Takes the event's row lock without waiting (a worker already on it wins; None is
    returned). An event already processed or ignored is returned unchanged, so running
    it twice changes nothing. A parse error or a failure while ingesting rolls back
    everything the event wrote, and marks it failed with the error and one more
    attempt. Database outages are raised for the task to retry.
    """
    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel", "channel__department")
            .filter(pk=event_id)
            .first()
        )
        if event is None:
            return None
        if event.status in (InboundEvent.Status.PROCESSED, InboundEvent.Status.IGNORED):
            return event
        try:
            with transaction.atomic():
                status, note = _apply(event)
        except TRANSIENT_ERRORS:
            raise
        except ParseError as exc:
            _finish(event, InboundEvent.Status.FAILED, f"Parse error: {exc}", failed=True)
        except Exception as exc:
            logger.exception("inbound event %s failed", event.pk)
            _finish(event, InboundEvent.Status.FAILED, f"{type(exc).__name__}: {exc}", failed=True)
        else:
            _finish(event, status, note)
    return event


def _apply(event: InboundEvent) -> tuple[str, str]:
    """Parse ``event`` and ingest what it carries; the status and note to record."""
    channel = event.channel
    if channel is None:
        raise ParseError("The event's channel no longer exists.")
    try:
        connector = connector_for(channel.kind)
    except (LookupError, ImportError) as exc:
        raise ParseError(f"No connector for {channel.kind} channels: {exc}") from exc
    result = connector.parse(event, channel)
    for inbound in result.messages:
        ingest.ingest(channel=channel, inbound=inbound)
    for update in result.updates:
        ingest.delivery_update_apply(channel=channel, update=update)
    if not result.messages and not result.updates:
        return InboundEvent.Status.IGNORED, result.ignored_reason or "The event carries no messages."
    return InboundEvent.Status.PROCESSED, ""


def _finish(event: InboundEvent, status: str, note: str, *, failed: bool = False) -> None:
    event.status = status
    event.error = (note or "")[:MAX_ERROR_LENGTH]
    event.processed_at = timezone.now()
    fields = ["status", "error", "processed_at"]
    if failed:
        event.attempts = min(event.attempts + 1, 32767)
        fields.append("attempts")
    event.save(update_fields=fields)
