"""Every write to a case goes through here.

Each service is one transaction: it locks the case row where concurrent changes
could collide, writes its CaseEvent in the same transaction, and publishes a live
event only after commit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors import webhooks_out
from customers import services as customer_services
from customers.errors import CustomerRefused

from . import permissions, selectors, sla
from .errors import AlreadyClaimed, NotPermitted, ReasonRequired, ServiceError, StaleDraft
from .models import Case, CaseEvent, Department, Message, new_reference


def _now() -> datetime:
    return datetime.now(UTC)


def _user_label(user) -> str | None:
    return None if user is None else selectors.user_name(user)


def _case_groups(case: Case, *extra_users) -> list[str]:
    names = [groups.case_group(case.pk), groups.department_group(case.department_id)]
    for user_id in (case.assignee_id, *extra_users):
        if user_id:
            names.append(groups.user_group(user_id))
    return names


def _announce(case: Case, change: str, *extra_users, actor=None) -> None:
    """Tell every screen showing ``case`` that it changed (after commit).

    An assignment names who made it (``actor_id``): the new assignee's desk notifies them
    unless they took the case themselves."""
    event = {
        "type": "case.changed",
        "change": change,
        "case_id": case.pk,
        "reference": case.reference,
        "department_id": case.department_id,
        "assignee_id": case.assignee_id,
        "status": case.status,
        "priority": case.priority,
        "sla_state": case.sla_state,
        "due_at": case.due_at.isoformat() if case.due_at else None,
    }
    if change == "assigned":
        event["actor_id"] = actor.pk if actor is not None else None
    publish_on_commit(event=event, groups=_case_groups(case, *extra_users))


def record_event(
    *,
    case: Case,
    kind: str,
    actor=None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    message: Message | None = None,
) -> CaseEvent:
    """Append one row to the case's audit trail (call inside the service's transaction)."""
    return CaseEvent.objects.create(
        case=case,
        kind=kind,
        actor=actor,
        before=before or {},
        after=after or {},
        reason=reason,
        message=message,
    )


def _locked(case: Case) -> Case:
    """Re-read ``case`` under a row lock so concurrent services apply one after the other."""
    return Case.objects.select_for_update().get(pk=case.pk)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return reason


def case_build(
    *,
    customer,
    channel=None,
    department: Department | None = None,
    subject: str = "",
    priority: str = Case.Priority.NORMAL,
    category: str = "",
) -> Case:
    """An unsaved new case for ``customer``, routed to ``department`` or the channel's, with a
    fresh reference. ``case_open`` saves it with its event; ``cases.ingest`` fills in the
    first message's clocks and triage before saving it in one INSERT."""
    department = department or (channel.department if channel else None)
    if department is None:
        raise ServiceError("A case needs a department or a channel to route it.", field="department")
    return Case(
        reference=new_reference(),
        customer=customer,
        department=department,
        subject=subject[:255],
        priority=priority,
        category=category,
        origin_channel=channel,
        last_channel=channel,
    )


@transaction.atomic
def case_open(
    *,
    customer,
    channel=None,
    department: Department | None = None,
    subject: str = "",
    priority: str = Case.Priority.NORMAL,
    category: str = "",
    actor=None,
) -> Case:
    """Open a case for ``customer``, owned by ``department`` or the channel's department.

    Writes a ``created`` event; announces the case to its department after commit.
    """
    for _ in range(8):  # a reference collision is rare; try a fresh token
        try:
            with transaction.atomic():
                case = case_build(
                    customer=customer,
                    channel=channel,
                    department=department,
                    subject=subject,
                    priority=priority,
                    category=category,
                )
                case.save(force_insert=True)
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - 29^5 tokens
        raise ServiceError("Could not allocate a case reference.")
    record_event(
        case=case,
        kind=CaseEvent.Kind.CREATED,
        actor=actor,
        after={"department": case.department_id, "channel": channel.pk if channel else None},
    )
    _announce(case, "created")
    webhooks_out.emit("case.created", webhooks_out.case_payload(case))
    return case


