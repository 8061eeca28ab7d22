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
from contextlib import contextmanager
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 2.0
LAYER_RETRY_SECONDS = 5.0
_layer_down_until = 0.0


def publish(*, event: dict, groups: Iterable[str]) -> None:
    """Send ``event`` to ``groups`` now (or, inside ``published_together``, when it ends).

    Delivery is at most once; failures are logged, never raised."""
    pending = _together.get()
    if pending is not None:
        pending.append((event, list(groups)))
        return
    _send([(event, list(groups))])


def layer_answered() -> None:
    """The channel layer just answered in this process (a socket joined its groups): publish
    again at once rather than wait out ``LAYER_RETRY_SECONDS`` after an outage."""
    global _layer_down_until
    _layer_down_until = 0.0


@contextmanager
def published_together():
    """Hold the events published in the block and send them, in order, when it ends.

    For a writer that commits many events at once (the inbox batch): its commit hooks
    queue here, and the whole batch goes out through one event loop instead of one
    thread hop and loop round per event. Events registered in a savepoint that was
    rolled back are never queued (``transaction.on_commit`` drops them).
    """
    pending: list[tuple[dict, list[str]]] = []
    token = _together.set(pending)
    try:
        yield
    finally:
        _together.reset(token)
        if pending:
            _send(pending)


_together: ContextVar[list | None] = ContextVar("live_events_published_together", default=None)


def _send(items: list[tuple[dict, list[str]]]) -> None:
    global _layer_down_until
    if time.monotonic() < _layer_down_until:
        logger.info("%s live event(s) skipped: the channel layer is unavailable", len(items))
        return
    try:
        layer = get_channel_layer()
    except Exception:  # a misconfigured layer must not break the write either
        logger.warning("%s live event(s) not delivered: no channel layer", len(items), exc_info=True)
        return
    if layer is None:
        return

    async def send_one(event: dict, group_list: list[str]):
        # One id per event: a socket in several of the groups is handed it once (see
        # channels_app.hub). Each copy names its group: the processes' hubs hand it to
        # their sockets in that group.
        event_id = uuid.uuid4().hex
        return await asyncio.wait_for(
            asyncio.gather(
                *(
                    layer.group_send(
                        g, {"type": "live.event", "event_id": event_id, "group": g, "event": event}
                    )
                    for g in group_list
                ),
                return_exceptions=True,
            ),
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )

    async def send_all():
        # In order: a socket sees one writer's events as they were committed.
        return [await send_one(event, group_list) for event, group_list in items]

    try:
        outcomes = async_to_sync(send_all)()
    except Exception as exc:  # a down or hung Redis must not break the write that already committed
        _layer_down_until = time.monotonic() + LAYER_RETRY_SECONDS
        logger.warning("live event %s not delivered: %s", items[0][0].get("type"), exc or type(exc).__name__)
        return
    for (event, group_list), results in zip(items, outcomes, strict=True):
        failed = False
        for group, result in zip(group_list, results, strict=True):
            if isinstance(result, BaseException):
                failed = True
                logger.warning("live event %s to %s not delivered: %s", event.get("type"), group, result)
        if failed and all(isinstance(r, BaseException) for r in results):
            _layer_down_until = time.monotonic() + LAYER_RETRY_SECONDS
            return


def publish_on_commit(*, event: dict, groups: Iterable[str]) -> None:
    """Queue ``event`` for ``groups`` once the current transaction commits."""
    payload = json.loads(json.dumps(event))
    group_list = sorted(set(groups))
    transaction.on_commit(lambda: publish(event=payload, groups=group_list))
