"""Live rows are read in batches: every event waiting costs a share of two queries, and each
row is numbered with its event's case event id."""

from __future__ import annotations

import json

import pytest

from channels_app import rows as live_rows_module
from tests.test_consumers import build_world, newest_seq, open_case

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [2, 12])
def test_a_batch_of_events_costs_two_queries(django_assert_num_queries, monkeypatch, count):
    monkeypatch.setattr(live_rows_module, "_connection_checked", float("inf"))  # no connection check now
    world = build_world()
    cases = [open_case(world["x"], text=f"Message {n}") for n in range(count)]
    batch = {f"event-{case.pk}": [case.pk] for case in cases}

    with django_assert_num_queries(2):  # the cases' newest event ids, the rows
        results = live_rows_module._live_batch(batch)

    for case in cases:
        seq, rows = results[f"event-{case.pk}"]
        assert seq == newest_seq(case)
        push = json.loads(rows[case.pk].push)
        assert (push["type"], push["id"], push["seq"]) == ("queue.row", case.pk, seq)
        assert case.reference in push["html"]


def test_an_event_about_several_cases_carries_the_newest_of_their_numbers(monkeypatch):
    monkeypatch.setattr(live_rows_module, "_connection_checked", float("inf"))
    world = build_world()
    older, newer = open_case(world["x"]), open_case(world["x"])
    seq, rows = live_rows_module._live_batch({"merge": [older.pk, newer.pk]})["merge"]
    assert seq == max(newest_seq(older), newest_seq(newer)) == newest_seq(newer)
    assert set(rows) == {older.pk, newer.pk}
