"""Retention: purge raw inbound events once they are processed and old enough."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from connectors.models import InboundEvent

from .common import PURGE_BATCH


def inbound_events_purge(*, days: int | None = None, now=None, batch_size: int = PURGE_BATCH) -> int:
    """Delete processed and ignored raw InboundEvents received more than ``days`` ago
    (default ``INBOUND_EVENT_RETENTION_DAYS``; 0 keeps everything). Pending and failed
    events are kept whatever their age. Deletes in batches; returns how many went."""
    days = settings.INBOUND_EVENT_RETENTION_DAYS if days is None else days
    if not days or days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = InboundEvent.objects.filter(
        status__in=[InboundEvent.Status.PROCESSED, InboundEvent.Status.IGNORED], received_at__lt=cutoff
    )
    purged = 0
    while True:
        ids = list(old.order_by("received_at", "pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return purged
        purged += InboundEvent.objects.filter(pk__in=ids).delete()[0]