def case_apply_message(
    case: Case, *, direction: str, kind: str, channel, at: datetime, call_duration: int | None = None
) -> tuple[str, dict]:
    """Move ``case``'s timestamps, status and clocks for a new message written at ``at``; no saving.

    Returns the CaseEvent kind the message is recorded with and the case's status before.
    Inbound messages reopen resolved cases and start the clocks we owe; outbound replies
    stop the response clocks; internal notes change nothing. An inbound call that lasted
    (``call_duration`` over zero: someone picked up) was answered as it began, so it owes no
    response; a missed call does. The caller holds the case's row lock and saves the case
    (``message_add``, ``cases.ingest``).
    """
    before = {"status": case.status}
    if direction == Message.Direction.IN:
        case.first_inbound_at = case.first_inbound_at or at
        if case.last_inbound_at is None or at >= case.last_inbound_at:
            # Messages arrive out of order; the latest written decides the channel.
            case.last_channel = channel or case.last_channel
        case.last_inbound_at = max(case.last_inbound_at or at, at)
        if case.status in (Case.Status.RESOLVED, Case.Status.CLOSED, Case.Status.WAITING_ON_CUSTOMER):
            case.status = Case.Status.OPEN
            case.resolved_at = case.closed_at = None
        sla.on_inbound(case, channel=channel, at=at)
        if kind == Message.Kind.CALL and call_duration:
            sla.on_reply(case, at=at)  # answered on the phone
        event_kind = CaseEvent.Kind.CALL if kind == Message.Kind.CALL else CaseEvent.Kind.MESSAGE_IN
    elif direction == Message.Direction.OUT:
        case.last_outbound_at = at
        if case.status == Case.Status.NEW:
            case.status = Case.Status.OPEN
        sla.on_reply(case, at=at)
        event_kind = CaseEvent.Kind.CALL if kind == Message.Kind.CALL else CaseEvent.Kind.MESSAGE_OUT
    else:
        event_kind = CaseEvent.Kind.NOTE
    return event_kind, before


@transaction.atomic
def message_add(
    *,
    case: Case,
    direction: str,
    kind: str,
    text: str = "",
    channel=None,
    identity=None,
    author=None,
    is_public: bool = False,
    external_id: str = "",
    reply_to: Message | None = None,
    in_reply_to_external_id: str = "",
    thread_key: str = "",
    subject: str = "",
    html: str = "",
    quoted_text: str = "",
    sent_at: datetime | None = None,
    call_duration: int | None = None,
    recording_url: str = "",
    delivery_state: str = "",
    triage: dict | None = None,
) -> Message:
    """Append a message to the case timeline and move the case's clocks and status.

    Inbound messages reopen resolved cases and start the clocks we owe; outbound
    replies stop the response clocks (internal notes never do). Locks the case row.
    """
    case = _locked(case)
    at = sent_at or _now()
    message = Message.objects.create(
        case=case,
        direction=direction,
        kind=kind,
        text=text,
        channel=channel,
        identity=identity,
        author=author,
        is_public=is_public,
        external_id=external_id or "",
        reply_to=reply_to,
        in_reply_to_external_id=in_reply_to_external_id,
        thread_key=thread_key,
        subject=subject[:255],
        html=html,
        quoted_text=quoted_text,
        sent_at=at,
        call_duration=call_duration,
        recording_url=recording_url,
        delivery_state=delivery_state,
        triage=triage or {},
    )
    event_kind, before = case_apply_message(
        case, direction=direction, kind=kind, channel=channel, at=at, call_duration=call_duration
    )
    case.save()
    after = {"status": case.status} if case.status != before["status"] else {}
    record_event(
        case=case, kind=event_kind, actor=author, before=before if after else {}, after=after, message=message
    )
    publish_on_commit(
        event={"type": "message.added", "case_id": case.pk, "message_id": message.pk, "direction": direction},
        groups=_case_groups(case),
    )
    _announce(case, "message")
    if direction == Message.Direction.IN:
        webhooks_out.emit("message.received", webhooks_out.message_payload(message))
    return message


def note_add(*, case: Case, author, text: str) -> Message:
    """Add an internal note: visible to agents only, never stops a clock."""
    text = (text or "").strip()
    if not text:
        raise ServiceError("A note cannot be empty.", field="text")
    if not permissions.can_work_case(author, case):
        raise NotPermitted("You cannot add notes to this case.")
    return message_add(
        case=case, direction=Message.Direction.NOTE, kind=Message.Kind.NOTE, text=text, author=author
    )


