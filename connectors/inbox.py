"""The durable inbox: store every delivery first, then process it.

``inbound_event_store`` keeps the raw body exactly as it arrived (one row per channel
and delivery id, so a re-delivery changes nothing) and queues processing after
commit. ``inbound_event_process`` parses a stored event with its channel's connector
and hands each message to ``cases.ingest``; whatever goes wrong is written on the
event (failed, with the error), never lost, and ``manage.py replay_inbox`` runs it
again.

``inbound_events_process_batch`` does the same for up to ``limit`` pending events in
one transaction: the events are taken with ``FOR UPDATE SKIP LOCKED`` (workers never
wait for each other), what they need is looked up once for the batch
(``cases.ingest.IngestContext``), and events run in savepoints of ``CHUNK_SIZE``; a chunk
in which anything fails is rolled back and run again one savepoint per event, so one bad
event fails alone. It is the fast path: about half the queries per message of the
per-event path, and one commit per batch instead of one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from cases import ingest
from channels_app.publish import published_together
from config.rows import insert_row
from customers.identifiers import normalize_platform_id

from .base import MessageUpdate, ParseError, ParseResult
from .models import Channel, InboundEvent
from .registry import connector_for

logger = logging.getLogger(__name__)

# Request headers worth keeping with a stored event: how it was sent and signed.
# Credentials (cookies, authorization, API keys) are never stored.
_KEPT_HEADERS = frozenset({"content-type", "content-length", "user-agent"})
_SECRET_MARKERS = ("auth", "cookie", "token", "key", "secret", "password")
MAX_ERROR_LENGTH = 4000
# Database trouble is not the event's fault: the task is retried, the event left as it was.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
# Events per batch transaction: large enough to share look-ups, small enough to hold few locks briefly.
BATCH_SIZE = 100
# Events ingested together in one savepoint (a failure reruns only its chunk, event by event).
CHUNK_SIZE = 10
# An event that loses an insert race (or draws a taken case reference) is tried again.
BATCH_EVENT_TRIES = 3
# PostgreSQL errors after which an event of a batch is left pending for the next batch: a
# case row another batch holds (locked NOWAIT), or a deadlock this transaction lost.
DEFERRING_SQLSTATES = frozenset({"55P03", "40P01"})
# Marks an event fed by ``manage.py ingest_payload`` rather than received from the platform.
IMPORTED_HEADER = "x-caseline-imported"


def selected_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers stored with an event: content type, user agent and the
    platform's ``X-...`` headers (signatures, delivery ids), minus anything credential-like."""
    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _KEPT_HEADERS or (
            lower.startswith("x-") and not any(marker in lower for marker in _SECRET_MARKERS)
        ):
            kept[lower] = str(value)[:1000]
    return kept


def inbound_event_store(
    *,
    channel: Channel,
    delivery_id: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    content_type: str = "",
    enqueue: bool = True,
) -> tuple[InboundEvent, bool]:
    """Store one delivery as an InboundEvent; ``(event, created)``.

    Unique on (channel, delivery id): a second delivery of the same event returns the
    stored row with ``created`` False and queues nothing. A new event is queued for
    processing after commit (``enqueue``), so a rolled-back request queues nothing and
    the worker always finds the row. On PostgreSQL a new event costs one statement
    (``INSERT ... ON CONFLICT DO NOTHING``), so acknowledging a webhook is one round trip.
    """
    values = {
        "provider": channel.kind,
        "body": bytes(body),
        "headers": selected_headers(headers or {}),
        "content_type": (content_type or "")[:255],
    }
    delivery_id = delivery_id[:255]
    if connection.vendor == "postgresql":
        # One statement is its own transaction: outside an atomic block no BEGIN/COMMIT
        # round trips are added around it.
        event, created = _insert_new(channel, delivery_id, values)
    else:
        with transaction.atomic(savepoint=False):
            event, created = InboundEvent.objects.get_or_create(
                channel=channel, delivery_id=delivery_id, defaults=values
            )
    if created and enqueue:
        event_id = event.pk
        transaction.on_commit(lambda: _enqueue(event_id))
    return event, created


def _insert_new(channel: Channel, delivery_id: str, values: dict) -> tuple[InboundEvent, bool]:
    event = InboundEvent(channel=channel, delivery_id=delivery_id, **values)
    if insert_row(event, on_conflict="(channel_id, delivery_id) DO NOTHING"):
        return event, True
    return InboundEvent.objects.get(channel=channel, delivery_id=delivery_id), False


