"""What a reconnecting page missed, read back from the database in order.

Every case change is a ``CaseEvent`` row; its id is the live stream's sequence number.
A page remembers the newest number it was sent and, when its socket comes back, says
so; the consumer replays from here every event after it that the user may see (by
:func:`cases.permissions.visible_cases_q`), oldest first, as the live event it was. A gap
larger than ``REPLAY_LIMIT`` is not replayed: the page is told to refetch the region.

Ids are handed out at INSERT, not at COMMIT: when two transactions overlap, the one with
the smaller id can commit second. Live, its push still reaches the page (desk.js skips only
a push older than what the same row or region already shows); but a page that reconnects
in that instant, with a number past it, is not replayed it. Services' transactions last
milliseconds, so the window is that short; the next event on the case re-renders its row.

Called through ``database_sync_to_async`` from :mod:`channels_app.consumers`; reads only.
"""

from __future__ import annotations

from django.db.models import Max, Q

from cases import permissions
from cases.models import Case, CaseEvent

# More events than this since a page's last number: refetching the region is cheaper.
REPLAY_LIMIT = 200

# Event kinds that record a message: replayed as the timeline entry they added (a ``csat``
# event with a message is the customer's survey answer on the timeline, cases.csat).
MESSAGE_KINDS = frozenset(
    {
        CaseEvent.Kind.MESSAGE_IN,
        CaseEvent.Kind.MESSAGE_OUT,
        CaseEvent.Kind.NOTE,
        CaseEvent.Kind.CALL,
        CaseEvent.Kind.CSAT,
    }
)


def newest_seqs(*, case_ids) -> dict[int, int]:
    """The newest case event id of each of ``case_ids``: what a push about it reflects at least."""
    ids = sorted({int(pk) for pk in case_ids})
    if not ids:
        return {}
    return dict(
        CaseEvent.objects.filter(case_id__in=ids)
        .values("case_id")
        .annotate(seq=Max("id"))
        .values_list("case_id", "seq")
        .order_by()
    )


def as_live_event(*, kind: str, case_id: int, message_id: int | None) -> dict:
    """The live event a stored case event stands for (the shape services publish)."""
    if message_id is not None and kind in MESSAGE_KINDS:
        return {"type": "message.added", "case_id": case_id, "message_id": message_id}
    if message_id is not None and kind == CaseEvent.Kind.DELIVERY:
        return {"type": "message.delivery", "case_id": case_id, "message_id": message_id}
    return {"type": "case.changed", "change": kind, "case_id": case_id}


def events_after(
    *, user, seq: int, case_id: int | None = None, shown=(), limit: int | None = None
) -> list[dict] | None:
    """Case events with an id above ``seq`` that ``user`` may see, oldest first; None past ``limit``.

    ``case_id`` narrows the replay to one case (a case page). ``shown`` are cases the page
    shows: their events are included even when the user may no longer see the case, so the
    page can drop the row; the consumer sends nothing else about them.
    """
    limit = REPLAY_LIMIT if limit is None else limit
    events = CaseEvent.objects.filter(id__gt=seq)
    if case_id is not None:
        events = events.filter(case_id=case_id)
    if not permissions.is_admin(user):
        scope = Q(case_id__in=Case.objects.filter(permissions.visible_cases_q(user)).values("pk"))
        shown_ids = [int(pk) for pk in shown]
        if shown_ids:
            scope |= Q(case_id__in=shown_ids)
        events = events.filter(scope)
    rows = list(events.order_by("id").values_list("id", "case_id", "kind", "message_id")[: limit + 1])
    if len(rows) > limit:
        return None
    return [
        {
            "seq": pk,
            "case_id": event_case,
            "event": as_live_event(kind=kind, case_id=event_case, message_id=message_id),
        }
        for pk, event_case, kind, message_id in rows
    ]