def call_log(
    *,
    case: Case,
    author,
    direction: str,
    number: str,
    duration_seconds: int,
    notes: str = "",
    channel=None,
    at: datetime | None = None,
) -> Message:
    """Record a phone call an agent had with the customer, by hand."""
    if direction not in (Message.Direction.IN, Message.Direction.OUT):
        raise ServiceError("A call is inbound or outbound.", field="direction")
    if duration_seconds is None or duration_seconds < 0:
        raise ServiceError("A call's duration is zero or more seconds.", field="duration_seconds")
    if not permissions.can_work_case(author, case):
        raise NotPermitted("You cannot log calls on this case.")
    text = f"Call {'from' if direction == Message.Direction.IN else 'to'} {number}".strip()
    if notes.strip():
        text += f"\n\n{notes.strip()}"
    return message_add(
        case=case,
        direction=direction,
        kind=Message.Kind.CALL,
        text=text,
        channel=channel,
        author=author,
        call_duration=duration_seconds,
        sent_at=at,
    )


@transaction.atomic
def case_assign(*, case: Case, assignee, actor, reason: str = "") -> Case:
    """Give ``case`` to ``assignee`` (None unassigns). Locks the row; writes an event."""
    case = _locked(case)
    if actor is not None and not permissions.can_assign(actor, case, assignee):
        raise NotPermitted("You may assign cases only to members of the case's department.")
    previous = case.assignee_id
    new = assignee.pk if assignee else None
    if previous == new:
        return case
    case.assignee = assignee
    if previous:
        case.followers.add(previous)
    case.save(update_fields=["assignee", "updated_at"])
    record_event(
        case=case,
        kind=CaseEvent.Kind.ASSIGNED if assignee else CaseEvent.Kind.UNASSIGNED,
        actor=actor,
        before={"assignee": previous},
        after={"assignee": new},
        reason=reason,
    )
    _announce(case, "assigned", previous, actor=actor)
    if assignee is not None:
        webhooks_out.emit("case.assigned", webhooks_out.case_payload(case))
    return case


@transaction.atomic
def case_claim(*, case: Case, actor) -> Case:
    """Take an unassigned case for yourself. Of two agents claiming at once, exactly one wins.

    The row lock serialises claimants: the second sees the first's assignee and gets
    ``AlreadyClaimed``.
    """
    case = _locked(case)
    if not permissions.can_work_case(actor, case):
        raise NotPermitted("You can claim only cases of your departments.")
    if case.assignee_id == actor.pk:
        return case
    if case.assignee_id is not None:
        raise AlreadyClaimed(f"{case.reference} is already assigned.")
    case.assignee = actor
    case.save(update_fields=["assignee", "updated_at"])
    record_event(
        case=case,
        kind=CaseEvent.Kind.CLAIMED,
        actor=actor,
        before={"assignee": None},
        after={"assignee": actor.pk},
    )
    _announce(case, "assigned", actor=actor)
    webhooks_out.emit("case.assigned", webhooks_out.case_payload(case))
    return case


@transaction.atomic
def case_transfer(
    *,
    case: Case,
    to_department: Department,
    actor,
    reason: str,
    note: str = "",
    kind: str = CaseEvent.Kind.TRANSFERRED,
    permitted: bool = False,
) -> Case:
    """Hand ``case`` to another department, with a reason on record and an optional hand-off note.

    ``actor`` must be allowed the move by ``permissions.can_transfer`` unless the caller
    has already checked a rule of its own (``permitted``: a hand-back goes against the
    path). The previous assignee keeps following the case; the receiving department picks it up
    unassigned. The customer's service clocks are not reset.
    """
    reason = _require_reason(reason)
    case = _locked(case)
    if to_department.pk == case.department_id:
        raise ServiceError("The case is already in that department.", field="to_department")
    if actor is not None and not permitted and not permissions.can_transfer(actor, case, to_department.pk):
        raise NotPermitted("No escalation path allows that transfer; ask a supervisor.")
    previous_department, previous_assignee = case.department_id, case.assignee_id
    if previous_assignee:
        case.followers.add(previous_assignee)
    case.department = to_department
    case.assignee = None
    case.handoff_note = (note or "").strip()
    case.save(update_fields=["department", "assignee", "handoff_note", "updated_at"])
    record_event(
        case=case,
        kind=kind,
        actor=actor,
        reason=reason,
        before={"department": previous_department, "assignee": previous_assignee},
        after={"department": to_department.pk, "assignee": None, "note": case.handoff_note},
    )
    publish_on_commit(
        event={"type": "case.left", "case_id": case.pk, "reference": case.reference},
        groups=[groups.department_group(previous_department)],
    )
    _announce(case, "transferred", previous_assignee)
    return case


