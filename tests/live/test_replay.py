"""Replay by sequence number: a page whose socket dropped comes back with the newest number
it saw and is sent, from the database and in order, every event it missed that its user may
see; past the limit it is told to refetch instead."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from cases import selectors, services
from cases.models import CaseEvent
from channels_app import replay
from tests.test_consumers import build_world, connected, newest_seq, open_case, received

pytestmark = pytest.mark.django_db(transaction=True)


def event_ids(*, case_ids, after: int) -> list[int]:
    return list(
        CaseEvent.objects.filter(case_id__in=case_ids, id__gt=after)
        .order_by("id")
        .values_list("id", flat=True)
    )


def sequenced(messages) -> list[dict]:
    """The pushes that carry a case event's number (not the closing ``replay.done``)."""
    return [m for m in messages if m.get("seq") is not None and m["type"] != "replay.done"]


async def resume_queue(user, *, seq: int, rows=()):
    """A queue page's socket coming back: it subscribes again with the last number it saw."""
    communicator = await connected(user)
    await communicator.send_json_to(
        {"action": "queue", "view": "department", "seq": seq, "replay": True, "rows": list(rows)}
    )
    return communicator


def missed_while_away(world, first, second, hidden):
    """Changes made through the services while the agent's socket is down."""
    customer_identity = first.customer.identities.first()
    services.message_add(
        case=first, direction="in", kind="post", text="Still waiting!", channel=world["x"],
        identity=customer_identity, is_public=True,
    )  # fmt: skip
    services.case_claim(case=second, actor=world["colleague"])
    services.note_add(case=first, author=world["colleague"], text="Checking with the courier")
    services.case_set_priority(case=hidden, priority="high", actor=None)  # another department's
    services.case_set_priority(case=second, priority="urgent", actor=world["super"])
    services.note_add(case=hidden, author=world["outsider"], text="Not for Social Care")


async def test_a_reconnecting_queue_page_is_replayed_every_visible_event_in_order():
    world = await sync_to_async(build_world)()
    first = await sync_to_async(open_case)(world["x"])
    second = await sync_to_async(open_case)(world["x"], text="Wrong size delivered")
    hidden = await sync_to_async(open_case)(world["mail"], text="Invoice query")

    # given a queue page that saw everything up to now, and then lost its socket
    last_seen = await sync_to_async(selectors.live_seq)()

    # when events happen meanwhile, in Social Care and in Billing
    await sync_to_async(missed_while_away)(world, first, second, hidden)

    # and the page reconnects with the last number it saw
    page = await resume_queue(world["agent"], seq=last_seen, rows=[first.pk, second.pk])
    got = await received(page, quiet=0.5)

    # then it is sent every event of its department's cases after that number, in order
    expected = await sync_to_async(event_ids)(case_ids=[first.pk, second.pk], after=last_seen)
    assert len(expected) == 4  # a message, a claim, a note, a priority
    pushes = sequenced(got)
    assert [m["seq"] for m in pushes] == expected
    assert all(m["replay"] is True and m["type"] == "queue.row" for m in pushes)
    assert {m["id"] for m in pushes} == {first.pk, second.pk}
    assert got[-1] == {"type": "replay.done", "seq": expected[-1], "events": len(expected)}
    # and nothing at all about Billing's case
    assert all(m.get("id") != hidden.pk for m in got)
    assert hidden.reference not in str(got)
    await page.disconnect()


async def test_replayed_rows_are_current_and_then_live_events_follow():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    last_seen = await sync_to_async(selectors.live_seq)()
    await sync_to_async(services.case_claim)(case=case, actor=world["colleague"])

    page = await resume_queue(world["agent"], seq=last_seen, rows=[case.pk])
    replayed = await received(page)
    assert [m["seq"] for m in sequenced(replayed)] == [await sync_to_async(newest_seq)(case)]
    assert "Colleague" in sequenced(replayed)[0]["html"]  # the row as it is now

    # when something happens after the replay, it comes live with a newer number
    await sync_to_async(services.case_set_priority)(case=case, priority="high", actor=world["super"])
    live = sequenced(await received(page))
    assert [m["type"] for m in live] == ["queue.row"]
    assert "replay" not in live[0]
    assert live[0]["seq"] == await sync_to_async(newest_seq)(case) > sequenced(replayed)[0]["seq"]
    await page.disconnect()


async def test_a_page_already_current_is_sent_nothing():
    world = await sync_to_async(build_world)()
    await sync_to_async(open_case)(world["x"])
    page = await resume_queue(world["agent"], seq=await sync_to_async(selectors.live_seq)())
    assert await page.receive_nothing(timeout=0.4)
    await page.disconnect()


async def test_a_gap_past_the_limit_is_a_refresh(monkeypatch):
    monkeypatch.setattr(replay, "REPLAY_LIMIT", 3)
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    last_seen = await sync_to_async(selectors.live_seq)()
    for priority in ("high", "urgent", "low", "normal"):
        await sync_to_async(services.case_set_priority)(case=case, priority=priority, actor=world["super"])

    page = await resume_queue(world["agent"], seq=last_seen, rows=[case.pk])
    assert await received(page) == [{"type": "refresh", "region": "queue"}]
    await page.disconnect()


async def test_a_row_that_left_the_users_work_meanwhile_is_removed_without_its_events():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    last_seen = await sync_to_async(selectors.live_seq)()
    moved = await sync_to_async(services.case_transfer)(
        case=case, to_department=world["billing"], actor=world["super"], reason="Billing owns refunds"
    )
    await sync_to_async(services.note_add)(case=moved, author=world["outsider"], text="Refund sent")

    page = await resume_queue(world["agent"], seq=last_seen, rows=[case.pk])
    got = await received(page)
    assert got == [{"type": "queue.remove", "id": case.pk, "seq": None, "replay": True}]
    await page.disconnect()


async def test_a_case_page_is_replayed_its_own_case_only():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    other = await sync_to_async(open_case)(world["x"], text="Another thing")
    last_seen = await sync_to_async(selectors.live_seq)()
    note = await sync_to_async(services.note_add)(case=case, author=world["colleague"], text="Courier called")
    await sync_to_async(services.case_set_priority)(case=other, priority="high", actor=world["super"])
    await sync_to_async(services.case_claim)(case=case, actor=world["colleague"])

    page = await connected(world["agent"])
    await page.send_json_to({"action": "watch", "case": case.reference, "seq": last_seen, "replay": True})
    got = await received(page)

    expected = await sync_to_async(event_ids)(case_ids=[case.pk], after=last_seen)
    pushes = sequenced(got)
    # the note as a timeline entry, the claim as the new header, actions and hand-over banner, in order
    assert [(m["seq"], m["type"], m.get("target")) for m in pushes] == [
        (expected[0], "timeline.entry", None),
        (expected[1], "swap", "case-header"),
        (expected[1], "swap", "case-actions"),
        (expected[1], "swap", "case-handoff"),
    ]
    assert pushes[0]["id"] == note.pk and "Courier called" in pushes[0]["html"]
    done = {"type": "replay.done", "seq": expected[-1], "events": 2}
    assert got.index(done) > got.index(pushes[-1])
    assert other.reference not in str(got)
    await page.disconnect()
