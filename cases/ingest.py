"""Ingest: one platform message in, on the right case, in one transaction.

``ingest(channel=..., inbound=...)`` turns a connector's ``InboundMessage`` into a
``Message`` on a case. It is idempotent on (channel, external id): a message seen
again (a re-delivery, a replayed event, two workers racing on one message) returns
the message already stored and changes nothing.

Who wrote it: the author's Identity is found by platform kind + id, or created with
a new Customer on first sight; its handle, name, follower count and verified flag are
refreshed from every message.

Which case, in this order (the first rule that finds a case wins):

1. Reply chain: the message it answers (``reply_to_external_id``) on this channel, or
   for e-mail on any channel (Message-IDs are global), and that message's case.
2. Thread keys: a message on this channel whose thread key or platform id is one of
   the inbound ``thread_keys`` (most specific first). E-mail matches platform ids on
   any channel, so a reply known only through ``References`` still threads. A public
   message (a comment under a page post, a quote) matches only its own customer's
   cases: everyone commenting under one post shares the post's thread key.
3. Case reference token (``C-7Q4K2``, any case of letters) in the subject or text:
   that case, whoever its customer is.
4. The author's customer's most recent case that is open, or was resolved or closed
   within ``settings.CASE_REOPEN_WINDOW_DAYS`` of the moment the message was written
   (so a replayed old event threads as it would have on arrival).
5. Otherwise a new case, routed to the channel's department.

A case found by rules 1-3 may belong to another customer than the author's. Customers
are never merged silently:

- a brand-new identity writing privately (DM, e-mail, call) on a reply chain or with a
  reference token is created on the case's customer, link source ``verified`` (the
  customer moved from a tweet to e-mail with the token we gave them);
- anyone else keeps their own customer, and the message still lands on the case. That
  includes a new identity replying in a *public* thread: anyone can answer a public
  post, so a stranger chiming in on a customer's thread is not that customer.
Either decision is written in the reason of the message's CaseEvent.

Echoes (messages our own account wrote, ``is_echo``) are matched to the outbound
message we sent (same channel + platform id, or a queued one to the same person with
the same text that has no platform id yet) and mark it sent. An echo we never sent
(written in the platform's own app) is recorded as an outbound message on the
recipient's case; an echo we cannot place on any case is not stored.

Platforms' news about our outbound messages (``DeliveryUpdate``) is applied by
``delivery_update_apply``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors.base import DeliveryUpdate, InboundMessage
from customers.models import Identity
from customers.selectors import identity_find
from customers.services import identity_refresh, identity_resolve

from . import services, triage
from .errors import ServiceError
from .models import REFERENCE_ALPHABET, REFERENCE_LENGTH, Attachment, Case, CaseEvent, Message

logger = logging.getLogger(__name__)

REFERENCE_RE = re.compile(rf"\bC-([{REFERENCE_ALPHABET}]{{{REFERENCE_LENGTH}}})\b", re.IGNORECASE)
# Platforms whose message ids are global, so a reply can be matched across channels.
GLOBAL_ID_PLATFORMS = frozenset({"email"})
# How many thread keys are looked at (long e-mail threads carry dozens of References).
MAX_THREAD_KEYS = 50
# How long after we queued a message its echo may still be matched to it by text.
ECHO_MATCH_WINDOW = timedelta(days=1)
INBOUND_KINDS = frozenset(Message.Kind.values) - {Message.Kind.NOTE}
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


@dataclass
class _Found:
    """Where threading put a message, and by which rule."""

    case: Case
    rule: str  # reply | thread | reference | recent | new
    parent: Message | None = None


def ingest(*, channel, inbound: InboundMessage) -> Message | None:
    """Store ``inbound`` as a Message on the case it belongs to; return it (None for an
    echo that belongs to no case we know).

    One transaction: identity, case, message, attachments and CaseEvents are written
    together or not at all; live events go out after commit. Idempotent on (channel,
    external id), including the race of two workers inserting the same message: the
    loser returns the winner's row. Raises ``ServiceError`` naming the field for an
    inbound value that cannot be stored.
    """
    _validate(inbound)
    with transaction.atomic(savepoint=False):
        return _ingest(channel, inbound)


def _ingest(channel, inbound: InboundMessage) -> Message | None:
    existing = _existing(channel, inbound.external_id)
    if existing is not None:
        if inbound.is_echo:
            delivery_update_apply(
                channel=channel,
                update=DeliveryUpdate(external_id=inbound.external_id, state=Message.Delivery.SENT),
            )
        return existing
    try:
        with transaction.atomic():
            if inbound.is_echo:
                return _ingest_echo(channel, inbound)
            return _ingest_inbound(channel, inbound)
    except IntegrityError:
        # Another worker stored the same platform message first (unique channel + external id).
        existing = _existing(channel, inbound.external_id)
        if existing is None:
            raise
        return existing


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


# --- inbound ---------------------------------------------------------------------------


def _ingest_inbound(channel, inbound: InboundMessage) -> Message:
    known = identity_find(kind=inbound.platform, platform_id=inbound.author_id)
    found = _thread(channel, inbound, author_customer_id=known.customer_id if known else None)
    notes: list[str] = []
    link_to = None
    if known is None and found is not None and found.rule in ("reply", "reference") and not inbound.is_public:
        link_to = found.case.customer
    profile = {
        "handle": inbound.author_handle,
        "display_name": inbound.author_name,
        "follower_count": inbound.author_follower_count,
        "verified": inbound.author_verified,
        "profile": inbound.author_profile,
    }
    if known is not None:
        identity, created = identity_refresh(identity=known, **profile), False
    else:
        identity, created = identity_resolve(
            kind=inbound.platform,
            platform_id=inbound.author_id,
            customer=link_to,
            link_source=Identity.LinkSource.VERIFIED,
            **profile,
        )
    if created and link_to is not None:
        notes.append(
            f"New {_label(identity)} linked to customer #{link_to.pk} (verified: wrote privately "
            f"{'on the reply chain' if found.rule == 'reply' else 'with the case reference'})."
        )
    if found is None:
        recent = None if created else _recent_case(identity.customer_id, at=inbound.sent_at)
        if recent is not None:
            found = _Found(case=recent, rule="recent")
        else:
            subject = inbound.subject or _first_line(inbound.text)
            case = services.case_open(customer=identity.customer, channel=channel, subject=subject)
            found = _Found(case=case, rule="new")
    elif found.case.customer_id != identity.customer_id:
        if inbound.is_public:
            why = "a public post anyone may answer"
        elif created:
            why = "a shared thread key does not prove who wrote"
        else:
            why = "the identity already belongs to its own customer"
        notes.append(
            f"Written by {_label(identity)} of customer #{identity.customer_id}, not the case's "
            f"customer #{found.case.customer_id}; customers kept apart ({why}, found by {found.rule})."
        )

    message = services.message_add(
        case=found.case,
        direction=Message.Direction.IN,
        kind=inbound.kind,
        text=inbound.text,
        channel=channel,
        identity=identity,
        is_public=inbound.is_public,
        external_id=inbound.external_id,
        reply_to=found.parent,
        in_reply_to_external_id=inbound.reply_to_external_id[:255],
        thread_key=_thread_key(inbound),
        subject=inbound.subject,
        html=inbound.html,
        quoted_text=inbound.quoted_text,
        sent_at=inbound.sent_at,
        call_duration=inbound.call_duration,
        recording_url=inbound.recording_url[:500],
    )
    _attachments_save(message, inbound)
    if notes:
        CaseEvent.objects.filter(message=message, case_id=message.case_id).update(reason=" ".join(notes))
    # Triage in the same transaction: priority, category, monitoring, escalation by rule.
    triage.triage_apply(case=message.case, message=message)
    return message


def _thread(channel, inbound: InboundMessage, *, author_customer_id: int | None) -> _Found | None:
    """Rules 1-3 of the module docstring: the case this message continues, if any."""
    global_ids = inbound.platform in GLOBAL_ID_PLATFORMS
    if inbound.reply_to_external_id:
        parent = _parent(channel, inbound.reply_to_external_id, global_ids=global_ids)
        if parent is not None:
            return _Found(case=parent.case, rule="reply", parent=parent)

    keys = list(dict.fromkeys(k for k in inbound.thread_keys if k))[:MAX_THREAD_KEYS]
    if keys:
        match = Q(channel=channel, thread_key__in=keys)
        match |= Q(external_id__in=keys) if global_ids else Q(channel=channel, external_id__in=keys)
        candidates = Message.objects.filter(match)
        if inbound.is_public:
            # Everyone's comments under one public post share its thread key: a public
            # message continues only its own author's thread (see rule 2).
            candidates = candidates.filter(case__customer_id=author_customer_id)
        rows = candidates.order_by("-id").values_list("case_id", "thread_key", "external_id")[:200]
        rank = {key: i for i, key in enumerate(keys)}
        best = None
        for case_id, thread_key, external_id in rows:
            score = min(rank.get(thread_key, len(keys)), rank.get(external_id, len(keys)))
            if best is None or score < best[0]:
                best = (score, case_id)
        if best is not None:
            return _Found(case=Case.objects.select_related("customer").get(pk=best[1]), rule="thread")

    tokens = list(
        dict.fromkeys(
            "C-" + token.upper() for token in REFERENCE_RE.findall(f"{inbound.subject}\n{inbound.text}")
        )
    )
    if tokens:
        by_reference = {
            c.reference: c for c in Case.objects.select_related("customer").filter(reference__in=tokens)
        }
        for token in tokens:
            if token in by_reference:
                return _Found(case=by_reference[token], rule="reference")
    return None


def _parent(channel, external_id: str, *, global_ids: bool) -> Message | None:
    parent = (
        Message.objects.select_related("case__customer")
        .filter(channel=channel, external_id=external_id)
        .first()
    )
    if parent is None and global_ids:
        parent = (
            Message.objects.select_related("case__customer")
            .filter(external_id=external_id)
            .order_by("id")
            .first()
        )
    return parent


def _recent_case(customer_id: int, *, at: datetime) -> Case | None:
    """Rule 4: the customer's latest case that is open or ended within the reopen window of ``at``."""
    at = min(at, timezone.now())
    cutoff = at - timedelta(days=settings.CASE_REOPEN_WINDOW_DAYS)
    return (
        Case.objects.select_related("customer")
        .alias(ended_at=Coalesce("closed_at", "resolved_at"))
        .filter(customer_id=customer_id)
        .filter(
            Q(status__in=Case.OPEN_STATUSES)
            | Q(status__in=[Case.Status.RESOLVED, Case.Status.CLOSED], ended_at__gte=cutoff)
        )
        .order_by(F("last_inbound_at").desc(nulls_last=True), "-id")
        .first()
    )


