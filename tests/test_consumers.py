"""The desk socket: who may connect, which groups the server picks, what each page is pushed,
and that nothing about a case reaches someone who may not see it."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from cases import drafts, escalation, selectors, services, sla
from cases.models import Case, CaseEvent, Membership
from channels_app.consumers import DeskConsumer, event_case_ids
from config.asgi import application
from config.middleware import FACTOR_AT_SIGN_IN
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def communicator_for(user):
    communicator = WebsocketCommunicator(DeskConsumer.as_asgi(), "/ws/desk/")
    communicator.scope["user"] = user
    return communicator


async def connected(user):
    communicator = communicator_for(user)
    ok, _ = await communicator.connect()
    assert ok
    hello = await communicator.receive_json_from(timeout=2)
    assert hello["type"] == "hello"
    return communicator


async def queue_page(user, view="department", rows=(), **filters):
    """A socket that shows the ``view`` queue, as desk.js subscribes after a page load."""
    communicator = await connected(user)
    seq = await sync_to_async(selectors.live_seq)()
    await communicator.send_json_to(
        {"action": "queue", "view": view, "seq": seq, "rows": list(rows), **filters}
    )
    assert await communicator.receive_nothing(timeout=0.2)
    return communicator


async def case_page(user, case):
    """A socket on ``case``'s page: it watches the case and first hears who else is there."""
    communicator = await connected(user)
    since = (await sync_to_async(lambda: Case.objects.get(pk=case.pk).updated_at)()).isoformat()
    await communicator.send_json_to({"action": "watch", "case": case.reference, "since": since})
    return communicator


async def received(communicator, *, timeout=2.0, quiet=0.2) -> list[dict]:
    """Everything the socket is sent until it has been quiet for ``quiet`` seconds."""
    out = [await communicator.receive_json_from(timeout=timeout)]
    while not await communicator.receive_nothing(timeout=quiet):
        out.append(await communicator.receive_json_from(timeout=timeout))
    return out


def build_world():
    """Social Care (agent, colleague, supervisor) and Billing (outsider), one channel each."""
    social = factories.DepartmentFactory(name="Social Care", slug="social-care")
    billing = factories.DepartmentFactory(name="Billing", slug="billing")
    people = {}
    for name, department, role in [
        ("agent", social, Membership.Role.AGENT),
        ("colleague", social, Membership.Role.AGENT),
        ("super", social, Membership.Role.SUPERVISOR),
        ("outsider", billing, Membership.Role.AGENT),
    ]:
        people[name] = factories.UserFactory(
            username=f"live-{name}", first_name=name.capitalize(), last_name="Test"
        )
        factories.MembershipFactory(user=people[name], department=department, role=role)
    x = factories.ChannelFactory(kind="x", slug="live-x", department=social, account_id="1")
    factories.ServicePromiseFactory(channel=x, first_response_minutes=60, next_response_minutes=60)
    mail = factories.ChannelFactory(kind="email", slug="live-mail", department=billing, account_id="2")
    factories.ServicePromiseFactory(channel=mail)
    return {"social": social, "billing": billing, "x": x, "mail": mail, **people}


def open_case(channel, text="My parcel never came", subject=""):
    customer = factories.CustomerFactory(name="Robin Customer")
    identity = factories.IdentityFactory(customer=customer, kind=channel.kind, platform_id=_pid(channel.kind))
    case = services.case_open(customer=customer, channel=channel, subject=subject)
    services.message_add(
        case=case, direction="in", kind="post" if channel.kind == "x" else "email", text=text,
        channel=channel, identity=identity, is_public=channel.kind == "x",
    )  # fmt: skip
    case.refresh_from_db()
    return case


_n = iter(range(10**6))


def _pid(kind):
    return f"p{next(_n)}@example.test" if kind == "email" else str(700000 + next(_n))


def newest_seq(case) -> int:
    """The newest CaseEvent id of ``case``: the sequence number its live pushes carry."""
    return CaseEvent.objects.filter(case_id=case.pk).order_by("-id").values_list("id", flat=True)[0]


