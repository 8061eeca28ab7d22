"""What the messages of one inbox batch share: ``IngestContext`` and the batch writer.

``IngestContext`` holds the look-ups a batch shares (stored messages and identities,
replies waiting for a parent, channels, triage settings, escalation paths, webhook
subscriptions), what the batch has created so far, and the savepoint bookkeeping the
inbox rolls back to; ``_PendingRows`` keeps a chunk's new conversations back and writes
them a table at a time. ``_existing`` is the look-up of a stored message by channel and
platform id that makes ingest idempotent.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Q

from config.lookups import Prepared
from config.rows import insert_rows, reserve_keys
from connectors import webhooks_out
from connectors.base import InboundMessage
from customers.identifiers import normalize_platform_id
from customers.models import Identity
from customers.selectors import identities_find, identity_find

from ..models import Case, CaseEvent, EscalationPath, Message, TriageSettings


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


def _existing(channel, external_id: str) -> Message | None:
    return _stored.first(channel.pk, external_id)


_stored = Prepared(
    lambda channel_id, external_id: (
        Message.objects.select_related("case")
        .filter(channel_id=channel_id, external_id=external_id)
        .order_by()[:1]
    )
)
