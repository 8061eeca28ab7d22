"""Platforms' news about stored messages: ``delivery_update_apply`` moves our outbound
message's delivery state forward (a failure is always recorded, with a ``delivery``
CaseEvent), and ``message_update_apply`` attaches what came after a message (a call's
recording).
"""

from __future__ import annotations

import logging

from django.db import transaction

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors.base import DeliveryUpdate, MessageUpdate

from .. import services
from ..errors import ServiceError
from ..models import CaseEvent, Message

logger = logging.getLogger(__name__)

# Delivery states only move forward; a failure can always be reported, and a later
# "sent" (a retry that worked, an echo) clears it.
_DELIVERY_RANK = {
    Message.Delivery.NONE: 0,
    Message.Delivery.QUEUED: 0,
    Message.Delivery.FAILED: 0,
    Message.Delivery.SENT: 1,
    Message.Delivery.DELIVERED: 2,
    Message.Delivery.READ: 3,
}


@transaction.atomic
def delivery_update_apply(*, channel, update: DeliveryUpdate) -> Message | None:
    """Apply a platform's delivery news to our outbound message with that platform id.

    States only move forward (sent, delivered, read); a failure is always recorded,
    with a ``delivery`` CaseEvent carrying the platform's error. Unknown message ids
    are skipped (None). Locks the message row; the new state is pushed after commit.
    """
    if update.state not in _DELIVERY_RANK or update.state in ("", Message.Delivery.QUEUED):
        raise ServiceError(f"'{update.state}' is not a delivery state a platform reports.", field="state")
    message = (
        Message.objects.select_for_update()
        .filter(channel=channel, external_id=update.external_id, direction=Message.Direction.OUT)
        .first()
    )
    if message is None:
        logger.info("delivery update for unknown message %s on %s", update.external_id, channel.slug)
        return None
    previous = message.delivery_state
    if update.state == Message.Delivery.FAILED:
        if previous == Message.Delivery.FAILED and message.delivery_error == update.error:
            return message
        message.delivery_state = Message.Delivery.FAILED
        message.delivery_error = update.error or "The platform reported a failed delivery."
    else:
        if _DELIVERY_RANK[update.state] <= _DELIVERY_RANK[previous] and previous != Message.Delivery.FAILED:
            return message
        message.delivery_state = update.state
        message.delivery_error = ""
    message.save(update_fields=["delivery_state", "delivery_error"])
    if message.delivery_state == Message.Delivery.FAILED:
        services.record_event(
            case=message.case,
            kind=CaseEvent.Kind.DELIVERY,
            before={"delivery_state": previous},
            after={"delivery_state": message.delivery_state},
            reason=message.delivery_error,
            message=message,
        )
    publish_on_commit(
        event={
            "type": "message.delivery",
            "case_id": message.case_id,
            "message_id": message.pk,
            "delivery_state": message.delivery_state,
        },
        groups=[groups.case_group(message.case_id)],
    )
    return message


@transaction.atomic
def message_update_apply(*, channel, update: MessageUpdate) -> Message:
    """Attach what a platform sent after one of its messages (a call's recording) to it.

    Idempotent: applying the same news twice changes nothing, and an empty value never
    erases a stored one. Locks the message row; the timeline is told after commit. Raises
    ``ServiceError`` (field ``external_id``) while the message is not stored yet, so the
    event is kept failed and ``replay_inbox`` applies it once the message arrives.
    """
    message = (
        Message.objects.select_for_update()
        .filter(channel=channel, external_id=update.external_id)
        .order_by("pk")
        .first()
    )
    if message is None:
        raise ServiceError(
            f"No message {update.external_id} on {channel.slug} yet; replay this event once it is stored.",
            field="external_id",
        )
    changed = []
    if update.recording_url and message.recording_url != update.recording_url[:500]:
        message.recording_url = update.recording_url[:500]
        changed.append("recording_url")
    if update.call_duration is not None and message.call_duration != update.call_duration:
        message.call_duration = update.call_duration
        changed.append("call_duration")
    if changed:
        message.save(update_fields=changed)
        publish_on_commit(
            event={
                "type": "message.updated",
                "case_id": message.case_id,
                "message_id": message.pk,
                "fields": changed,
            },
            groups=[groups.case_group(message.case_id)],
        )
    return message
