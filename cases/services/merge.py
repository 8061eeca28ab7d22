"""Merging cases, and splitting a message (with its thread) off into a new case.

Both move messages between cases and recompute the timelines' clocks of the cases they
leave and join (``_timeline_recompute``), recording on each case which messages moved.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from connectors import webhooks_out

from .. import permissions, sla
from ..errors import NotPermitted, ServiceError
from ..models import Case, CaseEvent, Message
from .cases import case_open, case_set_status
from .events import _announce, _now, _require_reason, record_event

# --- merging cases, splitting a message off ----------------------------------------------------


def _timeline_recompute(case: Case, *, now: datetime) -> None:
    """Re-derive ``case``'s message times and response clock from its timeline; no saving.

    After messages moved between cases (``case_merge``, ``message_split``) the first and
    last customer message, the last reply, the first response and the channel the
    customer last wrote on are read again from the case's messages. The response clock
    is started again from the oldest customer message not answered since, as if the
    messages had always been on this case: the first response on the promise of the
    channel the first message came in on, a next response on the promise of the channel
    the customer last wrote on (``cases/sla.py``'s rules). The resolution clock is the
    caller's to settle. Finishes with ``sla.refresh``.
    """
    timeline = list(
        case.messages.filter(direction__in=[Message.Direction.IN, Message.Direction.OUT])
        .select_related("channel")
        .order_by("sent_at", "pk")
    )
    inbound = [m for m in timeline if m.direction == Message.Direction.IN]
    outbound = [m for m in timeline if m.direction == Message.Direction.OUT]
    case.first_inbound_at = inbound[0].sent_at if inbound else None
    case.last_inbound_at = inbound[-1].sent_at if inbound else None
    case.last_outbound_at = outbound[-1].sent_at if outbound else None
    # A reply counts as the first response once the customer had written.
    answers = [m.sent_at for m in outbound if inbound and m.sent_at >= inbound[0].sent_at]
    case.first_responded_at = answers[0] if answers else None
    if outbound and case.status == Case.Status.NEW:
        case.status = Case.Status.OPEN  # as a reply opens a new case (``case_apply_message``)
    if inbound and inbound[-1].channel is not None:
        case.last_channel = inbound[-1].channel
    case.first_response_due_at = case.next_response_due_at = case.response_risk_at = None
    unanswered = [m for m in inbound if case.last_outbound_at is None or m.sent_at > case.last_outbound_at]
    if unanswered and case.status in sla.RUNNING_STATUSES:
        if case.first_responded_at is None:
            field, promise = "first_response_due_at", sla.promise_for(inbound[0].channel)
        else:
            field, promise = "next_response_due_at", sla.promise_for(inbound[-1].channel)
        if promise is not None:
            due, case.response_risk_at = sla._clock(promise, field, unanswered[0].sent_at, case.priority)
            setattr(case, field, due)
    sla.refresh(case, now=now)


def _messages_moved_events(
    *,
    source: Case,
    target: Case,
    message_ids: list[int],
    actor,
    reason: str,
    kind: str = CaseEvent.Kind.MERGED,
) -> None:
    """A CaseEvent (``merged`` or ``split``) on both cases: which messages left ``source`` for ``target``, and why."""
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=on,
            kind=kind,
            actor=actor,
            before={"case": source.pk, "customer": source.customer_id, "messages": message_ids},
            after={"case": target.pk, "customer": target.customer_id},
            reason=reason,
        )
        for on in (source, target)
    )


@transaction.atomic
def case_merge(*, source: Case, target: Case, actor, reason: str) -> Case:
    """Merge case ``source`` into ``target``: one conversation, one case. Returns the target.

    Guarantees:
    - both rows are locked (id order); refused with ``ReasonRequired`` without a reason,
      ``ServiceError`` for a case merged into itself or into a resolved or closed case,
      ``NotPermitted`` unless ``actor`` may work both cases (so may see both: that is what
      lets cases of two customers merge; each message keeps its identity);
    - every message (with its attachments) and every CaseEvent of ``source`` moves to
      ``target``, so the target's timeline and audit trail are the whole story; the
      source's followers and assignee follow the target, and its incidents list the target;
    - the target takes the higher of the two priorities (and the source's category if it has
      none), each change with its own event; a target waiting on the customer
      opens when the source brings a customer message newer than the target's last reply;
      its response clock is recomputed from the merged timeline and its resolution clock
      is the earlier of the two (a merge never postpones a promise);
    - a ``merged`` CaseEvent on both cases names the messages moved and the reason; the
      source, now empty, is closed with a status event saying where it went;
    - live ``case.changed`` events for both after commit; the
      ``case.merged`` integrator webhook names the target and the merged case.
    """
    reason = _require_reason(reason)
    if source.pk == target.pk:
        raise ServiceError("A case cannot be merged into itself.", field="source_id")
    locked = {
        c.pk: c for c in Case.objects.select_for_update().filter(pk__in=[source.pk, target.pk]).order_by("pk")
    }
    source, target = locked[source.pk], locked[target.pk]
    if actor is not None and not permissions.can_merge_cases(actor, source, target):
        raise NotPermitted("You may merge only cases you work on, both of them.")
    if target.status in (Case.Status.RESOLVED, Case.Status.CLOSED):
        raise ServiceError(f"{target.reference} is {target.get_status_display().lower()}: reopen it first.")
    now = _now()
    message_ids = list(source.messages.order_by("sent_at", "pk").values_list("pk", flat=True))
    source_brings_news = source.last_inbound_at is not None and (
        target.last_outbound_at is None or source.last_inbound_at > target.last_outbound_at
    )
    Message.objects.filter(case=source).update(case=target)
    CaseEvent.objects.filter(case=source).update(case=target)
    followers = set(source.followers.values_list("pk", flat=True)) | ({source.assignee_id} - {None})
    followers.discard(target.assignee_id)
    if followers:
        target.followers.add(*followers)
    incidents = list(source.incidents.all())
    if incidents:
        target.incidents.add(*incidents)

    before = {"status": target.status, "priority": target.priority, "category": target.category}
    if Case.PRIORITY_RANK[source.priority] > Case.PRIORITY_RANK[target.priority]:
        target.priority = source.priority
    target.category = target.category or source.category
    if target.status == Case.Status.WAITING_ON_CUSTOMER and source_brings_news:
        target.status = Case.Status.OPEN
        sla.on_status_change(target, previous=Case.Status.WAITING_ON_CUSTOMER, at=now)
    if source.resolution_due_at is not None and target.status in sla.RUNNING_STATUSES:
        if target.resolution_due_at is None or source.resolution_due_at < target.resolution_due_at:
            target.resolution_due_at, target.resolution_risk_at = (
                source.resolution_due_at,
                source.resolution_risk_at,
            )
            target.resolution_remaining_seconds = None
    elif target.resolution_due_at is None and target.resolution_remaining_seconds is None:
        target.resolution_remaining_seconds = source.resolution_remaining_seconds
    _timeline_recompute(target, now=now)
    target.save()

    _messages_moved_events(
        source=source,
        target=target,
        message_ids=message_ids,
        actor=actor,
        reason=f"{source.reference} merged into {target.reference}: {reason}",
    )
    for name, kind in (
        ("status", CaseEvent.Kind.STATUS),
        ("priority", CaseEvent.Kind.PRIORITY),
        ("category", CaseEvent.Kind.CATEGORY),
    ):
        if getattr(target, name) != before[name]:
            record_event(
                case=target,
                kind=kind,
                actor=actor,
                before={name: before[name]},
                after={name: getattr(target, name)},
                reason=f"Merged with {source.reference}.",
            )

    # Nothing is left on the source: no clock, no message times (reports count the target's).
    source.resolution_due_at = source.resolution_risk_at = source.resolution_remaining_seconds = None
    _timeline_recompute(source, now=now)
    source.save()
    source = case_set_status(
        case=source,
        status=Case.Status.CLOSED,
        actor=None,  # permitted above; the merge event names the actor
        reason=f"Merged into {target.reference}.",
    )
    _announce(source, "merged")
    _announce(target, "merged", source.assignee_id)
    webhooks_out.emit(
        "case.merged",
        {
            **webhooks_out.case_payload(target),
            "merged_case_id": source.pk,
            "merged_reference": source.reference,
        },
    )
    return target


def _thread_from(message: Message, rows: list[tuple[int, int | None]]) -> list[int]:
    """``message`` and every message of its case answering it, directly or through each other."""
    children: dict[int, list[int]] = {}
    for pk, parent in rows:
        if parent is not None:
            children.setdefault(parent, []).append(pk)
    thread, todo = [], [message.pk]
    while todo:
        pk = todo.pop()
        thread.append(pk)
        todo.extend(children.get(pk, []))
    return thread


@transaction.atomic
def message_split(*, message: Message, actor, reason: str) -> Case:
    """Split a customer's message, with its replies in thread, off into a new case. Returns the new case.

    What moves: ``message`` and every later message of the case that answers it, directly
    or through each other (``reply_to``): the customer's follow-ups in that thread and
    our replies to them. Notes and other conversations stay.

    Guarantees:
    - the case row is locked; refused with ``ReasonRequired`` without a reason,
      ``NotPermitted`` unless ``actor`` may work the case, ``ServiceError`` for a message
      that is not the customer's or when nothing would be left on the case;
    - the new case belongs to the same customer and department, starts on the message's
      channel with its subject, the case's priority and category, unassigned
      (``case_open``: a ``created`` event, the ``case.created`` webhook, a live event);
    - the moved messages keep their attachments; both cases get a ``split`` CaseEvent
      naming the moved messages and the reason;
    - the new case's clocks run from its first message as if it had always been its
      own (first response owed unless answered in the thread, resolution from that
      message); the old case's response clock is recomputed from what stays, its
      resolution clock is kept;
    - live ``case.changed`` events for both after commit.
    """
    reason = _require_reason(reason)
    case = Case.objects.select_for_update().get(pk=message.case_id)
    message = Message.objects.select_related("channel").get(pk=message.pk)
    if message.case_id != case.pk:
        raise ServiceError("The message moved to another case meanwhile; try again.")
    if actor is not None and not permissions.can_work_case(actor, case):
        raise NotPermitted("You cannot split messages off this case.")
    if message.direction != Message.Direction.IN:
        raise ServiceError("Only a customer's message can start a case of its own.")
    rows = list(case.messages.values_list("pk", "reply_to_id"))
    moving = _thread_from(message, rows)
    if len(moving) == len(rows):
        raise ServiceError(
            f"Nothing would be left on {case.reference}: the message is its whole conversation."
        )
    first_line = message.text.strip().splitlines()[0] if message.text.strip() else ""
    new = case_open(
        customer=case.customer,
        channel=message.channel,
        department=case.department,
        subject=message.subject or first_line[:120] or case.subject,
        priority=case.priority,
        category=case.category,
        actor=actor,
    )
    new = Case.objects.select_for_update().get(pk=new.pk)
    Message.objects.filter(pk__in=moving).update(case=new)
    moved_ids = list(new.messages.order_by("sent_at", "pk").values_list("pk", flat=True))
    now = _now()

    _timeline_recompute(new, now=now)
    if new.first_inbound_at is not None:
        promise = sla.promise_for(message.channel) or sla.promise_for(new.origin_channel)
        if promise is not None:
            new.resolution_due_at, new.resolution_risk_at = sla._clock(
                promise, "resolution_due_at", new.first_inbound_at, new.priority
            )
        sla.refresh(new, now=now)
    new.save()

    _timeline_recompute(case, now=now)
    case.save()
    _messages_moved_events(
        source=case,
        target=new,
        message_ids=moved_ids,
        actor=actor,
        reason=f"Split off {case.reference} into {new.reference}: {reason}",
        kind=CaseEvent.Kind.SPLIT,
    )
    _announce(case, "split")
    _announce(new, "split")
    webhooks_out.emit(
        "case.split",
        {
            **webhooks_out.case_payload(new),
            "split_from_case_id": case.pk,
            "split_from_reference": case.reference,
            "message_ids": moved_ids,
        },
    )
    return new
