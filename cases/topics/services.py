"""The topics job: count the phrases of new customer messages into ``TopicWeek``.

``topics_refresh`` reads the inbound messages stored since its watermark (``TopicState``),
a batch at a time in id order, extracts each one's phrases (:mod:`cases.topics.phrases`)
and adds them to the cell of its ISO week, channel, the case's department and the case's
category: messages +1 per message, cases +1 the first time a case uses the phrase in
that cell (its earlier messages of the batch's weeks are read again to know), and the
message kept as a recent example. Each batch is one transaction that also moves the
watermark, so a run stopped half way resumes where it stopped and a message is never
counted twice. Runs do not overlap: the state row is locked and a second run returns at
once. With ``CASELINE_TOPICS_SENTENCE_MODEL`` on, messages alike in meaning are also grouped
(:mod:`cases.topics.meaning`) and counted as themes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..models import Message, TopicState, TopicWeek
from . import phrases

logger = logging.getLogger(__name__)

BATCH = 10_000
# A message stored this recently may sit beside a lower id not committed yet: wait for it.
SETTLE = timedelta(minutes=2)
PHRASE, THEME = TopicWeek.Kind.PHRASE.value, TopicWeek.Kind.THEME.value


@dataclass
class RefreshResult:
    messages: int = 0
    cells: int = 0
    batches: int = 0
    last_message_id: int = 0
    seconds: float = 0.0
    skipped: bool = False  # another run held the watermark

    def as_dict(self) -> dict:
        return {
            k: getattr(self, k) for k in ("messages", "cells", "batches", "last_message_id", "skipped")
        } | {"seconds": round(self.seconds, 3)}


@dataclass
class _Cell:
    messages: int = 0
    cases: int = 0
    examples: list[int] | None = None


def week_of(moment: datetime, zone: ZoneInfo) -> date:
    """The Monday of ``moment``'s ISO week in ``zone``."""
    day = moment.astimezone(zone).date()
    return day - timedelta(days=day.weekday())


def _state() -> TopicState | None:
    """The locked watermark, or None when another run holds it."""
    TopicState.objects.get_or_create(pk=1)
    return TopicState.objects.select_for_update(skip_locked=True).filter(pk=1).first()


def _columns():
    return (
        "id",
        "case_id",
        "channel_id",
        "subject",
        "text",
        "sent_at",
        "case__department_id",
        "case__category",
    )


def _pending(after: int, *, before: datetime, since: datetime, batch: int) -> list[tuple]:
    return list(
        Message.objects.filter(
            direction=Message.Direction.IN, pk__gt=after, created_at__lte=before, sent_at__gte=since
        )
        .order_by("pk")
        .values_list(*_columns())[:batch]
    )


def _counted_before(rows: list[tuple], watermark: int, zone: ZoneInfo) -> set[tuple]:
    """(case, kind, phrase, week, channel) already counted for the batch's cases: from their
    messages at or below the watermark in the batch's weeks."""
    if not watermark:
        return set()
    case_ids = {row[1] for row in rows}
    first_week = min(week_of(row[5], zone) for row in rows)
    since = datetime(first_week.year, first_week.month, first_week.day, tzinfo=zone)
    earlier = (
        Message.objects.filter(
            direction=Message.Direction.IN, case_id__in=case_ids, pk__lte=watermark, sent_at__gte=since
        )
        .order_by()
        .values_list(*_columns())
    )
    seen: set[tuple] = set()
    for row in earlier.iterator(chunk_size=2000):
        week = week_of(row[5], zone)
        for phrase in phrases.phrases(phrases.message_text(row[3], row[4])):
            seen.add((row[1], PHRASE, phrase, week, row[2]))
    return seen


def _count(rows: list[tuple], seen: set[tuple], zone: ZoneInfo, themes: dict[int, str]) -> dict[tuple, _Cell]:
    cells: dict[tuple, _Cell] = {}
    for message_id, case_id, channel_id, subject, text, sent_at, department_id, category in rows:
        week = week_of(sent_at, zone)
        found = [(PHRASE, p) for p in phrases.phrases(phrases.message_text(subject, text))]
        if message_id in themes:
            found.append((THEME, themes[message_id]))
        for kind, phrase in found:
            key = (kind, phrase, week, channel_id, department_id, category or "")
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = _Cell(examples=[])
            cell.messages += 1
            once = (case_id, kind, phrase, week, channel_id)
            if once not in seen:
                seen.add(once)
                cell.cases += 1
            cell.examples.append(message_id)
            if len(cell.examples) > TopicWeek.EXAMPLES:
                del cell.examples[0]
    return cells


_UPSERT = """
INSERT INTO {table} (kind, phrase, words, week, channel_id, department_id, category, messages, cases, examples)
{values}
ON CONFLICT ({target}) WHERE channel_id IS {null} DO UPDATE SET
    messages = {table}.messages + excluded.messages,
    cases = {table}.cases + excluded.cases,
    examples = {examples}
"""
# PostgreSQL keeps the newest EXAMPLES ids of the old and the new; SQLite the batch's.
_PG_EXAMPLES = """(
    SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM (
        SELECT e, n FROM jsonb_array_elements({table}.examples || excluded.examples)
            WITH ORDINALITY AS x(e, n) ORDER BY n DESC LIMIT {limit}) newest)"""