def rows_of(messages, kind="queue.row"):
    return [m for m in messages if m["type"] == kind]


# --- Connecting ----------------------------------------------------------------------------------


async def test_anonymous_socket_is_refused():
    communicator = communicator_for(AnonymousUser())
    ok, code = await communicator.connect()
    assert not ok
    assert code == 4401
    await communicator.disconnect()


async def test_a_user_who_owes_mfa_is_refused_as_the_pages_refuse_them(settings):
    # given supervisors must have a second factor
    settings.MFA_REQUIRED_ROLES = ["supervisor"]
    world = await sync_to_async(build_world)()

    # then a supervisor without one gets no socket (the pages send them to set it up)
    refused = communicator_for(world["super"])
    ok, code = await refused.connect()
    assert (ok, code) == (False, 4403)
    await refused.disconnect()
    # while an agent, whose role needs none, is let in
    agent = await connected(world["agent"])
    await agent.disconnect()

    # when the supervisor sets up TOTP in the session they signed in with, its socket opens
    session = {FACTOR_AT_SIGN_IN: [world["super"].pk, False]}  # noted at sign-in: no factor then
    await sync_to_async(TOTP.activate)(world["super"], generate_totp_secret())
    supervisor = communicator_for(world["super"])
    supervisor.scope["session"] = session
    ok, _ = await supervisor.connect()
    assert ok
    await supervisor.disconnect()

    # while a session that never used the new factor, and was not the one that set it up, is refused
    stranger = communicator_for(world["super"])
    ok, code = await stranger.connect()
    assert (ok, code) == (False, 4403)
    await stranger.disconnect()


async def test_a_session_signed_in_through_sso_needs_no_second_factor_on_the_socket(settings):
    settings.MFA_REQUIRED_ROLES = ["supervisor"]
    world = await sync_to_async(build_world)()
    communicator = communicator_for(world["super"])
    # the identity provider enforces its own factors (the rule of config.middleware.second_factor_owed)
    communicator.scope["session"] = {
        "account_authentication_methods": [{"method": "socialaccount", "provider": "oidc"}],
        "account_authentication_methods_user": str(world["super"].pk),
    }
    ok, _ = await communicator.connect()
    assert ok
    assert (await communicator.receive_json_from(timeout=2))["type"] == "hello"
    await communicator.disconnect()


async def test_socket_without_allowed_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/desk/", headers=[(b"origin", b"http://evil.test")])
    ok, _ = await communicator.connect()
    assert not ok
    await communicator.disconnect()


async def test_unknown_action_is_answered_not_fatal():
    world = await sync_to_async(build_world)()
    communicator = await connected(world["agent"])
    await communicator.send_json_to({"action": "join", "group": "dept.2"})
    assert (await communicator.receive_json_from(timeout=2))["type"] == "error"
    await communicator.send_json_to({"action": "ping"})
    assert (await communicator.receive_json_from(timeout=2))["type"] == "pong"
    await communicator.disconnect()


# --- The queue -------------------------------------------------------------------------------------


async def test_new_case_appears_as_a_rendered_row_in_its_department_queue_only():
    world = await sync_to_async(build_world)()
    agent = await queue_page(world["agent"])
    outsider = await queue_page(world["outsider"])

    # when a customer writes to each department
    ours = await sync_to_async(open_case)(world["x"], text="Where is my refund?")
    theirs = await sync_to_async(open_case)(world["mail"], subject="Invoice copy")

    # then the agent is pushed their department's row, rendered by the queue's partial, once
    got = rows_of(await received(agent))
    assert {m["id"] for m in got} == {ours.pk}
    assert f'data-case="{ours.reference}"' in got[-1]["html"]
    assert "Where is my refund?" in got[-1]["html"]
    assert got[-1]["key"] == selectors.queue_key(
        (await sync_to_async(Case.objects.get)(pk=ours.pk)).due_at, ours.pk
    )
    # and the other department's agent only theirs
    got = rows_of(await received(outsider))
    assert {m["id"] for m in got} == {theirs.pk}
    assert ours.reference not in str(got)
    await agent.disconnect()
    await outsider.disconnect()