def _enqueue(event_id: int) -> None:
    from .tasks import process_inbound_event

    try:
        process_inbound_event.delay(event_id)
    except Exception:  # a broker outage must not fail the webhook; the event waits in the inbox
        logger.exception(
            "inbound event %s stored but not queued; replay_inbox --status pending runs it", event_id
        )


def inbound_event_process(*, event_id: int) -> InboundEvent | None:
    """Parse and ingest one stored event; return it with its new status.

    Takes the event's row lock without waiting (a worker already on it wins; None is
    returned). An event already processed or ignored is returned unchanged, so running
    it twice changes nothing. A parse error or a failure while ingesting rolls back
    everything the event wrote, and marks it failed with the error and one more
    attempt. Database outages are raised for the task to retry.
    """
    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel", "channel__department")
            .filter(pk=event_id)
            .first()
        )
        if event is None:
            return None
        if event.status in (InboundEvent.Status.PROCESSED, InboundEvent.Status.IGNORED):
            return event
        try:
            with transaction.atomic():
                status, note = _apply(event)
        except TRANSIENT_ERRORS:
            raise
        except ParseError as exc:
            _finish(event, InboundEvent.Status.FAILED, f"Parse error: {exc}", failed=True)
        except Exception as exc:
            logger.exception("inbound event %s failed", event.pk)
            _finish(event, InboundEvent.Status.FAILED, f"{type(exc).__name__}: {exc}", failed=True)
        else:
            _finish(event, status, note)
    return event


def _apply(event: InboundEvent) -> tuple[str, str]:
    """Parse ``event`` and ingest what it carries; the status and note to record."""
    if event.provider == "alerts":  # a monitoring alert (replay_inbox): its own door's processing
        from .alerts import alert_event_apply

        status, note = alert_event_apply(event)
        if status == InboundEvent.Status.FAILED:
            raise ParseError(note.removeprefix("Parse error: "))
        return status, note
    channel = event.channel
    result = _parse(event, channel)
    context = ingest.IngestContext()
    return _ingest_result(channel, result, context)


def _parse(event: InboundEvent, channel: Channel | None) -> ParseResult:
    if channel is None:
        raise ParseError("The event's channel no longer exists.")
    try:
        connector = connector_for(channel.kind)
    except (LookupError, ImportError) as exc:
        raise ParseError(f"No connector for {channel.kind} channels: {exc}") from exc
    return connector.parse(event, channel)


def _ingest_result(channel: Channel, result: ParseResult, context) -> tuple[str, str]:
    for inbound in result.messages:
        ingest.ingest(channel=channel, inbound=inbound, context=context)
    if result.updates:
        context.flush_events()  # delivery news may write case events of its own: keep the order
    for update in result.updates:
        if isinstance(update, MessageUpdate):
            ingest.message_update_apply(channel=channel, update=update)
        else:
            ingest.delivery_update_apply(channel=channel, update=update)
    if not result.messages and not result.updates:
        return InboundEvent.Status.IGNORED, result.ignored_reason or "The event carries no messages."
    return InboundEvent.Status.PROCESSED, ""


def _finish(event: InboundEvent, status: str, note: str, *, failed: bool = False) -> None:
    event.status = status
    event.error = (note or "")[:MAX_ERROR_LENGTH]
    event.processed_at = timezone.now()
    fields = ["status", "error", "processed_at"]
    if failed:
        event.attempts = min(event.attempts + 1, 32767)
        fields.append("attempts")
    event.save(update_fields=fields)


# --- batches ---------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What one batch did: events by status, and what their messages wrote."""

    events: int = 0
    statuses: Counter = field(default_factory=Counter)
    messages_created: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    # (event id, error) of the events that failed.
    failures: list[tuple[int, str]] = field(default_factory=list)
    # The batch was full: more events may be waiting.
    more: bool = False
    # Chunks rolled back and run again event by event, by cause ("race": an insert race
    # with another worker; "error": anything else, a case locked elsewhere included).
    reruns: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "events": self.events,
            "statuses": dict(self.statuses),
            "messages_created": self.messages_created,
            "cases_created": self.cases_created,
            "cases_updated": self.cases_updated,
            "failures": [{"event": pk, "error": error} for pk, error in self.failures],
            "more": self.more,
            "reruns": dict(self.reruns),
        }