_PG_VALUES = """SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::smallint[], %s::date[], %s::bigint[],
    %s::bigint[], %s::varchar[], %s::integer[], %s::integer[], %s::jsonb[])"""


def _write(cells: dict[tuple, _Cell]) -> None:
    table = connection.ops.quote_name(TopicWeek._meta.db_table)
    postgres = connection.vendor == "postgresql"
    examples = _PG_EXAMPLES.format(table=table, limit=TopicWeek.EXAMPLES) if postgres else "excluded.examples"
    for has_channel in (True, False):
        target = (
            "kind, phrase, week, channel_id, department_id, category"
            if has_channel
            else ("kind, phrase, week, department_id, category")
        )
        rows = [
            (kind, phrase, phrase.count(" ") + 1, week, channel_id, department_id, category,
             cell.messages, cell.cases, _json(cell.examples))
            for (kind, phrase, week, channel_id, department_id, category), cell in cells.items()
            if (channel_id is not None) == has_channel
        ]  # fmt: skip
        if not rows:
            continue
        null = "NOT NULL" if has_channel else "NULL"
        with connection.cursor() as cursor:
            if postgres:
                sql = _UPSERT.format(
                    table=table, values=_PG_VALUES, target=target, null=null, examples=examples
                )
                cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
            else:
                values = "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                sql = _UPSERT.format(table=table, values=values, target=target, null=null, examples=examples)
                cursor.executemany(sql, rows)


def _json(ids: list[int]) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


def _themes(rows: list[tuple], meaning) -> dict[int, str]:
    if meaning is None:
        return {}
    texts = [phrases.message_text(row[3], row[4]) for row in rows]
    return {rows[i][0]: name for name, members in meaning.themes(texts) for i in members}


def topics_refresh(
    *,
    batch: int = BATCH,
    max_batches: int | None = None,
    now: datetime | None = None,
    settle: timedelta = SETTLE,
    meaning=None,
) -> RefreshResult:
    """Count the customer messages stored since the last run; returns what was done.

    Guarantees: each inbound message is counted once (the watermark moves in the batch's
    transaction); runs never overlap (a run that finds the watermark locked returns with
    ``skipped``); a message is read once it is ``settle`` old; messages older than ``CASELINE_TOPICS_KEEP_WEEKS`` are passed over and cells older
    than that dropped. ``meaning`` groups messages by meaning (default: the sentence model
    when ``CASELINE_TOPICS_SENTENCE_MODEL`` is on, else none).
    """
    started = time.monotonic()
    now = now or timezone.now()
    zone = ZoneInfo(settings.TIME_ZONE)
    keep_since = week_of(now, zone) - timedelta(weeks=settings.CASELINE_TOPICS_KEEP_WEEKS - 1)
    since = datetime(keep_since.year, keep_since.month, keep_since.day, tzinfo=zone)
    if meaning is None and settings.CASELINE_TOPICS_SENTENCE_MODEL:
        from . import meaning as meaning_module

        meaning = meaning_module.SentenceGrouper.shared()
    result = RefreshResult()
    while max_batches is None or result.batches < max_batches:
        with transaction.atomic():
            state = _state()
            if state is None:
                result.skipped = True
                break
            rows = _pending(state.last_message_id, before=now - settle, since=since, batch=batch)
            if not rows:
                result.last_message_id = state.last_message_id
                TopicState.objects.filter(pk=state.pk).update(refreshed_at=now)
                break
            seen = _counted_before(rows, state.last_message_id, zone)
            cells = _count(rows, seen, zone, _themes(rows, meaning))
            _write(cells)
            state.last_message_id = rows[-1][0]
            state.messages_counted += len(rows)
            state.refreshed_at = now
            state.save(update_fields=["last_message_id", "messages_counted", "refreshed_at"])
        result.messages += len(rows)
        result.cells += len(cells)
        result.batches += 1
        result.last_message_id = state.last_message_id
        if len(rows) < batch:
            break
    if not result.skipped:
        TopicWeek.objects.filter(kind__in=[PHRASE, THEME], week__lt=keep_since).delete()
    result.seconds = time.monotonic() - started
    if result.messages:
        logger.info("topics: %s messages counted into %s cells", result.messages, result.cells)
    return result


def topics_rebuild(**kwargs) -> RefreshResult:
    """Forget every count and the watermark, then count everything again (after a change of
    the phrase rules or the stop words)."""
    with transaction.atomic():
        TopicWeek.objects.all().delete()
        TopicState.objects.update_or_create(pk=1, defaults={"last_message_id": 0, "messages_counted": 0})
    return topics_refresh(**kwargs)
