"""Publishing live events: only from services, only after the transaction commits.

A rolled-back transaction publishes nothing (no ghost updates). The payload is
JSON round-tripped at the call site so a payload that cannot travel fails where it
was made, not later in a consumer.

Delivery is at most once and never holds up the write that caused it: a publish
gives up after ``PUBLISH_TIMEOUT_SECONDS``, and once the channel layer has failed,
publishes are skipped for ``LAYER_RETRY_SECONDS`` (logged) so a Redis outage costs
the writes one bounded attempt, not one per event. Pages refetch on reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 2.0
LAYER_RETRY_SECONDS = 5.0
_layer_down_until = 0.0


def publish(*, event: dict, groups: Iterable[str]) -> None:
    """Send ``event`` to ``groups`` now. Delivery is at most once; failures are logged, never raised."""
    global _layer_down_until
    if time.monotonic() < _layer_down_until:
        logger.info("live event %s skipped: the channel layer is unavailable", event.get("type"))
        return
    try:
        layer = get_channel_layer()
    except Exception:  # a misconfigured layer must not break the write either
        logger.warning("live event %s not delivered: no channel layer", event.get("type"), exc_info=True)
        return
    if layer is None:
        return
    # One id per event: a socket in several of the groups receives it once (see the consumer).
    message = {"type": "live.event", "event_id": uuid.uuid4().hex, "event": event}
    group_list = list(groups)

    async def send_all():
        return await asyncio.wait_for(
            asyncio.gather(*(layer.group_send(g, message) for g in group_list), return_exceptions=True),
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )

    try:
        results = async_to_sync(send_all)()
    except Exception as exc:  # a down or hung Redis must not break the write that already committed
        _layer_down_until = time.monotonic() + LAYER_RETRY_SECONDS
        logger.warning("live event %s not delivered: %s", event.get("type"), exc or type(exc).__name__)
        return
    failed = False
    for group, result in zip(group_list, results, strict=True):
        if isinstance(result, BaseException):
            failed = True
            logger.warning("live event %s to %s not delivered: %s", event.get("type"), group, result)
    if failed and all(isinstance(r, BaseException) for r in results):
        _layer_down_until = time.monotonic() + LAYER_RETRY_SECONDS


def publish_on_commit(*, event: dict, groups: Iterable[str]) -> None:
    """Queue ``event`` for ``groups`` once the current transaction commits."""
    payload = json.loads(json.dumps(event))
    group_list = sorted(set(groups))
    transaction.on_commit(lambda: publish(event=payload, groups=group_list))
