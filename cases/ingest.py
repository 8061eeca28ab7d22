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
   that case, whoever its customer is; for a case merged into another (closed, with a
   ``merged`` event naming where it went), the case it was merged into.
3b. Replies that arrived before it (their ``in_reply_to_external_id`` is this message's
   id, on this channel, or any channel for e-mail): their case. A public message joins
   only its own author's early replies' case.
4. The author's customer's most recent case that is open, or was resolved or closed
   within the reopen window of the moment the message was written (so a replayed old
   event threads as it would have on arrival). The window is the channel's the message
   arrived on (``Channel.reopen_window_days``), else ``settings.CASE_REOPEN_WINDOW_DAYS``.
5. Otherwise a new case, routed to the channel's department.

A case found by rules 1-3 may belong to another customer than the author's. Customers
are never merged silently:

- a brand-new identity writing privately (DM, e-mail, call) on a reply chain or with a
  reference token is created on the case's customer, link source ``verified`` (the
  customer moved from a tweet to e-mail with the token we gave them);
- anyone else keeps their own customer, and the message still lands on the case. That
  includes a new identity replying in a *public* thread: anyone can answer a public
  post, so a stranger chiming in on a customer's thread is not that customer.
Either decision is written in the reason of the message's CaseEvent. An e-mail address
or phone number in the message that is not the customer's on file (another customer's
identity, or nobody's) is recorded as an ``IdentitySuggestion`` for the agent
(``customers.services``), never linked or merged by itself.

Out of order: a reply can arrive before the message it answers (platforms and mail
servers deliver late and out of order). We neither hold the reply back nor guess: it is
stored at once, on the case the rules above give it, keeping the parent's platform id
(``in_reply_to_external_id``, reply_to empty; indexed by ``message_orphan_reply_idx``).
When the parent arrives, it finds its early replies (rule 3b when it has no case of its
own) and adopts them: their ``reply_to`` is set, and a reply stored on another case than
the parent's is moved to the parent's case, with a ``merged`` CaseEvent on both cases
naming the moved messages; a case left with no message is closed, its status event
saying where they went. So a reply never waits in limbo, and the two cases that an
out-of-order pair opened become one, on the record. The same for X replies, WhatsApp
``context.id`` and e-mail ``In-Reply-To``.