async def test_claim_moves_the_row_between_tabs():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    unassigned = await queue_page(world["colleague"], view="unassigned", rows=[case.pk])
    mine = await queue_page(world["agent"], view="mine")

    await sync_to_async(services.case_claim)(case=case, actor=world["agent"])
    seq = await sync_to_async(newest_seq)(case)

    # every push carries the sequence number of the case event it reflects
    assert {"type": "queue.remove", "id": case.pk, "seq": seq} in await received(unassigned)
    got = rows_of(await received(mine))
    assert [(m["id"], m["seq"]) for m in got] == [(case.pk, seq)]
    assert "Test" in got[0]["html"]  # the assignee's name on the row
    await unassigned.disconnect()
    await mine.disconnect()


async def test_filters_and_page_bounds_are_honoured():
    world = await sync_to_async(build_world)()
    # a page showing only urgent cases
    urgent = await queue_page(world["agent"], priority="urgent")
    case = await sync_to_async(open_case)(world["x"])
    assert await urgent.receive_nothing(timeout=0.5)

    await sync_to_async(services.case_set_priority)(case=case, priority="urgent", actor=world["agent"])
    got = rows_of(await received(urgent))
    assert [m["id"] for m in got] == [case.pk]
    await urgent.disconnect()


async def test_search_page_updates_only_its_rows():
    world = await sync_to_async(build_world)()
    shown = await sync_to_async(open_case)(world["x"], text="broken screen")
    page = await queue_page(world["agent"], q="screen", rows=[shown.pk])

    other = await sync_to_async(open_case)(world["x"], text="another broken screen")
    await sync_to_async(services.case_claim)(case=shown, actor=world["agent"])

    ids = [m["id"] for m in rows_of(await received(page))]
    assert shown.pk in ids
    assert other.pk not in ids
    await page.disconnect()


async def test_a_page_that_missed_events_is_told_to_refresh():
    world = await sync_to_async(build_world)()
    seq = await sync_to_async(selectors.live_seq)()
    await sync_to_async(open_case)(world["x"])  # while the page was loading, before its socket
    communicator = await connected(world["agent"])

    await communicator.send_json_to({"action": "queue", "view": "department", "seq": seq, "rows": []})

    assert await communicator.receive_json_from(timeout=2) == {"type": "refresh", "region": "queue"}
    await communicator.disconnect()


async def test_rows_a_page_claims_to_show_are_checked():
    world = await sync_to_async(build_world)()
    hidden = await sync_to_async(open_case)(world["mail"])
    page = await queue_page(
        world["agent"], rows=[hidden.pk]
    )  # a page cannot subscribe to a case it was never shown

    await sync_to_async(services.case_set_priority)(case=hidden, priority="high", actor=None)

    assert await page.receive_nothing(timeout=0.5)
    await page.disconnect()


async def test_a_socket_in_several_groups_gets_each_event_once():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    await sync_to_async(services.case_claim)(case=case, actor=world["agent"])
    page = await queue_page(world["agent"], rows=[case.pk])  # personal group and department group

    await sync_to_async(services.case_set_priority)(case=case, priority="high", actor=world["agent"])

    assert [m["id"] for m in rows_of(await received(page))] == [case.pk]
    await page.disconnect()


# --- The case page ---------------------------------------------------------------------------------


async def test_watching_a_case_pushes_entries_header_and_actions():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    page = await case_page(world["colleague"], case)
    first = await received(page)
    assert first[0]["type"] == "presence"

    # when the customer writes again and an agent claims the case
    message = await sync_to_async(services.message_add)(
        case=case, direction="in", kind="dm", text="Any news?", channel=world["x"]
    )
    got = await received(page)
    entries = [m for m in got if m["type"] == "timeline.entry"]
    assert [m["id"] for m in entries] == [message.pk]
    assert "Any news?" in entries[0]["html"] and f'id="message-{message.pk}"' in entries[0]["html"]

    await sync_to_async(services.case_claim)(case=case, actor=world["agent"])
    swaps = {m["target"]: m["html"] for m in await received(page) if m["type"] == "swap"}
    assert "Agent Test" in swaps["case-header"]
    assert 'id="case-actions"' in swaps["case-actions"]
    assert "Claim</button>" not in swaps["case-actions"]
    assert 'name="csrfmiddlewaretoken"' not in swaps["case-actions"]  # htmx sends the header
    await page.disconnect()


