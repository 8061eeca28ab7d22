"""Celery tasks of the inbox and of outbound webhooks: thin wrappers that call a service."""

from __future__ import annotations

import dataclasses
import time

from celery import shared_task

from . import alerts, imap, inbox, webhooks_out
from .models import InboundEvent

# When a batch left events pending (their author or case was held by another batch), it tries
# again this much later, this many times at most (Beat's batch takes whatever is left).
DEFERRED_RETRY_SECONDS = 0.5
DEFERRED_TRIES = 3


@shared_task(
    name="connectors.process_inbound_event",
    autoretry_for=inbox.TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def process_inbound_event(event_id: int) -> str | None:
    """Process one stored InboundEvent; returns its status (None when another worker has it)."""
    event = inbox.inbound_event_process(event_id=event_id)
    return event.status if event is not None else None


@shared_task(name="connectors.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    """Try one outbound webhook delivery; schedule the next attempt with backoff when it failed."""
    delay = webhooks_out.webhook_delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        deliver_webhook.apply_async((delivery_id,), countdown=delay)


@shared_task(name="connectors.redeliver_webhooks", ignore_result=True)
def redeliver_webhooks() -> int:
    """Beat sweep: queue the overdue attempts whose task was lost; returns how many."""
    due = webhooks_out.webhook_deliveries_due()
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


@shared_task(
    name="connectors.process_inbound_batch",
    autoretry_for=inbox.TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
    ignore_result=True,
)
def process_inbound_batch(limit: int = inbox.BATCH_SIZE) -> dict:
    """Process up to ``limit`` pending inbound events in one transaction; queue the next batch
    while more wait, and try again shortly when events were deferred (an author or case
    another batch held). Webhooks queue it (at most once a second per web process) and Beat
    runs it every few seconds, so events whose task was lost (a broker outage, a worker
    killed) are processed too."""
    result = inbox.inbound_events_process_batch(limit=limit)
    for _ in range(DEFERRED_TRIES):
        if result.more or not result.statuses.get(InboundEvent.Status.PENDING):
            break
        # Events deferred (another batch had their author or case): once it has committed,
        # take them. Here rather than a delayed task, which a worker would hold unacknowledged.
        time.sleep(DEFERRED_RETRY_SECONDS)
        result = inbox.inbound_events_process_batch(limit=limit)
    if result.more:
        process_inbound_batch.delay(limit)
    return result.as_dict()


@shared_task(name="connectors.poll_imap", ignore_result=True)
def poll_imap() -> list[dict]:
    """Fetch unseen mail of every IMAP channel into the inbox."""
    return [dataclasses.asdict(result) for result in imap.poll_imap_channels()]


@shared_task(
    name="connectors.process_alert_event",
    autoretry_for=inbox.TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=8,
)
def process_alert_event(event_id: int) -> str | None:
    """Process one stored monitoring-alert delivery; returns its status."""
    event = alerts.alert_event_process(event_id=event_id)
    return event.status if event is not None else None


@shared_task(name="connectors.process_pending_alerts", ignore_result=True)
def process_pending_alerts() -> int:
    """Beat sweep: process alert deliveries still pending; returns how many were taken."""
    ids = alerts.pending_alert_event_ids()
    for event_id in ids:
        alerts.alert_event_process(event_id=event_id)
    return len(ids)
