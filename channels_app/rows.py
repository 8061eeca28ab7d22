"""What every desk socket of a process shares: the rows and renders of one live event.

A department event reaches every agent of the department; they all need the same rows and
the same HTML. :data:`live_rows` reads the rows and sequence numbers of live events once per
process, in batches; :data:`shared` renders a case header or timeline entry once per event.
The socket itself (:mod:`channels_app.consumers`) decides what each page is sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import close_old_connections
from django.template.loader import render_to_string

from cases import selectors

from . import replay


def event_case_ids(event: dict) -> list[int]:
    """Every case an event is about."""
    ids = []
    if isinstance(event.get("case_id"), int):
        ids.append(event["case_id"])
    ids += [pk for pk in event.get("case_ids") or [] if isinstance(pk, int)]
    ids += [item["case_id"] for item in event.get("cases") or [] if isinstance(item.get("case_id"), int)]
    return list(dict.fromkeys(ids))


# Events a socket handles without the cases' rows.
EVENTS_WITHOUT_ROWS = frozenset({"presence.changed", "incident.opened"})


def needs_rows(kind: str) -> bool:
    """Whether a live event of this kind is applied with its cases' rows (read once per process)."""
    return kind not in EVENTS_WITHOUT_ROWS


class SharedWork:
    """What every socket in this process needs from one event, fetched and rendered once.

    A department event reaches every agent of the department; they all need the same
    rows and the same HTML. The first socket to ask runs the work; the others await its
    result. Keys are event ids; the oldest results are dropped.
    """

    def __init__(self, size: int = 512):
        self.size = size
        self.items: OrderedDict = OrderedDict()

    async def get(self, key, work: Callable):
        loop = asyncio.get_running_loop()
        entry = self.items.get(key)
        if entry is not None and entry[0] is loop:
            return await asyncio.shield(entry[1])
        future = loop.create_future()
        self.items[key] = (loop, future)
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        try:
            result = await database_sync_to_async(work)()
        except BaseException as error:
            self.items.pop(key, None)
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        future.set_result(result)
        return result


shared = SharedWork()


def _render_rows(case_ids: list[int]) -> dict[int, SimpleNamespace]:
    """Cases by id with their queue row rendered (user-independent HTML)."""
    rows = {}
    for pk, case in selectors.live_queue_rows(case_ids=case_ids).items():
        key = selectors.queue_key(case.due_at, case.pk)
        html = render_to_string("cases/partials/queue_row.html", {"case": case})
        rows[pk] = SimpleNamespace(case=case, key=key, html=html, push=None)
    return rows


def _live_batch(batch: dict[str, list[int]]) -> dict[str, tuple[int | None, dict[int, SimpleNamespace]]]:
    """For each event id, its sequence number and its cases' rows: two queries for the whole batch.

    The numbers are read before the rows, so each row reflects at least its event. Each row's
    push is encoded once here and sent as is by every socket that shows it.
    """
    _fresh_connection()
    every = sorted({pk for case_ids in batch.values() for pk in case_ids})
    seqs = replay.newest_seqs(case_ids=every)
    rendered = _render_rows(every)
    out = {}
    for event_id, case_ids in batch.items():
        seq = max((seqs[pk] for pk in case_ids if pk in seqs), default=None)
        rows = {}
        for pk in case_ids:
            row = rendered.get(pk)
            if row is not None:
                push = {"type": "queue.row", "id": pk, "key": row.key, "html": row.html, "seq": seq}
                rows[pk] = SimpleNamespace(case=row.case, key=row.key, html=row.html, push=json.dumps(push))
        out[event_id] = (seq, rows)
    return out


# Stale database connections are closed (and the next one health-checked) at most this often
# by the batched row reads: once per event would add a round trip to every event.
CONNECTION_CHECK_SECONDS = 1.0
_connection_checked = 0.0


def _fresh_connection() -> None:
    global _connection_checked
    now = time.monotonic()
    if now - _connection_checked >= CONNECTION_CHECK_SECONDS:
        close_old_connections()
        _connection_checked = now


class LiveRows:
    """The rows and sequence number of every live event, read once per process, in batches.

    A department event reaches every socket of the department; the first socket to ask
    queues the event, the others await the same result. While one read runs, the events
    that arrive wait and are read together by the next: under load an event costs a share
    of two queries, not two queries and a connection check of its own.
    """

    def __init__(self, size: int = 512):
        self.size = size
        self.results: OrderedDict = OrderedDict()
        self.pending: dict[str, list[int]] = {}
        self.runner: asyncio.Task | None = None
        self.loop = None

    async def get(self, event_id: str, case_ids: list[int]):
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests): nothing of the old one is usable
            self.loop, self.results, self.pending, self.runner = loop, OrderedDict(), {}, None
        future = self.results.get(event_id)
        if future is None:
            future = loop.create_future()
            self.results[event_id] = future
            while len(self.results) > self.size:
                self.results.popitem(last=False)
            self.pending[event_id] = case_ids
            if self.runner is None or self.runner.done():
                self.runner = loop.create_task(self._run())
        if future.done():  # read already (the other sockets of a department): no suspension
            return future.result()
        return await asyncio.shield(future)

    async def _run(self):
        while self.pending:
            batch, self.pending = self.pending, {}
            try:
                results = await sync_to_async(_live_batch, thread_sensitive=True)(batch)
            except Exception as error:
                global _connection_checked
                _connection_checked = 0.0  # look at the connection before the next read
                for event_id in batch:
                    future = self.results.get(event_id)
                    if future is not None and not future.done():
                        future.set_exception(error)
                        future.exception()  # retrieved: no warning when nobody else waits
                continue
            for event_id, result in results.items():
                future = self.results.get(event_id)
                if future is not None and not future.done():
                    future.set_result(result)


# With the hub each event is read once per process: only the fallback of a socket asking again
# looks results up, so few are kept (a result kept is an object more for the full collections).
live_rows = LiveRows(size=64)


def _render_header(case_id: int) -> str | None:
    case = selectors.live_case(case_id=case_id)
    return render_to_string("cases/partials/case_header.html", {"case": case}) if case else None


def _render_entry(message_id: int) -> dict | None:
    message = selectors.live_message(message_id=message_id)
    if message is None:
        return None
    html = render_to_string("cases/partials/timeline_entry.html", {"message": message, "case": message.case})
    return {
        "id": message.pk,
        "case_id": message.case_id,
        "sent_at": message.sent_at.isoformat(),
        "html": html,
    }