@transaction.atomic
def case_set_status(*, case: Case, status: str, actor, reason: str = "") -> Case:
    """Change the case's status; resolving stops every clock, reopening restarts what is owed."""
    if status not in Case.Status.values:
        raise ServiceError(f"'{status}' is not a case status.", field="status")
    case = _locked(case)
    if actor is not None and not permissions.can_work_case(actor, case):
        raise NotPermitted("You cannot change this case.")
    previous = case.status
    if previous == status:
        return case
    case.status = status
    now = _now()
    if status == Case.Status.RESOLVED:
        case.resolved_at = now
    elif status == Case.Status.CLOSED:
        case.closed_at = now
        case.resolved_at = case.resolved_at or now
    else:
        case.resolved_at = case.closed_at = None
    sla.on_status_change(case, previous=previous, at=now)
    case.save()
    record_event(
        case=case,
        kind=CaseEvent.Kind.STATUS,
        actor=actor,
        before={"status": previous},
        after={"status": status},
        reason=reason,
    )
    _announce(case, "status")
    if status == Case.Status.RESOLVED:
        from .csat.services import survey_on_resolve

        survey_on_resolve(case=case)  # asks the customer after commit, once per case
    return case


@transaction.atomic
def case_set_priority(*, case: Case, priority: str, actor, reason: str = "") -> Case:
    """Change the case's priority; a tighter per-priority promise pulls the running response clock in."""
    if priority not in Case.Priority.values:
        raise ServiceError(f"'{priority}' is not a priority.", field="priority")
    case = _locked(case)
    if actor is not None and not permissions.can_work_case(actor, case):
        raise NotPermitted("You cannot change this case.")
    previous = case.priority
    if previous == priority:
        return case
    case.priority = priority
    sla.on_priority_change(case, previous=previous, at=_now())
    case.save()
    record_event(
        case=case,
        kind=CaseEvent.Kind.PRIORITY,
        actor=actor,
        before={"priority": previous},
        after={"priority": priority},
        reason=reason,
    )
    _announce(case, "priority")
    return case


# Longest text each platform accepts in one outbound message (None: no practical limit).
TEXT_LIMITS = {"x": 280, "whatsapp": 4096, "facebook": 2000, "instagram": 1000}


def _reply_target(case: Case, channel, *, is_public: bool) -> Message | None:
    """The customer's latest message on ``channel`` that a reply should thread under."""
    inbound = case.messages.filter(channel=channel, direction=Message.Direction.IN)
    if is_public:
        inbound = inbound.filter(is_public=True)
    return inbound.order_by("-sent_at", "-id").first()


@transaction.atomic
def case_reply(
    *,
    case: Case,
    author,
    channel,
    text: str,
    is_public: bool = False,
    identity=None,
    draft_started_at: datetime | None = None,
) -> Message:
    """Queue a reply to the customer on ``channel``; it is sent by a task after commit.

    Refuses (``StaleDraft``) when the customer wrote, or another agent replied, after
    ``draft_started_at``, so two agents never answer the same message unawares. The
    message is the outbox row: ``delivery_state`` goes queued -> sent | failed.
    """
    from connectors.outbound import enqueue_send

    text = (text or "").strip()
    if not text:
        raise ServiceError("A reply cannot be empty.", field="text")
    limit = TEXT_LIMITS.get(channel.kind)
    if limit and is_public and len(text) > limit:
        raise ServiceError(
            f"A public reply on {channel.get_kind_display()} is at most {limit} characters "
            f"({len(text)} given).",
            field="text",
        )
    if not permissions.can_work_case(author, case):
        raise NotPermitted("You cannot reply on this case.")
    locked = _locked(case)
    if draft_started_at is not None:
        newer = locked.messages.filter(created_at__gt=draft_started_at).filter(_news_for(author))
        if newer.exists():
            raise StaleDraft(
                "The customer wrote or a colleague replied since you started this draft; "
                "read it before sending."
            )
    parent = _reply_target(locked, channel, is_public=is_public)
    if identity is None and parent is not None:
        identity = parent.identity
    if identity is None:
        identity = locked.customer.identities.filter(kind=channel.kind).first()
    if identity is None:
        raise ServiceError(
            f"The customer has no {channel.get_kind_display()} identity to reply to.", field="channel"
        )
    kind = _outbound_kind(channel.kind, is_public=is_public, parent=parent)
    message = message_add(
        case=locked,
        direction=Message.Direction.OUT,
        kind=kind,
        text=text,
        channel=channel,
        identity=identity,
        author=author,
        is_public=is_public,
        reply_to=parent,
        delivery_state=Message.Delivery.QUEUED,
        subject=locked.subject if channel.kind == "email" else "",
    )
    enqueue_send(message)
    return message


