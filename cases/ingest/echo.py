"""Echoes: messages our own account wrote (``is_echo``), matched to the outbound message
we sent and marked sent, or, written in the platform's own app, recorded as an outbound
message on the recipient's case; an echo no known case takes is not stored.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from connectors.base import DeliveryUpdate, InboundMessage
from customers.selectors import identity_find

from .. import services
from ..models import Message
from .threading import GLOBAL_ID_PLATFORMS, _parent, _recent_case, _thread_key
from .updates import delivery_update_apply

logger = logging.getLogger(__name__)

# How long after we queued a message its echo may still be matched to it by text.
ECHO_MATCH_WINDOW = timedelta(days=1)


def _ingest_echo(channel, inbound: InboundMessage) -> Message | None:
    recipient = (
        identity_find(kind=inbound.platform, platform_id=inbound.recipient_id)
        if inbound.recipient_id
        else None
    )
    if recipient is not None:
        # Sent by us moments ago, the echo outran the send task storing the platform id.
        queued = (
            Message.objects.select_for_update()
            .filter(
                channel=channel,
                direction=Message.Direction.OUT,
                external_id="",
                identity=recipient,
                text=inbound.text,
                created_at__gte=timezone.now() - ECHO_MATCH_WINDOW,
            )
            .order_by("-id")
            .first()
        )
        if queued is not None:
            queued.external_id = inbound.external_id
            queued.save(update_fields=["external_id"])
            delivery_update_apply(
                channel=channel,
                update=DeliveryUpdate(external_id=inbound.external_id, state=Message.Delivery.SENT),
            )
            queued.refresh_from_db()
            return queued

    parent = (
        _parent(channel, inbound.reply_to_external_id, global_ids=inbound.platform in GLOBAL_ID_PLATFORMS)
        if inbound.reply_to_external_id
        else None
    )
    case = parent.case if parent is not None else None
    if case is None and recipient is not None:
        case = _recent_case(recipient.customer_id, at=inbound.sent_at, channel=channel)
    if case is None:
        logger.info("echo %s on %s belongs to no known case; not stored", inbound.external_id, channel.slug)
        return None
    return services.message_add(
        case=case,
        direction=Message.Direction.OUT,
        kind=inbound.kind,
        text=inbound.text,
        channel=channel,
        identity=recipient,
        is_public=inbound.is_public,
        external_id=inbound.external_id,
        reply_to=parent,
        in_reply_to_external_id=inbound.reply_to_external_id[:255],
        thread_key=_thread_key(inbound),
        subject=inbound.subject,
        html=inbound.html,
        sent_at=inbound.sent_at,
        call_duration=inbound.call_duration,
        recording_url=inbound.recording_url[:500],
        delivery_state=Message.Delivery.SENT,
    )
