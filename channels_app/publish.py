"""Publishing live events: only from services, only after the transaction commits.

A rolled-back transaction publishes nothing (no ghost updates). The payload is
JSON round-tripped at the call site so a payload that cannot travel fails where it
was made, not later in a consumer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def publish(*, event: dict, groups: Iterable[str]) -> None:
    """Send ``event`` to ``groups`` now. Delivery is at most once; failures are logged."""
    layer = get_channel_layer()
    if layer is None:
        return
    # One id per event: a socket in several of the groups receives it once (see the consumer).
    message = {"type": "live.event", "event_id": uuid.uuid4().hex, "event": event}
    group_list = list(groups)

    async def send_all():
        return await asyncio.gather(
            *(layer.group_send(g, message) for g in group_list), return_exceptions=True
        )

    try:
        results = async_to_sync(send_all)()
    except Exception:  # a down Redis must not break the write that already committed
        logger.warning("live event %s not delivered", event.get("type"), exc_info=True)
        return
    for group, result in zip(group_list, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("live event %s to %s not delivered: %s", event.get("type"), group, result)


def publish_on_commit(*, event: dict, groups: Iterable[str]) -> None:
    """Queue ``event`` for ``groups`` once the current transaction commits."""
    payload = json.loads(json.dumps(event))
    group_list = sorted(set(groups))
    transaction.on_commit(lambda: publish(event=payload, groups=group_list))