def _news_for(author) -> Q:
    """Messages an agent must have seen before sending: the customer's, and other agents' replies."""
    return Q(direction=Message.Direction.IN) | (Q(direction=Message.Direction.OUT) & ~Q(author=author))


def _outbound_kind(channel_kind: str, *, is_public: bool, parent: Message | None) -> str:
    if channel_kind == "email":
        return Message.Kind.EMAIL
    if is_public:
        return (
            parent.kind if parent is not None and parent.kind == Message.Kind.COMMENT else Message.Kind.POST
        )
    return Message.Kind.DM


@transaction.atomic
def message_delivery_update(
    *, message: Message, state: str, error: str = "", external_id: str = ""
) -> Message:
    """Record what the platform said about an outbound message; a failure is also a CaseEvent."""
    message = Message.objects.select_for_update().get(pk=message.pk)
    previous = message.delivery_state
    order = ["", "queued", "sent", "delivered", "read"]
    if state in order and previous in order and order.index(state) <= order.index(previous):
        return message  # platforms report out of order; never step back
    message.delivery_state = state
    message.delivery_error = error if state == Message.Delivery.FAILED else ""
    if external_id:
        message.external_id = external_id
    message.save(update_fields=["delivery_state", "delivery_error", "external_id"])
    if state == Message.Delivery.SENT:
        webhooks_out.emit("message.sent", webhooks_out.message_payload(message))
    if state == Message.Delivery.FAILED:
        record_event(
            case=message.case,
            kind=CaseEvent.Kind.DELIVERY,
            before={"delivery_state": previous},
            after={"delivery_state": state, "error": error},
            message=message,
        )
    publish_on_commit(
        event={
            "type": "message.delivery",
            "case_id": message.case_id,
            "message_id": message.pk,
            "delivery_state": state,
            "error": message.delivery_error,
        },
        groups=[groups.case_group(message.case_id)]
        + ([groups.user_group(message.author_id)] if message.author_id else []),
    )
    return message


# --- customers: merge and unmerge (the cases' part; customers.services does the rest) ----------


@transaction.atomic
def customer_merge(*, source, target, actor):
    """Merge customer ``source`` into ``target``: identities and cases move, ``source.merged_into`` is set.

    The customers' part (identities, the merge record) is
    ``customers.services.customer_merge_identities``; here each of ``source``'s cases
    is locked (id order), moved, and gets a ``merged`` CaseEvent naming both customers and
    the moved identities; the moved cases are noted on the merge record so
    ``customer_unmerge`` can put them back. Live ``case.changed`` events after commit.
    Refusals are ``ServiceError`` naming the field. Returns the target.
    """
    try:
        merge = customer_services.customer_merge_identities(source=source, target=target, actor=actor)
    except CustomerRefused as exc:
        raise ServiceError(exc.reason, field=exc.field) from exc
    identity_ids = [row["id"] for row in merge.identities]
    cases = list(Case.objects.select_for_update().filter(customer_id=merge.source_id).order_by("pk"))
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            kind=CaseEvent.Kind.MERGED,
            actor=actor,
            before={"customer": merge.source_id},
            after={"customer": merge.target_id, "identities": identity_ids},
            reason=f"Customer #{merge.source_id} merged into customer #{merge.target_id}.",
        )
        for case in cases
    )
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(customer_id=merge.target_id, updated_at=_now())
    customer_services.customer_merge_record_cases(merge=merge, case_ids=[c.pk for c in cases])
    for case in cases:
        _announce(case, "customer")
    return merge.target