async def test_watching_a_case_one_may_not_see_is_refused_and_hears_nothing():
    world = await sync_to_async(build_world)()
    hidden = await sync_to_async(open_case)(world["mail"])
    page = await queue_page(world["agent"], view="department")
    await page.send_json_to({"action": "watch", "case": hidden.reference, "since": "2000-01-01T00:00:00Z"})
    assert await page.receive_json_from(timeout=2) == {"type": "watch.refused", "case": hidden.reference}

    # when everything that can happen to a case happens to it
    def churn():
        services.case_claim(case=hidden, actor=world["outsider"])
        services.message_add(case=hidden, direction="in", kind="email", text="hello?", channel=world["mail"])
        services.note_add(case=hidden, author=world["outsider"], text="internal")
        services.case_set_status(case=hidden, status="waiting_on_customer", actor=world["outsider"])
        services.case_set_priority(case=hidden, priority="urgent", actor=world["outsider"])
        drafts.case_viewing(case_id=hidden.pk, tab="t1", user=world["outsider"])
        services.case_assign(case=hidden, assignee=None, actor=world["outsider"])
        escalation.case_bulk_reassign(
            cases=[hidden], assignee=world["outsider"], actor=world["outsider"], reason="rota"
        )

    await sync_to_async(churn)()

    # then the agent of another department was told nothing at all
    assert await page.receive_nothing(timeout=0.6)
    await page.disconnect()


async def test_transfer_away_removes_the_row_and_closes_the_case_page():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    queue = await queue_page(world["colleague"], rows=[case.pk])
    page = await case_page(world["colleague"], case)
    await received(page)

    await sync_to_async(services.case_transfer)(
        case=case, to_department=world["billing"], actor=world["super"], reason="Billing owns refunds"
    )

    seq = await sync_to_async(newest_seq)(case)
    assert {"type": "queue.remove", "id": case.pk, "seq": seq} in await received(queue)
    assert {"type": "case.gone", "case": case.reference, "seq": seq} in await received(page)
    # and it hears nothing more about the case
    await sync_to_async(services.case_set_priority)(case=case, priority="high", actor=None)
    assert await page.receive_nothing(timeout=0.5)
    await queue.disconnect()
    await page.disconnect()


# --- Presence and the reply lock -----------------------------------------------------------------


def presence_text(message) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", message["html"])).strip()


async def test_who_is_viewing_and_typing_is_live():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    b = await case_page(world["colleague"], case)
    assert "Also here" not in presence_text((await received(b))[0])

    # when A opens the case, B sees "A is viewing"
    a = await case_page(world["agent"], case)
    await received(a)
    seen = [m for m in await received(b) if m["type"] == "presence"]
    assert "Agent Test is viewing" in presence_text(seen[-1])

    # when A starts a reply, B sees A typing and holding the reply
    await a.send_json_to({"action": "typing", "typing": True, "draft": True})
    seen = [m for m in await received(b) if m["type"] == "presence"]
    assert "Agent Test is typing a reply" in presence_text(seen[-1])
    assert seen[-1]["lock"] == "other"
    assert "Agent Test is writing the reply" in seen[-1]["lock_html"]
    assert "Take over" not in seen[-1]["lock_html"]  # agents cannot
    mine = [m for m in await received(a) if m["type"] == "presence"]
    assert mine[-1]["lock"] == "mine"

    # when A leaves, B sees nobody and the reply is free
    await a.disconnect()
    seen = [m for m in await received(b) if m["type"] == "presence"]
    assert "Agent Test" not in presence_text(seen[-1])
    assert seen[-1]["lock"] == "free"
    await b.disconnect()


