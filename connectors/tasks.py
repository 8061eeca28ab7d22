"""Celery tasks of the inbox and of outbound webhooks: thin wrappers that call a service."""

from __future__ import annotations

from celery import shared_task

from . import inbox, webhooks_out


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
