"""Celery tasks of the inbox and of outbound webhooks: thin wrappers that call a service."""

from __future__ import annotations

import dataclasses

from celery import shared_task

from . import imap, inbox, webhooks_out
from .models import InboundEvent

# When a batch left events pending (their case was locked elsewhere), the next try comes this much later.
DEFERRED_RETRY_SECONDS = 1.0


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
    while more wait, and one a second later when events were deferred (a case another
    transaction held). Webhooks queue it (at most once a second per web process) and Beat
    runs it every few seconds, so events whose task was lost (a broker outage, a worker
    killed) are processed too."""
    result = inbox.inbound_events_process_batch(limit=limit)
    if result.more:
        process_inbound_batch.delay(limit)
    elif result.statuses.get(InboundEvent.Status.PENDING):
        process_inbound_batch.apply_async((limit,), countdown=DEFERRED_RETRY_SECONDS)
    return result.as_dict()


@shared_task(name="connectors.poll_imap", ignore_result=True)
def poll_imap() -> list[dict]:
    """Fetch unseen mail of every IMAP channel into the inbox."""
    return [dataclasses.asdict(result) for result in imap.poll_imap_channels()]
