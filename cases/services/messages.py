"""Services on the timeline: messages in and out and what they do to the case.

``message_add`` appends a message and moves the case's clocks and status
(``case_apply_message``, which ``cases.ingest`` shares); notes, logged calls and replies
(``case_reply``, queued to the platform) build on it, ``message_delivery_update`` records
what the platform said of a sent one, and ``case_move_to_private`` asks a customer who
wrote in public to continue in private.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from channels_app import groups
from channels_app.publish import publish_on_commit
from connectors import webhooks_out

from .. import permissions, sla
from ..errors import NotPermitted, ServiceError, StaleDraft
from ..models import Case, CaseEvent, Message
from .cases import case_set_status
from .events import _announce, _case_groups, _locked, _now, record_event


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
