"""The outbox: queued replies are sent through their channel's connector, with retries.

A message is sent only while its ``delivery_state`` is queued, under a row lock, so a
redelivered task or a second worker never sends it twice; once the platform confirms,
it is never sent again. Retryable failures back off exponentially, honouring the
platform's Retry-After; after ``MAX_ATTEMPTS`` the message ends failed with the reason,
and an agent can queue it again by hand.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from cases.errors import NotPermitted, ServiceError
from cases.models import Message
from cases.services import message_delivery_update

from .base import SendError
from .registry import connector_for

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BASE_DELAY_SECONDS = 10
MAX_DELAY_SECONDS = 15 * 60
# A queued message whose try is this far overdue has lost its task (the broker restarted
# empty, a worker died before acknowledging): the outbox sweep queues it again.
STALLED_AFTER = timedelta(minutes=5)
REQUEUE_BATCH = 500


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before try ``attempt + 1``: the platform's Retry-After if it gave one."""
    if retry_after is not None:
        return max(0.0, min(float(retry_after), MAX_DELAY_SECONDS * 4))
    return float(min(BASE_DELAY_SECONDS * 2 ** max(attempt - 1, 0), MAX_DELAY_SECONDS))


def enqueue_send(message: Message) -> None:
    """Send ``message`` from a task once the transaction that queued it commits."""
    message_id = message.pk
    transaction.on_commit(lambda: _queue_send(message_id))


def _queue_send(message_id: int) -> None:
    try:
        send_message.delay(message_id)
    except Exception:  # a broker outage must not fail the reply already committed as queued
        logger.exception("message %s queued in the database but not on the broker", message_id)


def message_send(*, message_id: int) -> float | None:
    """Try to send one queued message once.

    Returns the seconds to wait before another try, or None when there is nothing more
    to do (sent, failed for good, not queued, or being sent by another worker).
    """
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel", "identity", "case", "reply_to")
            .filter(pk=message_id, delivery_state=Message.Delivery.QUEUED)
            .first()
        )
        if message is None:
            return None
        message.send_attempts += 1
        message.save(update_fields=["send_attempts"])
        try:
            result = connector_for(message.channel.kind).send(message, message.channel)
        except SendError as exc:
            if exc.retryable and message.send_attempts < MAX_ATTEMPTS:
                delay = backoff_seconds(message.send_attempts, exc.retry_after)
                message.delivery_error = f"Attempt {message.send_attempts} failed: {exc}"
                message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
                message.save(update_fields=["delivery_error", "next_attempt_at"])
                return delay
            message_delivery_update(message=message, state=Message.Delivery.FAILED, error=str(exc))
            return None
        except Exception as exc:  # a connector bug must not leave the message queued forever
            logger.exception("sending message %s failed", message_id)
            message_delivery_update(
                message=message,
                state=Message.Delivery.FAILED,
                error=f"Internal error: {exc.__class__.__name__}",
            )
            return None
        message_delivery_update(message=message, state=Message.Delivery.SENT, external_id=result.external_id)
        return None


@transaction.atomic
def message_retry_send(*, message: Message, actor) -> Message:
    """Queue a failed outbound message again (an agent's "retry"): its attempts start over."""
    from cases import permissions

    message = Message.objects.select_for_update().select_related("case").get(pk=message.pk)
    if not permissions.can_work_case(actor, message.case):
        raise NotPermitted("You cannot retry messages on this case.")
    if message.delivery_state != Message.Delivery.FAILED:
        raise ServiceError("Only a failed message can be sent again.", field="message")
    message.delivery_state = Message.Delivery.QUEUED
    message.delivery_error = ""
    message.send_attempts = 0
    message.next_attempt_at = None
    message.save(update_fields=["delivery_state", "delivery_error", "send_attempts", "next_attempt_at"])
    enqueue_send(message)
    return message


def outbox_requeue_stalled(*, now=None) -> int:
    """Queue again the sends whose task was lost; returns how many.

    A message is due at ``next_attempt_at`` (a retry) or at once (``created_at``); one that
    is ``STALLED_AFTER`` past due and still queued has no task left to send it. A second
    task for a message whose first task was merely slow sends nothing twice: the send
    runs under a row lock and only while the message is queued.
    """
    cutoff = (now or timezone.now()) - STALLED_AFTER
    ids = list(
        Message.objects.filter(delivery_state=Message.Delivery.QUEUED)
        .annotate(due_at=Coalesce(F("next_attempt_at"), F("created_at")))
        .filter(due_at__lt=cutoff)
        .order_by("due_at")
        .values_list("pk", flat=True)[:REQUEUE_BATCH]
    )
    for message_id in ids:
        _queue_send(message_id)
    if ids:
        logger.warning("outbox: queued %d stalled sends again", len(ids))
    return len(ids)


@shared_task(bind=True, name="connectors.send_message", acks_late=True, max_retries=None)
def send_message(self, message_id: int) -> None:
    delay = message_send(message_id=message_id)
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(name="connectors.requeue_stalled_sends")
def requeue_stalled_sends() -> int:
    return outbox_requeue_stalled()