# --- echoes ----------------------------------------------------------------------------


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
        case = _recent_case(recipient.customer_id, at=inbound.sent_at)
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


# --- helpers ---------------------------------------------------------------------------


def _validate(inbound: InboundMessage) -> None:
    if not inbound.external_id:
        raise ServiceError("An inbound message needs the platform's message id.", field="external_id")
    if len(inbound.external_id) > 255:
        raise ServiceError("The platform's message id is longer than 255 characters.", field="external_id")
    if not inbound.is_echo and not inbound.author_id:
        raise ServiceError("An inbound message needs its author's platform id.", field="author_id")
    if inbound.kind not in INBOUND_KINDS:
        raise ServiceError(f"'{inbound.kind}' is not a message kind.", field="kind")
    if inbound.sent_at is None or timezone.is_naive(inbound.sent_at):
        raise ServiceError("The time a message was sent must carry a time zone.", field="sent_at")


def _existing(channel, external_id: str) -> Message | None:
    return Message.objects.select_related("case").filter(channel=channel, external_id=external_id).first()


def _thread_key(inbound: InboundMessage) -> str:
    if inbound.thread_keys:
        return inbound.thread_keys[0][:255]
    return inbound.external_id if inbound.kind == Message.Kind.EMAIL else ""


def _first_line(text: str) -> str:
    return " ".join((text or "").split())[:80]


def _label(identity: Identity) -> str:
    name = f"@{identity.handle}" if identity.handle else identity.platform_id
    return f"{identity.get_kind_display()} identity {name}"


def _attachments_save(message: Message, inbound: InboundMessage) -> None:
    for item in inbound.attachments:
        row = Attachment(
            message=message,
            filename=item.filename[:255],
            content_type=item.content_type[:255],
            external_url=item.url[:1000],
            content_id=item.content_id[:255],
        )
        if item.content is not None:
            row.size = len(item.content)
            row.file.save(item.filename or "attachment", ContentFile(item.content), save=False)
        row.save()
