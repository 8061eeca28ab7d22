"""One inbound message in: ``ingest`` and the write of a message on its case.

``ingest`` validates the message, returns the one already stored (idempotent on channel
and platform id, retrying an insert race), or hands an echo to ``echo``; an inbound
message gets its author's identity (found, refreshed, or created with a new customer,
linked only as the package docstring says), its case from the threading rules
(``threading``) or a new one, and ``_store`` writes the message, the case's new state,
triage, CaseEvents, attachments and live events together.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_app.publish import publish_on_commit
from config.rows import insert_linked, update_row
from connectors import webhooks_out
from connectors.base import DeliveryUpdate, InboundMessage
from connectors.own_contacts import own_contact_values
from customers.models import Identity
from customers.services import identity_build, identity_refresh, identity_resolve, identity_suggestions_record

from .. import escalation, services, triage
from ..errors import ServiceError
from ..models import Attachment, Case, CaseEvent, Message
from .batch import IngestContext, _existing
from .echo import _ingest_echo
from .threading import (
    _adopt_early_replies,
    _early_replies_case,
    _Found,
    _lock,
    _recent_case,
    _thread,
    _thread_key,
)
from .updates import delivery_update_apply

INBOUND_KINDS = frozenset(Message.Kind.values) - {Message.Kind.NOTE}


def ingest(*, channel, inbound: InboundMessage, context: IngestContext | None = None) -> Message | None:
    """Store ``inbound`` as a Message on the case it belongs to; return it (None for an
    echo that belongs to no case we know).

    One transaction: identity, case, message, attachments and CaseEvents are written
    together or not at all; live events go out after commit. Idempotent on (channel,
    external id), including the race of two workers inserting the same message: the
    loser returns the winner's row. Raises ``ServiceError`` naming the field for an
    inbound value that cannot be stored. ``context`` shares look-ups across a batch
    (see :class:`IngestContext`).
    """
    _validate(inbound)
    context = context or IngestContext()
    with transaction.atomic(savepoint=False):
        return _ingest(context.channel(channel), inbound, context)


def _ingest(channel, inbound: InboundMessage, ctx: IngestContext) -> Message | None:
    existing = ctx.existing(channel, inbound.external_id)
    if existing is not None:
        if inbound.is_echo:
            delivery_update_apply(
                channel=channel,
                update=DeliveryUpdate(external_id=inbound.external_id, state=Message.Delivery.SENT),
            )
        return existing
    if ctx.batch:
        return _ingest_new(channel, inbound, ctx)
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _ingest_new(channel, inbound, ctx)
        except IntegrityError:
            # Another worker stored the same platform message (unique channel + external id)
            # or the same new identity first, or a new case drew a taken reference.
            ctx.forget()
            existing = _existing(channel, inbound.external_id)
            if existing is not None:
                return existing
            if attempt == 2:
                raise
    return None  # pragma: no cover - the loop returns or raises


def _ingest_new(channel, inbound: InboundMessage, ctx: IngestContext) -> Message | None:
    if inbound.is_echo:
        ctx.flush_events()
    message = _ingest_echo(channel, inbound) if inbound.is_echo else _ingest_inbound(channel, inbound, ctx)
    if message is not None:
        ctx.remember(message)
    return message


# --- inbound ---------------------------------------------------------------------------


def _ingest_inbound(channel, inbound: InboundMessage, ctx: IngestContext) -> Message:
    known = ctx.identity(inbound.platform, inbound.author_id)
    author_customer_id = known.customer_id if known else None
    found = _thread(channel, inbound, ctx, author_customer_id=author_customer_id)
    if found is None:
        found = _early_replies_case(channel, inbound, ctx, author_customer_id=author_customer_id)
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
        if known.pk in ctx.pending.identity_ids:
            ctx.flush_rows()  # a refreshed profile is an UPDATE of the stored row
        identity, created = identity_refresh(identity=known, **profile), False
    elif ctx.batch:
        # The batch's savepoint covers the insert race: the event is retried. A new author
        # of a new conversation is written with its case and message (``_store``).
        identity = identity_build(
            kind=inbound.platform,
            platform_id=inbound.author_id,
            customer=link_to,
            link_source=Identity.LinkSource.VERIFIED,
            **profile,
        )
        created = True
        if found is not None:
            insert_linked([identity.customer, identity])
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
        if identity.customer_id in ctx.pending.customer_ids:
            ctx.flush_rows()
        recent = (
            None
            if created
            else _recent_case(
                identity.customer_id, at=inbound.sent_at, channel=channel, lock=True, nowait=ctx.batch
            )
        )
        if recent is not None:
            found = _Found(case=recent, rule="recent", locked=True)
        else:
            subject = inbound.subject or _first_line(inbound.text)
            case = services.case_build(customer=identity.customer, channel=channel, subject=subject)
            found = _Found(case=case, rule="new", locked=True)
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
    case = found.case if found.locked else _lock(found.case, nowait=ctx.batch)
    # A customer created for this message has no earlier messages to count for triage (an
    # unsaved one is only ever on its own new case: both ids are still None).
    new_customer = created and link_to is None and case.customer_id == identity.customer_id
    message = _store(case, channel, inbound, identity, found, ctx, notes=notes, new_customer=new_customer)
    _adopt_early_replies(message, inbound, ctx)
    return message


def _store(
    case: Case,
    channel,
    inbound: InboundMessage,
    identity: Identity,
    found: _Found,
    ctx: IngestContext,
    *,
    notes: list[str],
    new_customer: bool,
) -> Message:
    """Write the message, its case's new state and triage, and their CaseEvents.

    The same changes as ``services.message_add`` followed by ``triage.triage_apply``, with
    the triage decided before anything is written: the case is written once (one INSERT
    for a new case), the CaseEvents in one statement, and two live events go out.
    """
    is_new = case.pk is None
    ctx.attach_channels(case)
    stored = None if is_new else _case_values(case)
    message = Message(
        case=case,
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
        subject=inbound.subject[:255],
        html=inbound.html,
        quoted_text=inbound.quoted_text,
        sent_at=inbound.sent_at,
        call_duration=inbound.call_duration,
        recording_url=inbound.recording_url[:500],
    )
    event_kind, before = services.case_apply_message(
        case,
        direction=Message.Direction.IN,
        kind=inbound.kind,
        channel=channel,
        at=inbound.sent_at,
        call_duration=inbound.call_duration,
    )
    repeat_contacts = 0 if new_customer else ctx.repeat_contacts(case.customer_id, inbound.sent_at)
    if repeat_contacts is None:
        ctx.flush_rows()  # triage counts the customer's messages in the database
    result = triage.assess_inbound(
        case=case, message=message, settings=ctx.triage_settings(), repeat_contacts=repeat_contacts
    )
    message.triage = result.breakdown()
    changed, triage_events = triage.triage_changes(case=case, message=message, result=result)
    if is_new:
        if ctx.defer_rows:
            # Written with the chunk's other new conversations (IngestContext.flush_rows).
            ctx.pending.add([identity.customer, identity, case, message])
        else:
            # A new conversation in one statement: its new customer and identity, case, message.
            insert_linked([identity.customer, identity, case, message])
        ctx.cases_created.add(case.pk)
    else:
        changed_fields = [name for name, value in _case_values(case).items() if stored[name] != value]
        update_row(case, [*changed_fields, "updated_at"])
        insert_linked([identity.customer, identity, message])
    if new_customer:
        ctx.new_customer(case.customer_id)
    events = []
    if is_new:
        events.append(
            CaseEvent(
                case=case,
                kind=CaseEvent.Kind.CREATED,
                after={"department": case.department_id, "channel": channel.pk if channel else None},
            )
        )
    status_changed = case.status != before["status"] and not is_new
    events.append(
        CaseEvent(
            case=case,
            kind=event_kind,
            before=before if status_changed else {},
            after={"status": case.status} if status_changed else {},
            reason=" ".join(notes),
            message=message,
        )
    )
    ctx.save_events(events + triage_events)
    _attachments_save(message, inbound)
    # An address or number not the customer's on file: a suggestion, never a link or a merge.
    identity_suggestions_record(
        customer=identity.customer,
        text=f"{inbound.subject}\n{inbound.text}",
        source_message_id=message.pk,
        author=identity,
        before_lookup=ctx.flush_rows,
        returning=False,
        ours=own_contact_values,
    )
    case_groups = triage.triage_groups(case)
    publish_on_commit(
        event={"type": "message.added", "case_id": case.pk, "message_id": message.pk, "direction": "in"},
        groups=case_groups,
    )
    publish_on_commit(
        event=triage.triage_event(case, change="created" if is_new else "message"), groups=case_groups
    )
    if is_new and ctx.emits("case.created"):
        webhooks_out.emit("case.created", webhooks_out.case_payload(case))
    if ctx.emits("message.received"):
        webhooks_out.emit("message.received", webhooks_out.message_payload(message))
    if {"priority", "category"} & set(changed) and ctx.escalates(case.department_id):
        ctx.flush_events()
        escalation.escalate_if_triggered(case=case)
    return message


_CASE_FIELDS = [f for f in Case._meta.concrete_fields if not f.primary_key]


def _case_values(case: Case) -> dict:
    """The case's column values by field name: what ``_store`` compares to save only the changes."""
    return {f.name: getattr(case, f.attname) for f in _CASE_FIELDS}


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