@transaction.atomic
def customer_unmerge(*, source, actor, reason: str = ""):
    """Undo ``source``'s merge: its identities and the cases the merge moved go back to it.

    The customers' part is ``customers.services.customer_unmerge_identities``; each case
    the merge moved that is still on the target is locked, moved back and gets a
    ``merged`` CaseEvent (before: the target, after: ``source``) with ``reason``. Cases
    the target opened since stay with the target. Returns ``source``, a customer of its
    own again. Refusals are ``ServiceError`` naming the field.
    """
    try:
        merge = customer_services.customer_unmerge_identities(source=source, actor=actor)
    except CustomerRefused as exc:
        raise ServiceError(exc.reason, field=exc.field) from exc
    cases = list(
        Case.objects.select_for_update()
        .filter(pk__in=merge.case_ids, customer_id=merge.target_id)
        .order_by("pk")
    )
    note = f"Merge of customer #{merge.source_id} into customer #{merge.target_id} undone."
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            kind=CaseEvent.Kind.MERGED,
            actor=actor,
            before={"customer": merge.target_id},
            after={"customer": merge.source_id, "identities": [row["id"] for row in merge.identities]},
            reason=f"{note} {reason}".strip(),
        )
        for case in cases
    )
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(customer_id=merge.source_id, updated_at=_now())
    for case in cases:
        _announce(case, "customer")
    return merge.source


# --- moving a public conversation to a private channel -------------------------------------------

# Where a customer on each platform starts a private conversation with our account.
DM_LINKS = {
    "x": "https://x.com/messages/compose?recipient_id={account_id}",
    "facebook": "https://m.me/{account_id}",
}
PRIVATE_KINDS = ("dm", "email")


def _private_email_channel(case: Case, public_channel):
    """The mailbox a customer is asked to write to: the case department's, else any active one."""
    mailboxes = (
        type(public_channel)
        .objects.filter(kind="email", is_active=True)
        .exclude(account_id="")
        .order_by("pk")
    )
    return (
        mailboxes.filter(department_id=case.department_id).first()
        or mailboxes.filter(department_id=public_channel.department_id).first()
        or mailboxes.first()
    )


def move_to_private_text(*, case: Case, channel, private_channel_kind: str, mailbox=None) -> str:
    """The public invitation: where to write, and the case reference to quote there."""
    token = case.reference
    if private_channel_kind == "dm":
        link = (
            DM_LINKS.get(channel.kind, "").format(account_id=channel.account_id) if channel.account_id else ""
        )
        where = f"Please send us a direct message{': ' + link if link else ''}"
    else:
        where = f"Please e-mail us at {mailbox.account_id}"
    return f"We'd like to help with your account privately. {where} and quote {token}."


@transaction.atomic
def case_move_to_private(*, case: Case, actor, channel, private_channel_kind: str = "dm") -> Message:
    """Ask a customer who wrote in public to continue privately, and wait for them there.

    Posts a public reply on ``channel`` (queued like any reply, threaded under the
    customer's latest public message) that invites them to send a direct message (on X
    with a DM deep link to our account, ``recipient_id`` = the channel's account id) or
    an e-mail to the case department's mailbox, quoting the case reference. Whatever
    arrives with that reference lands on this case (``cases.ingest`` rule 3). The case
    is then waiting on the customer, with a status event saying where. Refuses
    (``ServiceError`` naming the field) a channel that is not public, an unknown kind,
    or e-mail when no mailbox is configured. Returns the queued public reply.
    """
    if private_channel_kind not in PRIVATE_KINDS:
        raise ServiceError(
            f"'{private_channel_kind}' is not a private channel: use dm or email.",
            field="private_channel_kind",
        )
    if not channel.is_social or channel.kind == "whatsapp":
        raise ServiceError(f"{channel} has no public replies to move from.", field="channel")
    mailbox = None
    if private_channel_kind == "email":
        mailbox = _private_email_channel(case, channel)
        if mailbox is None:
            raise ServiceError(
                "No e-mail channel is configured to move the conversation to.", field="channel"
            )
    text = move_to_private_text(
        case=case, channel=channel, private_channel_kind=private_channel_kind, mailbox=mailbox
    )
    reply = case_reply(case=case, author=actor, channel=channel, text=text, is_public=True)
    where = (
        f"e-mail to {mailbox.account_id}" if mailbox else f"a direct message on {channel.get_kind_display()}"
    )
    case_set_status(
        case=reply.case,
        status=Case.Status.WAITING_ON_CUSTOMER,
        actor=actor,
        reason=f"Asked the customer to continue by {where}, quoting {case.reference}.",
    )
    return reply


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
