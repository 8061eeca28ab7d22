"""Celery tasks of the inbox: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task

from . import inbox


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