async def test_typing_lapses_for_onlookers_when_the_typist_goes_quiet(monkeypatch):
    monkeypatch.setattr(drafts, "TYPING_TTL", 0.5)
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    a = await case_page(world["agent"], case)
    b = await case_page(world["colleague"], case)
    await received(a)
    await received(b)

    await a.send_json_to({"action": "typing", "typing": True, "draft": False})
    assert "is typing a reply" in presence_text(
        [m for m in await received(b, quiet=0.2) if m["type"] == "presence"][-1]
    )

    # nobody reports anything more; the onlooker looks again when typing would have lapsed
    later = [m for m in await received(b, timeout=3) if m["type"] == "presence"]
    assert "Agent Test is viewing" in presence_text(later[-1])
    await a.disconnect()
    await b.disconnect()


async def test_supervisor_takes_over_the_reply_and_the_holder_sees_it():
    world = await sync_to_async(build_world)()
    case = await sync_to_async(open_case)(world["x"])
    a = await case_page(world["agent"], case)
    await received(a)
    await a.send_json_to({"action": "typing", "typing": True, "draft": True})
    await received(a)
    sup = await case_page(world["super"], case)
    seen = [m for m in await received(sup) if m["type"] == "presence"]
    assert "Take over the reply" in seen[-1]["lock_html"]
    await received(a)

    await sync_to_async(drafts.draft_lock_take_over)(
        case=case, actor=world["super"], reason="Customer is a VIP"
    )

    seen = [m for m in await received(a) if m["type"] == "presence"]
    assert seen[-1]["lock"] == "other"
    assert "Super Test is writing the reply" in seen[-1]["lock_html"]
    assert "taken over from Agent Test" in seen[-1]["lock_html"]
    await a.disconnect()
    await sup.disconnect()


# --- Alerts and the board ------------------------------------------------------------------------------


async def test_breaches_alert_supervisors_of_the_department_only():
    world = await sync_to_async(build_world)()

    def late_cases():
        ours, theirs = open_case(world["x"]), open_case(world["mail"])
        Case.objects.filter(pk__in=[ours.pk, theirs.pk]).update(
            due_at="2000-01-01T00:00:00Z",
            at_risk_at="1999-12-31T23:00:00Z",
            first_response_due_at="2000-01-01T00:00:00Z",
        )
        return ours, theirs

    ours, theirs = await sync_to_async(late_cases)()
    sup = await connected(world["super"])
    outsider = await connected(world["outsider"])

    await sync_to_async(sla.sla_sweep)()

    alerts = [m for m in await received(sup) if m["type"] == "alert"]
    assert alerts and all(theirs.reference not in m["html"] for m in alerts)
    assert any(ours.reference in m["html"] and "broke the service promise" in m["html"] for m in alerts)
    # an agent of the other department: no supervisor alert, and nothing about our case
    got = await received(outsider) if not await outsider.receive_nothing(timeout=0.5) else []
    assert all(ours.reference not in str(m) for m in got)
    await sup.disconnect()
    await outsider.disconnect()


async def test_board_is_asked_to_refresh_and_agents_may_not_subscribe():
    world = await sync_to_async(build_world)()
    seq = await sync_to_async(selectors.live_seq)()
    board = await connected(world["super"])
    await board.send_json_to({"action": "board", "seq": seq})
    assert await board.receive_nothing(timeout=0.2)
    agent = await connected(world["agent"])
    await agent.send_json_to({"action": "board", "seq": seq})
    assert (await agent.receive_json_from(timeout=2))["type"] == "error"

    await sync_to_async(open_case)(world["x"])

    assert {"type": "refresh", "region": "board"} in await received(board, timeout=7)
    await board.disconnect()
    await agent.disconnect()


def test_event_case_ids_reads_every_shape():
    assert event_case_ids({"case_id": 3}) == [3]
    assert event_case_ids({"case_ids": [4, 5]}) == [4, 5]
    assert event_case_ids({"cases": [{"case_id": 6}, {"case_id": 6}, {"reference": "x"}]}) == [6]
    assert event_case_ids({"incident_id": 9}) == []
