"""The rules live pushes rely on: a pushed row lands where the queue query would put it, and
presence and the reply lock behave (expiry, one holder, release)."""

from __future__ import annotations

import itertools
import time

import pytest

from cases import drafts, selectors, services
from cases.models import Case
from tests.desk.conftest import open_case


@pytest.fixture
def mixed_cases(agent, other_agent, channels, billing_channel):
    made = []
    for n, (kind, channel_kind) in enumerate(
        itertools.product(["post", "dm"], ["x", "email", "facebook", "whatsapp"])
    ):
        case = open_case(channel=channels[channel_kind], kind=kind, wrote_minutes_ago=n * 7)
        if n % 3 == 0:
            services.case_claim(case=case, actor=agent)
        elif n % 3 == 1:
            services.case_claim(case=case, actor=other_agent)
        made.append(case)
    services.case_set_priority(case=made[1], priority="urgent", actor=agent)
    services.case_set_status(case=made[2], status="waiting_on_customer", actor=agent)
    services.case_set_status(case=made[3], status="monitoring", actor=agent)
    services.case_set_status(case=made[4], status="resolved", actor=agent)
    Case.objects.filter(pk=made[5].pk).update(sla_state="breached")
    Case.objects.filter(pk=made[6].pk).update(sla_state="at_risk", due_at=None)
    # another department's cases: one given to our agent (theirs to work), one not
    given = open_case(channel=billing_channel)
    services.case_assign(case=given, assignee=agent, actor=None)
    made += [given, open_case(channel=billing_channel)]
    return made


WINDOWS = [
    {"view": view, **extra}
    for view in selectors.QUEUE_VIEWS
    for extra in ({}, {"channel_kind": "email"}, {"priority": "urgent"}, {"status": "waiting_on_customer"})
]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(str(v) for v in w.values()))
def test_queue_match_agrees_with_the_queue_query(agent, mixed_cases, window):
    expected = set(selectors.case_queue(user=agent, **window).values_list("pk", flat=True))
    rows = selectors.live_queue_rows(case_ids=[case.pk for case in mixed_cases])

    matched = {
        pk
        for pk, case in rows.items()
        if selectors.queue_match(case, user=agent, window=selectors.QueueWindow(**window))
    }

    assert matched == expected


def test_queue_match_honours_the_page_bounds(agent, mixed_cases):
    page = selectors.case_queue_page(user=agent, view="department", page_size=3)
    second = selectors.case_queue_page(user=agent, view="department", page_size=3, after=page.next_cursor)
    rows = selectors.live_queue_rows(case_ids=[case.pk for case in mixed_cases])
    first_window = selectors.QueueWindow(view="department", until=page.next_cursor)
    second_window = selectors.QueueWindow(view="department", after=page.next_cursor, until=second.next_cursor)

    on_first = {
        pk for pk, case in rows.items() if selectors.queue_match(case, user=agent, window=first_window)
    }
    on_second = {
        pk for pk, case in rows.items() if selectors.queue_match(case, user=agent, window=second_window)
    }

    assert on_first == {case.pk for case in page.cases}
    assert on_second == {case.pk for case in second.cases}
    # and the sort keys order rows the way the query does
    keys = [selectors.queue_key(case.due_at, case.pk) for case in page.cases + second.cases]
    assert keys == sorted(keys)


def test_presence_lists_people_once_and_forgets_silent_tabs(agent, other_agent, case, monkeypatch):
    drafts.case_viewing(case_id=case.pk, tab="a1", user=agent)
    drafts.case_viewing(case_id=case.pk, tab="a2", user=agent)
    drafts.case_viewing(case_id=case.pk, tab="b1", user=other_agent)

    seen = drafts.presence_read(case_id=case.pk)
    assert sorted(v.user_id for v in seen.viewers) == sorted([agent.pk, other_agent.pk])
    assert [v.user_id for v in seen.others(agent.pk)] == [other_agent.pk]

    drafts.case_left(case_id=case.pk, tab="a1", user=agent)
    assert agent.pk in [v.user_id for v in drafts.presence_read(case_id=case.pk).viewers]  # still in a2

    later = time.time() + drafts.VIEW_TTL + 1
    monkeypatch.setattr(drafts.time, "time", lambda: later)
    assert drafts.presence_read(case_id=case.pk).viewers == []


def test_one_holder_of_the_reply_lock(agent, other_agent, supervisor, case):
    drafts.case_typing(case=case, tab="a", user=agent, typing=True, has_draft=True)
    drafts.case_typing(case=case, tab="b", user=other_agent, typing=True, has_draft=True)

    state = drafts.presence_read(case_id=case.pk)
    assert state.lock.user_id == agent.pk
    assert {v.user_id: v.typing for v in state.viewers} == {agent.pk: True, other_agent.pk: True}
    with pytest.raises(drafts.DraftLocked):
        drafts.draft_lock_acquire(case=case, user=other_agent)

    # an emptied draft lets it go; the other agent can take it
    drafts.case_typing(case=case, tab="a", user=agent, typing=False, has_draft=False)
    assert drafts.draft_lock_holder(case_id=case.pk) is None
    assert drafts.draft_lock_acquire(case=case, user=other_agent).user_id == other_agent.pk
    # leaving the case (last tab) lets it go too
    drafts.case_left(case_id=case.pk, tab="b", user=other_agent)
    assert drafts.draft_lock_holder(case_id=case.pk) is None


def test_a_follower_who_cannot_work_the_case_never_takes_the_lock(outsider, case):
    case.followers.add(outsider)

    drafts.case_typing(case=case, tab="o", user=outsider, typing=True, has_draft=True)

    assert drafts.draft_lock_holder(case_id=case.pk) is None