Echoes (messages our own account wrote, ``is_echo``) are matched to the outbound
message we sent (same channel + platform id, or a queued one to the same person with
the same text that has no platform id yet) and mark it sent. An echo we never sent
(written in the platform's own app) is recorded as an outbound message on the
recipient's case; an echo we cannot place on any case is not stored.

Platforms' news about our outbound messages (``DeliveryUpdate``) is applied by
``delivery_update_apply``; news about a stored message that came after it
(``MessageUpdate``: a call's recording) by ``message_update_apply``.

Batches: ``IngestContext`` (see its docstring) lets the inbox ingest a batch of events
with the look-ups shared. A new conversation (its new customer and identity, case and
message) is written in one statement (``config.rows.insert_linked``), or in a batch held
back with the chunk's others and written a table at a time (``_PendingRows``), and the hot
look-ups are compiled once (``config.lookups.Prepared``): a message of a batch costs fewer
than two statements.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels_app import groups
from channels_app.publish import publish_on_commit
from config.lookups import Prepared
from config.rows import insert_linked, insert_rows, reserve_keys, update_row
from connectors import webhooks_out
from connectors.base import DeliveryUpdate, InboundMessage, MessageUpdate
from customers.identifiers import normalize_platform_id
from customers.models import Identity
from customers.selectors import identities_find, identity_find
from customers.services import (
    identity_build,
    identity_refresh,
    identity_resolve,
    identity_suggestions_record,
)

from . import escalation, services, triage
from .errors import ServiceError
from .models import (
    REFERENCE_PATTERN,
    Attachment,
    Case,
    CaseEvent,
    EscalationPath,
    Message,
    TriageSettings,
)

logger = logging.getLogger(__name__)

REFERENCE_RE = re.compile(rf"\bC-({REFERENCE_PATTERN})\b", re.IGNORECASE)
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
    rule: str  # reply | thread | reference | early_reply | recent | new
    parent: Message | None = None
    # The case row is already locked by the query that found it (or the case is new).
    locked: bool = False


@dataclass(frozen=True)
class _Orphan:
    """A stored reply whose parent had not arrived when it was ingested."""

    message_id: int
    case_id: int
    channel_id: int | None


class _PendingRows:
    """New conversations of a batch whose rows are written together (``defer_rows``).

    A new conversation's customer, identity, case and message get primary keys drawn ahead
    (``config.rows.reserve_keys``) and wait here; everything else about them (case events,
    live events, what the batch remembers) uses those keys at once. ``write`` inserts the
    waiting rows of each table in one statement: PostgreSQL's cost of a write is mostly per
    table per statement, not per row. They are written before the chunk's case events and
    before any look-up that could need them (``IngestContext.flush_rows``).
    """

    MAX_KEYS_AHEAD = 100

    def __init__(self):
        # New authors in the batch still to come: about how many conversations it may open,
        # so keys are drawn once for the batch (``IngestContext.prefetch`` sets it).
        self.expected = 0
        self.objs: list = []
        self.case_ids: set[int] = set()
        self.customer_ids: set[int] = set()  # customers of waiting cases
        self.identity_ids: set[int] = set()
        self.message_keys: set[str] = set()  # platform ids and thread keys of waiting messages
        self.references: set[str] = set()
        self._keys: dict[type, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self.objs)

    def add(self, objs: list) -> None:
        """Give the unsaved ``objs`` (each referring to earlier ones) keys, link them by key,
        and keep them for ``write``."""
        objs = [obj for obj in objs if obj.pk is None]
        short = {type(obj) for obj in objs if not self._keys.get(type(obj))}
        if short:
            ahead = max(1, min(self.expected, self.MAX_KEYS_AHEAD))
            self._keys.update(reserve_keys({model: ahead for model in short}))
        self.expected = max(0, self.expected - 1)
        for obj in objs:
            obj.pk = self._keys[type(obj)].pop(0)
        for obj in objs:
            # Each takes the keys of the objects it refers to, now they have them, as save does.
            obj._prepare_related_fields_for_save(operation_name="insert")
            obj._state.adding = False
            obj._state.db = DEFAULT_DB_ALIAS
            self.objs.append(obj)
            if isinstance(obj, Case):
                self.case_ids.add(obj.pk)
                self.customer_ids.add(obj.customer_id)
                self.references.add(obj.reference)
            elif isinstance(obj, Identity):
                self.identity_ids.add(obj.pk)
            elif isinstance(obj, Message):
                self.message_keys.update(k for k in (obj.external_id, obj.thread_key) if k)

    def write(self) -> None:
        by_model: dict[type, list] = {}
        for obj in self.objs:
            by_model.setdefault(type(obj), []).append(obj)
        self.clear()
        for objs in by_model.values():
            insert_rows(objs, with_keys=True)

    def clear(self) -> None:
        self.objs = []
        for keys in (self.case_ids, self.customer_ids, self.identity_ids, self.message_keys, self.references):
            keys.clear()


class IngestContext:
    """What the messages of one inbox batch share, looked up once instead of per message.

    Stored messages and identities of the whole batch (two queries), replies waiting for
    a parent among the batch's ids (one), the channels with their promises and calendars,
    the triage settings and the departments that have automatic escalation paths (one
    each). What a message of the batch creates is remembered for the later ones.

    ``batch=True`` (the inbox batch): each event runs in a savepoint the caller rolls
    back on error, so ingest opens no savepoints of its own, and an ``IntegrityError``
    (a race with another worker, a reference collision) is the caller's to retry after
    :meth:`forget`. Case rows are locked ``NOWAIT``: a batch never waits for a case
    another batch holds (two batches locking cases in opposite orders would deadlock);
    the caller defers that event to its next batch. Without a context, ``ingest`` makes
    a fresh one per message, opens its own savepoints and waits for locks.

    ``defer_events=True``: the CaseEvents of each message are kept and written together by
    :meth:`flush_events` (one INSERT for many messages), which the caller runs before the
    savepoint they belong to ends. They are flushed first whenever ingest writes other
    case events (an echo, an escalation, a merge of early replies), so ids keep the order
    in which things happened.

    ``defer_rows=True`` (with ``defer_events``, on PostgreSQL): a new conversation's rows wait
    in ``pending`` (see ``_PendingRows``) and are written with the others of the chunk by
    :meth:`flush_rows`, which :meth:`flush_events` runs first and ingest runs before any
    look-up that could need them.
    """

    def __init__(self, *, batch: bool = False, defer_events: bool = False, defer_rows: bool = False):
        self.batch = batch
        self.defer_events = defer_events
        self.defer_rows = defer_rows and defer_events and connection.vendor == "postgresql"
        self.pending = _PendingRows()
        self._pending_events: list[CaseEvent] = []
        self._messages: dict[tuple[int, str], Message | None] = {}
        self._identities: dict[tuple[str, str], Identity | None] = {}
        self._orphans: dict[str, list[_Orphan]] = {}
        self._orphans_prefetched = False
        # Ids whose prefetched early replies may be stale (see rollback_to): looked up again.
        self._orphans_stale: set[str] = set()
        self._channels: dict[int, object] = {}
        self._settings: TriageSettings | None = None
        self._escalating: set[int] | None = None
        self._subscribed: set[str] | None = None
        # Customer id -> sorted times of their inbound messages in the batch's repeat window.
        self._contacts: dict[int, list[datetime]] = {}
        # What was written, for summaries: new messages, new cases, existing cases changed.
        self.messages_created = 0
        self.cases_created: set[int] = set()
        self.cases_updated: set[int] = set()

    def counts(self) -> tuple[int, frozenset[int], frozenset[int]]:
        return self.messages_created, frozenset(self.cases_created), frozenset(self.cases_updated)

    def restore_counts(self, counts: tuple[int, frozenset[int], frozenset[int]]) -> None:
        """Forget the counts of an event that was rolled back."""
        self.messages_created, created, updated = counts
        self.cases_created, self.cases_updated = set(created), set(updated)

    # --- prefetch ---

    def prefetch(self, items: list[tuple[object, InboundMessage]]) -> None:
        """Look up everything ``items`` (channel, message) will ask for, a query per kind of row.

        The channels given are the ones the batch uses (load them with ``promise__calendar``
        selected, so clocks read promises without a query).
        """
        items = [(c, m) for c, m in items if m.external_id]
        for channel, _ in items:
            self._channels.setdefault(channel.pk, channel)
        if not items:
            return
        channels = {c.pk for c, _ in items}
        wanted = {(c.pk, m.external_id) for c, m in items}
        match = Q()
        for channel_id in channels:
            match |= Q(channel_id=channel_id, external_id__in=[e for c, e in wanted if c == channel_id])
        found = {
            (m.channel_id, m.external_id): m for m in Message.objects.select_related("case").filter(match)
        }
        for key in wanted:
            self._messages[key] = found.get(key)
        authors = {(m.platform, m.author_id) for _, m in items if m.author_id and not m.is_echo}
        known = identities_find(keys=authors)
        for kind, author_id in authors:
            key = _identity_key(kind, author_id)
            if key is not None:
                self._identities[key] = known.get(key)
                self.pending.expected += key not in known
        for row in (
            Message.objects.filter(
                in_reply_to_external_id__in=sorted({m.external_id for _, m in items}),
                reply_to__isnull=True,
            )
            .exclude(in_reply_to_external_id="")
            .order_by("id")
            .values_list("in_reply_to_external_id", "id", "case_id", "channel_id")
        ):
            self._orphans.setdefault(row[0], []).append(_Orphan(*row[1:]))
        self._orphans_prefetched = True
        customer_ids = {i.customer_id for i in known.values()}
        if customer_ids:
            window = timedelta(days=self.triage_settings().repeat_window_days)
            times = [m.sent_at for _, m in items if m.sent_at is not None]
            self._contacts = {customer_id: [] for customer_id in customer_ids}
            for customer_id, sent_at in (
                Message.objects.filter(
                    case__customer_id__in=sorted(customer_ids),
                    direction=Message.Direction.IN,
                    sent_at__gte=min(times) - window,
                    sent_at__lte=max(times),
                )
                .order_by("sent_at")
                .values_list("case__customer_id", "sent_at")
            ):
                self._contacts.setdefault(customer_id, []).append(sent_at)

    def checkpoint(self) -> tuple:
        """What the context knows now, for :meth:`rollback_to` after a savepoint is rolled back."""
        return (
            dict(self._messages),
            dict(self._identities),
            {key: list(rows) for key, rows in self._orphans.items()},
            self._orphans_prefetched,
            {key: list(times) for key, times in self._contacts.items()},
            self.counts(),
        )

    def rollback_to(
        self,
        point: tuple,
        *,
        authors: list[tuple[str, str]] = (),
        messages: list[tuple[int, str]] = (),
    ) -> None:
        """Back to ``point``: a savepoint taken then was rolled back (a bad event, a case locked
        elsewhere, an insert race). What was known before it is still true of everything
        else, so the batch keeps its look-ups; what the rolled-back messages touched is
        looked up again: their authors' identities (``(platform, author id)``: they may have
        been refreshed in memory, or stored meanwhile by another worker) and their
        ``(channel id, platform id)`` with the replies waiting for them (another worker may
        have stored either)."""
        stored, identities, orphans, prefetched, contacts, counts = point
        messages_touched = messages
        messages = stored
        self.pending.clear()
        self._pending_events.clear()
        self._messages, self._identities = dict(messages), dict(identities)
        self._orphans = {key: list(rows) for key, rows in orphans.items()}
        self._orphans_prefetched = prefetched
        self._contacts = {key: list(times) for key, times in contacts.items()}
        for kind, author_id in authors:
            self._identities.pop(_identity_key(kind, author_id), None)
        for key in messages_touched:
            self._messages.pop(key, None)
            self._orphans.pop(key[1], None)
            self._orphans_stale.add(key[1])
        self.restore_counts(counts)

    def forget(self) -> None:
        """Drop what was learnt: an event rolled back, so rows it created may not exist."""
        self.pending.clear()
        self._pending_events.clear()
        self._messages.clear()
        self._identities.clear()
        self._orphans.clear()
        self._orphans_prefetched = False
        self._contacts.clear()

    # --- lookups ---

    def existing(self, channel, external_id: str) -> Message | None:
        key = (channel.pk, external_id)
        if key in self._messages and self._messages[key] is not None:
            return self._messages[key]
        if key not in self._messages:
            return _existing(channel, external_id)
        return None

    def identity(self, kind: str, platform_id: str) -> Identity | None:
        key = _identity_key(kind, platform_id)
        if key is not None and key in self._identities:
            return self._identities[key]
        return identity_find(kind=kind, platform_id=platform_id)

    def orphans(self, external_id: str) -> list[_Orphan]:
        """Stored replies to ``external_id`` that arrived before it (any channel)."""
        if external_id not in self._orphans and (
            not self._orphans_prefetched or external_id in self._orphans_stale
        ):
            self._orphans_stale.discard(external_id)
            self._orphans[external_id] = [
                _Orphan(*row)
                for row in Message.objects.filter(in_reply_to_external_id=external_id, reply_to__isnull=True)
                .exclude(in_reply_to_external_id="")
                .order_by("id")
                .values_list("id", "case_id", "channel_id")
            ]
        return self._orphans.get(external_id, [])

    def channel(self, channel):
        """The batch's instance of ``channel`` (promise and calendar loaded), else ``channel``."""
        return self._channels.get(channel.pk, channel) if channel is not None else None

    def attach_channels(self, case: Case) -> None:
        """Give ``case`` the batch's channel instances, so its clocks read promises without a query."""
        for field in ("origin_channel", "last_channel"):
            channel_id = getattr(case, f"{field}_id")
            if channel_id in self._channels and not Case._meta.get_field(field).is_cached(case):
                setattr(case, field, self._channels[channel_id])

    def repeat_contacts(self, customer_id: int, at: datetime) -> int | None:
        """The customer's inbound messages in the repeat window before ``at`` (triage's repeat
        contact), when the batch knows them; None to have triage count them."""
        times = self._contacts.get(customer_id)
        if times is None:
            return None
        since = at - timedelta(days=self.triage_settings().repeat_window_days)
        return bisect_right(times, at) - bisect_left(times, since)

    def new_customer(self, customer_id: int) -> None:
        self._contacts[customer_id] = []

    def triage_settings(self) -> TriageSettings:
        if self._settings is None:
            self._settings = TriageSettings.current()
        return self._settings

    def emits(self, event_type: str) -> bool:
        """Whether an active outbound webhook subscription wants ``event_type``: the list is
        read once per context (a batch), not once per event."""
        if self._subscribed is None:
            self._subscribed = {t for _, types in webhooks_out.active_subscriptions() for t in types or ()}
        return event_type in self._subscribed

    def escalates(self, department_id: int) -> bool:
        """Whether the department has an active priority or category path (else triage skips the check)."""
        if self._escalating is None:
            self._escalating = set(
                EscalationPath.objects.filter(
                    is_active=True,
                    trigger__in=[EscalationPath.Trigger.PRIORITY, EscalationPath.Trigger.CATEGORY],
                ).values_list("from_department_id", flat=True)
            )
        return department_id in self._escalating

    # --- what the batch creates ---

    def save_events(self, events: list[CaseEvent]) -> None:
        if self.defer_events:
            self._pending_events.extend(events)
        else:
            CaseEvent.objects.bulk_create(events)

    def flush_rows(self) -> None:
        """Write the new conversations kept back (``defer_rows``), a statement per table."""
        if self.pending:
            self.pending.write()

    def flush_events(self) -> None:
        """Write the rows and case events kept back (``defer_rows``, ``defer_events``), the
        events in one statement."""
        self.flush_rows()
        if self._pending_events:
            pending, self._pending_events = self._pending_events, []
            insert_rows(pending)

    def remember(self, message: Message) -> None:
        self.messages_created += 1
        contacts = self._contacts.get(message.case.customer_id)
        if contacts is not None and message.direction == Message.Direction.IN:
            insort(contacts, message.sent_at)
        if message.case_id not in self.cases_created:
            self.cases_updated.add(message.case_id)
        if message.channel_id is not None and message.external_id:
            self._messages[(message.channel_id, message.external_id)] = message
        if message.reply_to_id is None and message.in_reply_to_external_id:
            self._orphans.setdefault(message.in_reply_to_external_id, []).append(
                _Orphan(message.pk, message.case_id, message.channel_id)
            )
        identity = message.identity
        if identity is not None and message.direction == Message.Direction.IN:
            self._identities[(identity.kind, identity.platform_id)] = identity

    def adopted(self, external_id: str) -> None:
        self._orphans[external_id] = []


def _identity_key(kind: str, platform_id: str) -> tuple[str, str] | None:
    try:
        return kind, normalize_platform_id(kind, platform_id)
    except ValidationError:
        return None


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
        case, direction=Message.Direction.IN, kind=inbound.kind, channel=channel, at=inbound.sent_at
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


# The inbox's look-ups run for nearly every message: compiled once (config.lookups).
_locked_case = Prepared(
    lambda pk, *, nowait: (
        Case.objects.select_for_update(of=("self",), nowait=nowait)
        .select_related("customer")
        .filter(pk=pk)[:1]
    )
)


def _lock(case: Case, *, nowait: bool = False) -> Case:
    locked = _locked_case.first(case.pk, nowait=nowait)
    if locked is None:
        raise Case.DoesNotExist(f"Case {case.pk} is not stored.")
    return locked


def _thread(
    channel, inbound: InboundMessage, ctx: IngestContext, *, author_customer_id: int | None
) -> _Found | None:
    """Rules 1-3 of the module docstring: the case this message continues, if any.

    The reply-chain and reference look-ups lock the case row they find, in the same query.
    Rows of the batch not written yet (``ctx.pending``) that a look-up could find are
    written first.
    """
    nowait = ctx.batch
    pending = ctx.pending
    global_ids = inbound.platform in GLOBAL_ID_PLATFORMS
    if inbound.reply_to_external_id:
        if inbound.reply_to_external_id in pending.message_keys:
            ctx.flush_rows()
        parent = _parent(
            channel, inbound.reply_to_external_id, global_ids=global_ids, lock=True, nowait=nowait
        )
        if parent is not None:
            return _Found(case=parent.case, rule="reply", parent=parent, locked=True)

    keys = list(dict.fromkeys(k for k in inbound.thread_keys if k))[:MAX_THREAD_KEYS]
    if keys:
        if pending.message_keys.intersection(keys):
            ctx.flush_rows()
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
            return _Found(case=_lock(Case(pk=best[1]), nowait=nowait), rule="thread", locked=True)

    tokens = list(
        dict.fromkeys(
            "C-" + token.upper() for token in REFERENCE_RE.findall(f"{inbound.subject}\n{inbound.text}")
        )
    )
    if tokens:
        if pending.references.intersection(tokens):
            ctx.flush_rows()
        by_reference = {
            c.reference: c
            for c in Case.objects.select_for_update(of=("self",), nowait=nowait)
            .select_related("customer")
            .filter(reference__in=tokens)
            .order_by("pk")
        }
        for token in tokens:
            if token in by_reference:
                case = _merge_target(by_reference[token], nowait=nowait)
                return _Found(case=case, rule="reference", locked=True)
    return None


MAX_MERGE_HOPS = 5


def _merge_target(case: Case, *, nowait: bool = False) -> Case:
    """``case``, or for a case merged away the (locked) case its conversation lives on now,
    following a chain of merges. Only closed cases are looked at: one query for those."""
    for _ in range(MAX_MERGE_HOPS):
        if case.status != Case.Status.CLOSED:
            return case
        target_id = (
            CaseEvent.objects.filter(case_id=case.pk, kind=CaseEvent.Kind.MERGED, before__case=case.pk)
            .order_by("-id")
            .values_list("after__case", flat=True)
            .first()
        )
        if not target_id or target_id == case.pk:
            return case
        case = _lock(Case(pk=target_id), nowait=nowait)
    return case


def _parent(
    channel, external_id: str, *, global_ids: bool, lock: bool = False, nowait: bool = False
) -> Message | None:
    """The message with platform id ``external_id`` on ``channel`` (any channel for global ids),
    with its case and customer; ``lock`` also locks the case row."""
    parent = _parent_on_channel.first(channel.pk, external_id, lock=lock, nowait=nowait)
    if parent is None and global_ids:
        parent = _parent_anywhere.first(external_id, lock=lock, nowait=nowait)
    return parent


# A parent message is wanted for its ids and its case: its content (an e-mail's HTML can be
# hundreds of kilobytes, on every reply in the thread) stays in the database.
_PARENT_CONTENT = ("subject", "text", "html", "quoted_text", "delivery_error", "triage")


def _parents(*, lock: bool, nowait: bool):
    rows = Message.objects.select_related("case__customer").defer(*_PARENT_CONTENT)
    return rows.select_for_update(of=("case",), nowait=nowait) if lock else rows


# A look-up of one message by channel and platform id (unique when the id is set) has no
# ORDER BY: Django pairs every selected column with the ordering when it compiles one.
_parent_on_channel = Prepared(
    lambda channel_id, external_id, *, lock, nowait: (
        _parents(lock=lock, nowait=nowait)
        .filter(channel_id=channel_id, external_id=external_id)
        .order_by()[:1]
    )
)
_parent_anywhere = Prepared(
    lambda external_id, *, lock, nowait: (
        _parents(lock=lock, nowait=nowait).filter(external_id=external_id).order_by("id")[:1]
    )
)


def _recent_case(
    customer_id: int, *, at: datetime, channel, lock: bool = False, nowait: bool = False
) -> Case | None:
    """Rule 4: the customer's latest case that is open or ended within ``channel``'s reopen
    window (the site-wide one without a channel) of ``at``."""
    at = min(at, timezone.now())
    window = (
        channel.reopen_window if channel is not None else timedelta(days=settings.CASE_REOPEN_WINDOW_DAYS)
    )
    return _recent_cases.first(customer_id, at - window, lock=lock, nowait=nowait)


def _recent_cases_since(customer_id: int, cutoff: datetime, *, lock: bool, nowait: bool):
    cases = Case.objects.select_related("customer")
    if lock:
        cases = cases.select_for_update(of=("self",), nowait=nowait)
    return (
        cases.alias(ended_at=Coalesce("closed_at", "resolved_at"))
        .filter(customer_id=customer_id)
        .filter(
            Q(status__in=Case.OPEN_STATUSES)
            | Q(status__in=[Case.Status.RESOLVED, Case.Status.CLOSED], ended_at__gte=cutoff)
        )
        .order_by(F("last_inbound_at").desc(nulls_last=True), "-id")[:1]
    )


_recent_cases = Prepared(_recent_cases_since)


# --- replies that arrive before their parent --------------------------------------------------


def _early_replies(ctx: IngestContext, channel, *, platform: str, external_id: str) -> list[_Orphan]:
    global_ids = platform in GLOBAL_ID_PLATFORMS
    return [o for o in ctx.orphans(external_id) if global_ids or o.channel_id == channel.pk]


def _early_replies_case(
    channel, inbound: InboundMessage, ctx: IngestContext, *, author_customer_id: int | None
) -> _Found | None:
    """Rule 3b: a message that found no case of its own joins the case of its replies that
    arrived before it. A public post only joins its own author's early replies' case."""
    orphans = _early_replies(ctx, channel, platform=inbound.platform, external_id=inbound.external_id)
    if not orphans:
        return None
    if any(o.case_id in ctx.pending.case_ids for o in orphans):
        ctx.flush_rows()
    cases = Case.objects.select_for_update(of=("self",), nowait=ctx.batch).select_related("customer")
    cases = cases.filter(pk__in=sorted({o.case_id for o in orphans}))
    if inbound.is_public:
        cases = cases.filter(customer_id=author_customer_id)
    case = cases.order_by("pk").first()
    return _Found(case=case, rule="early_reply", locked=True) if case is not None else None


def _adopt_early_replies(parent: Message, inbound: InboundMessage, ctx: IngestContext) -> None:
    """Point replies that arrived before ``parent`` at it, and join them to its case.

    A reply stored on another case moves to the parent's case (locked by this
    transaction), with a ``merged`` CaseEvent on both cases; a case left with no message
    is closed, its event saying why.
    """
    orphans = _early_replies(ctx, parent.channel, platform=inbound.platform, external_id=parent.external_id)
    if not orphans:
        return
    ctx.flush_rows()  # the early replies, or the parent and its case, may not be written yet
    Message.objects.filter(pk__in=[o.message_id for o in orphans], reply_to__isnull=True).update(
        reply_to=parent
    )
    ctx.adopted(parent.external_id)
    old_case_of = {o.message_id: o.case_id for o in orphans if o.case_id != parent.case_id}
    if not old_case_of:
        return
    ctx.flush_events()
    case = parent.case
    moved = list(
        Message.objects.select_related("channel").filter(pk__in=old_case_of).order_by("sent_at", "pk")
    )
    Message.objects.filter(pk__in=old_case_of).update(case=case)
    for message in moved:
        services.case_apply_message(
            case, direction=message.direction, kind=message.kind, channel=message.channel, at=message.sent_at
        )
    case.save()
    by_case: dict[int, list[int]] = defaultdict(list)
    for message in moved:
        by_case[old_case_of[message.pk]].append(message.pk)
    events, emptied = [], []
    for old_case in Case.objects.select_for_update().filter(pk__in=sorted(by_case)).order_by("pk"):
        moved_ids = by_case[old_case.pk]
        reason = (
            f"{len(moved_ids)} message{'s' if len(moved_ids) != 1 else ''} answering {parent.external_id} "
            f"arrived before it and opened {old_case.reference}; joined to {case.reference}, the case "
            "of the message they answer."
        )
        for on in (old_case, case):
            events.append(
                CaseEvent(
                    case=on, kind=CaseEvent.Kind.MERGED, reason=reason, message=parent,
                    before={"case": old_case.pk, "messages": moved_ids}, after={"case": case.pk},
                )
            )  # fmt: skip
        if not old_case.messages.exists():
            emptied.append((old_case, reason))
    CaseEvent.objects.bulk_create(events)
    for old_case, reason in emptied:
        services.case_set_status(case=old_case, status=Case.Status.CLOSED, actor=None, reason=reason)
    publish_on_commit(event=triage.triage_event(case, change="merged"), groups=triage.triage_groups(case))


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
    return _stored.first(channel.pk, external_id)


_stored = Prepared(
    lambda channel_id, external_id: (
        Message.objects.select_related("case")
        .filter(channel_id=channel_id, external_id=external_id)
        .order_by()[:1]
    )
)


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