def inbound_events_process_batch(
    *, limit: int = BATCH_SIZE, event_ids: list[int] | None = None, statuses: tuple[str, ...] = ()
) -> BatchResult:
    """Process up to ``limit`` stored events, oldest first, in one transaction.

    Takes pending events (or ``event_ids`` in ``statuses``, pending by default) with
    ``FOR UPDATE SKIP LOCKED``: events another worker holds are left to it. Events are
    parsed, then ingested with a batch-wide ``cases.ingest.IngestContext`` in savepoints
    of ``CHUNK_SIZE`` events (``_batch_chunk``); an event that fails is rolled back alone and marked
    failed with the error and one more attempt; one that lost an insert race to another
    worker is tried again (``BATCH_EVENT_TRIES``). Processed and ignored events are never
    taken. Statuses are written in one statement, everything commits together, and the
    live events of the whole batch are published after commit, in order, in one go
    (``published_together``: one event loop, whose channel-layer connection is reused).
    Database outages are raised (nothing is written; the events stay as they were).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # already inside an event loop (an async caller): no loop of our own
        return _process_batch(limit, event_ids, statuses)

    async def in_one_loop() -> BatchResult:
        return await sync_to_async(_process_batch, thread_sensitive=True)(limit, event_ids, statuses)

    return async_to_sync(in_one_loop)()


def _process_batch(limit: int, event_ids: list[int] | None, statuses: tuple[str, ...]) -> BatchResult:
    outcome = BatchResult()
    with published_together(), transaction.atomic():
        events = InboundEvent.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            status__in=statuses or (InboundEvent.Status.PENDING,)
        )
        # Monitoring alerts have no channel and their own task (connectors.alerts).
        events = events.exclude(provider="alerts")
        if event_ids is not None:
            events = events.filter(pk__in=event_ids)
        events = list(events.order_by("received_at", "pk")[:limit])
        outcome.events, outcome.more = len(events), len(events) == limit
        if not events:
            return outcome
        channels = Channel.objects.select_related("promise__calendar", "department").in_bulk(
            {e.channel_id for e in events if e.channel_id is not None}
        )
        context = ingest.IngestContext(batch=True, defer_events=True, defer_rows=True)
        parsed: dict[int, ParseResult | Exception] = {}
        for event in events:
            event.channel = channels.get(event.channel_id)
            try:
                parsed[event.pk] = _parse(event, event.channel)
            except Exception as exc:  # noqa: BLE001 - recorded on the event
                parsed[event.pk] = exc
        held = _authors_held_elsewhere(events, parsed)
        active = [e for e in events if e.pk not in held]
        context.prefetch(
            [
                (e.channel, m)
                for e in active
                if isinstance(parsed[e.pk], ParseResult)
                for m in parsed[e.pk].messages
            ]
        )
        now = timezone.now()
        # Deferred: another batch is writing for the same author; the next batch takes them.
        results: dict[int, tuple[str, str, bool]] = {
            pk: (InboundEvent.Status.PENDING, "", False) for pk in held
        }
        for start in range(0, len(active), CHUNK_SIZE):
            results.update(_batch_chunk(active[start : start + CHUNK_SIZE], parsed, context, outcome.reruns))
        finished: dict[tuple[str, str, bool], list[int]] = defaultdict(list)
        for event in events:
            status, note, failed = results[event.pk]
            outcome.statuses[status] += 1
            if status == InboundEvent.Status.PENDING:
                continue  # deferred: left as it was
            note = (note or "")[:MAX_ERROR_LENGTH]
            finished[(status, note, failed)].append(event.pk)
            if failed:
                outcome.failures.append((event.pk, note))
        # One UPDATE per outcome (usually one: all processed), not one per event.
        for (status, note, failed), ids in finished.items():
            changes = {"status": status, "error": note, "processed_at": now}
            if failed:
                changes["attempts"] = Least(F("attempts") + 1, 32767)
            InboundEvent.objects.filter(pk__in=ids).update(**changes)
        outcome.messages_created = context.messages_created
        outcome.cases_created = len(context.cases_created)
        outcome.cases_updated = len(context.cases_updated - context.cases_created)
    return outcome


def author_lock_key(platform: str, author_id: str) -> int:
    """The advisory lock key of one author (a signed 64-bit digest of the normalised id)."""
    with contextlib.suppress(ValidationError):
        author_id = normalize_platform_id(platform, author_id)
    digest = hashlib.blake2b(f"{platform}:{author_id}".encode(), digest_size=8, person=b"caseline-author")
    return int.from_bytes(digest.digest(), "big", signed=True)


def _authors_held_elsewhere(events: list[InboundEvent], parsed: dict) -> set[int]:
    """Claim the authors of the batch's messages for this transaction; the ids of the events
    one of whose authors another batch has claimed.

    Two batches writing for the same author at once collide: both create the new
    customer's identity (the second waits for the first to commit, then fails and runs
    again) or one finds the case locked. So a batch takes a transaction-scoped advisory
    lock per author, all in one statement and without waiting, and leaves the events of
    authors another batch holds for its next batch, untouched. PostgreSQL only.
    """
    if connection.vendor != "postgresql":
        return set()
    keys_of = {
        e.pk: {
            author_lock_key(m.platform, m.author_id)
            for m in parsed[e.pk].messages
            if m.author_id and not m.is_echo
        }
        for e in events
        if isinstance(parsed[e.pk], ParseResult)
    }
    keys = sorted(set().union(*keys_of.values()))
    if not keys:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k FROM unnest(%s::bigint[]) AS k WHERE NOT pg_try_advisory_xact_lock(k)", [keys]
        )
        taken = {row[0] for row in cursor.fetchall()}
    return {pk for pk, own in keys_of.items() if own & taken}


def _batch_chunk(
    events: list[InboundEvent], parsed: dict, context, reruns: Counter
) -> dict[int, tuple[str, str, bool]]:
    """Ingest a few events of a batch in one savepoint; ``{event id: (status, note, failed)}``.

    The common case, every event going through, costs one savepoint for the chunk instead
    of one per event. When anything goes wrong (a bad event, a case locked by another
    batch, an insert race) the chunk is rolled back and run again one savepoint per event
    (``_batch_event``), so a bad event still fails alone and the others are kept.
    """
    ingestible = [e for e in events if isinstance(parsed[e.pk], ParseResult)]
    if len(ingestible) > 1:
        point = context.checkpoint()
        try:
            with transaction.atomic():
                done = {e.pk: (*_ingest_result(e.channel, parsed[e.pk], context), False) for e in ingestible}
                context.flush_events()
        except Exception as exc:  # noqa: BLE001 - each event is run again alone, which records what failed
            reruns["race" if isinstance(exc, IntegrityError) else "error"] += 1
            context.rollback_to(point, **_touched(ingestible, parsed))
        else:
            return {
                e.pk: done[e.pk] if e.pk in done else _batch_event(e, parsed[e.pk], context) for e in events
            }
    return {e.pk: _batch_event(e, parsed[e.pk], context) for e in events}


def _touched(events: list[InboundEvent], parsed: dict) -> dict[str, list]:
    """The authors and messages of ``events``: what ``IngestContext.rollback_to`` looks up again."""
    messages = [
        (e.channel_id, m)
        for e in events
        if isinstance(parsed[e.pk], ParseResult)
        for m in parsed[e.pk].messages
    ]
    return {
        "authors": [(m.platform, m.author_id) for _, m in messages if m.author_id],
        "messages": [(channel_id, m.external_id) for channel_id, m in messages if m.external_id],
    }


def _batch_event(event: InboundEvent, parsed, context) -> tuple[str, str, bool]:
    """Ingest one event of a batch in its own savepoint; ``(status, note, failed)``."""
    if isinstance(parsed, ParseError):
        return InboundEvent.Status.FAILED, f"Parse error: {parsed}", True
    if isinstance(parsed, Exception):
        logger.error("inbound event %s could not be parsed", event.pk, exc_info=parsed)
        return InboundEvent.Status.FAILED, f"{type(parsed).__name__}: {parsed}", True
    for attempt in range(1, BATCH_EVENT_TRIES + 1):
        point = context.checkpoint()
        try:
            with transaction.atomic():
                status, note = _ingest_result(event.channel, parsed, context)
                context.flush_events()
            return status, note, False
        except TRANSIENT_ERRORS as exc:
            if getattr(exc.__cause__, "sqlstate", None) in DEFERRING_SQLSTATES:
                # Another batch holds a case this event needs: its savepoint is rolled back
                # (releasing what it locked) and the event waits for the next batch.
                context.rollback_to(point, **_touched([event], {event.pk: parsed}))
                return InboundEvent.Status.PENDING, "", False
            raise
        except IntegrityError as exc:
            # Another worker stored the same message or identity first: what we looked up
            # for this event is stale. Look it up again; the retry finds the winner's rows.
            context.rollback_to(point, **_touched([event], {event.pk: parsed}))
            if attempt == BATCH_EVENT_TRIES:
                logger.exception("inbound event %s failed", event.pk)
                return InboundEvent.Status.FAILED, f"{type(exc).__name__}: {exc}", True
        except Exception as exc:
            context.rollback_to(point, **_touched([event], {event.pk: parsed}))
            logger.exception("inbound event %s failed", event.pk)
            return InboundEvent.Status.FAILED, f"{type(exc).__name__}: {exc}", True
    return InboundEvent.Status.FAILED, "Not processed.", True  # pragma: no cover
