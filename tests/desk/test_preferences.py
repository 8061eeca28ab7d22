"""My settings: a desk user's own notifications, chime and theme, and which live events
become desktop notices for them (channels_app.notify)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.urls import reverse

from cases import preferences, services
from cases.errors import ServiceError
from cases.models import Case, DeskPreferences
from channels_app import notify, publish
from tests import factories

pytestmark = pytest.mark.django_db

# Session, user, the preferences row, the top bar's memberships and departments.
PAGE_QUERIES = 5


@pytest.fixture
def me(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def sent(monkeypatch):
    """Live events as they leave the process (after commit), with their groups."""
    out: list[tuple[dict, list[str]]] = []
    real = publish._send
    monkeypatch.setattr(publish, "_send", lambda items: (out.extend(items), real(items))[1])
    return out


def ticked(html: str, name: str) -> bool:
    return re.search(rf'<input type="checkbox" name="{name}"[^>]* checked', html) is not None


def chosen(html: str) -> str | None:
    found = re.findall(r'<input type="radio" name="theme" value="(\w+)"[^>]* checked', html)
    return found[0] if len(found) == 1 else None


def form_data(**changes) -> dict:
    data = {"notify_assigned": "on", "notify_at_risk": "on", "notify_replies": "on", "theme": "system"}
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def test_page_shows_the_defaults_to_a_user_who_never_saved(me, agent, django_assert_num_queries):
    with django_assert_num_queries(PAGE_QUERIES):
        response = me.get(reverse("desk:my_settings"))

    assert response.status_code == 200
    html = response.content.decode()
    assert (
        ticked(html, "notify_assigned") and ticked(html, "notify_at_risk") and ticked(html, "notify_replies")
    )
    assert 'name="sound"' in html and not ticked(html, "sound")
    assert chosen(html) == "system"
    assert 'value="system"' in html and 'data-theme-saved="system"' in html
    assert "Turn on notifications" in html
    assert not DeskPreferences.objects.filter(user=agent).exists()


def test_page_query_count_is_the_same_once_saved(me, agent, django_assert_num_queries):
    preferences.preferences_save(
        user=agent, notify_assigned=False, notify_at_risk=True, notify_replies=False, sound=True, theme="dark"
    )
    with django_assert_num_queries(PAGE_QUERIES):
        response = me.get(reverse("desk:my_settings"))

    assert 'data-theme-saved="dark"' in response.content.decode()


def test_saving_stores_every_choice_and_tells_the_users_sockets(
    me, agent, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = me.post(
            reverse("desk:my_settings"), form_data(notify_at_risk=None, sound="on", theme="dark")
        )

    assert response.status_code == 302
    assert response.url == reverse("desk:my_settings")
    prefs = DeskPreferences.objects.get(user=agent)
    assert (prefs.notify_assigned, prefs.notify_at_risk, prefs.notify_replies) == (True, False, True)
    assert (prefs.sound, prefs.theme) == (True, "dark")
    assert sent == [
        ({"type": "prefs.changed", "user_id": agent.pk, "theme": "dark", "sound": True}, [f"user.{agent.pk}"])
    ]
    page = me.get(reverse("desk:my_settings")).content.decode()
    assert "Your settings are saved." in page
    assert chosen(page) == "dark" and not ticked(page, "notify_at_risk") and ticked(page, "sound")


def test_saving_again_updates_the_one_row(me, agent):
    me.post(reverse("desk:my_settings"), form_data(theme="light"))
    me.post(reverse("desk:my_settings"), form_data(theme="dark", notify_replies=None))

    assert DeskPreferences.objects.filter(user=agent).count() == 1
    prefs = DeskPreferences.objects.get(user=agent)
    assert (prefs.theme, prefs.notify_replies) == ("dark", False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"theme": "purple"}, "Theme: &#x27;purple&#x27; is not one of Same as the system, Light or Dark."),
        ({"theme": None}, "Theme: choose Same as the system, Light or Dark."),
        (
            {"sound": "maybe"},
            "Play a chime with each notification: tick or untick the box (not &#x27;maybe&#x27;).",
        ),
        ({"notify_assigned": "2"}, "A case is assigned to me: tick or untick the box (not &#x27;2&#x27;)."),
    ],
)
def test_a_wrong_value_is_named_beside_its_field_and_nothing_is_saved(me, agent, changes, message):
    response = me.post(reverse("desk:my_settings"), form_data(**changes))

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'class="field-error" role="alert"' in html
    assert not DeskPreferences.objects.filter(user=agent).exists()


def test_the_service_refuses_a_theme_it_does_not_know_naming_the_field(agent):
    with pytest.raises(ServiceError) as refused:
        preferences.preferences_save(
            user=agent,
            notify_assigned=True,
            notify_at_risk=True,
            notify_replies=True,
            sound=False,
            theme="sepia",
        )
    assert refused.value.field == "theme"
    assert not DeskPreferences.objects.filter(user=agent).exists()


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("desk:my_settings"))
    assert response.status_code == 302
    assert "/accounts/login/" in response.url


def test_socket_preferences_lists_wanted_kinds_and_open_followed_cases(agent, channel, customer, identity):
    followed = services.case_open(customer=customer, channel=channel, subject="Followed")
    done = services.case_open(customer=customer, channel=channel, subject="Done")
    for case in (followed, done):
        case.followers.add(agent)
    services.case_set_status(case=done, status=Case.Status.RESOLVED, actor=None)

    assert preferences.socket_preferences(user=agent) == {
        "notify": ["assigned", "at_risk", "reply"],
        "sound": False,
        "theme": "system",
        "followed": [followed.pk],
        "followed_elsewhere": [],
    }
    preferences.preferences_save(
        user=agent,
        notify_assigned=True,
        notify_at_risk=False,
        notify_replies=False,
        sound=True,
        theme="light",
    )
    assert preferences.socket_preferences(user=agent) == {
        "notify": ["assigned"],
        "sound": True,
        "theme": "light",
        "followed": [],
        "followed_elsewhere": [],
    }


# --- which events are news (channels_app.notify) ---------------------------------------------


def row(case_id=7, reference="C-7Q4K2", assignee_id=1, subject="Lost bag", customer="Riley Vale"):
    case = SimpleNamespace(
        pk=case_id,
        reference=reference,
        assignee_id=assignee_id,
        subject=subject,
        customer_id=3,
        customer=SimpleNamespace(name=customer),
    )
    return {case_id: SimpleNamespace(case=case)}


ALL = ["assigned", "at_risk", "reply"]


def assigned(actor_id, assignee_id=1):
    return {
        "type": "case.changed",
        "change": "assigned",
        "case_id": 7,
        "reference": "C-7Q4K2",
        "assignee_id": assignee_id,
        "actor_id": actor_id,
    }


def test_a_case_assigned_to_me_by_a_colleague_is_news():
    found = notify.notices(
        kind="case.changed", event=assigned(actor_id=2), rows=row(), user_id=1, wanted=ALL, followed=set()
    )
    assert found == [
        {
            "kind": "assigned",
            "reference": "C-7Q4K2",
            "title": "C-7Q4K2 is assigned to you",
            "body": "Lost bag — Riley Vale",
            "url": "/desk/cases/C-7Q4K2/",
            "tag": "assigned:C-7Q4K2",
        }
    ]


@pytest.mark.parametrize(
    ("event", "rows", "wanted"),
    [
        (assigned(actor_id=1), row(), ALL),  # I claimed it myself
        (assigned(actor_id=None), row(), ALL),  # the system (routing): not someone assigning me
        (assigned(actor_id=2, assignee_id=5), row(assignee_id=5), ALL),  # a colleague's case
        (assigned(actor_id=2), row(assignee_id=9), ALL),  # moved on again since
        (assigned(actor_id=2), row(), ["at_risk", "reply"]),  # I turned these off
        ({**assigned(actor_id=2), "change": "status"}, row(), ALL),
    ],
)
def test_what_is_not_news_about_assignment(event, rows, wanted):
    assert (
        notify.notices(kind="case.changed", event=event, rows=rows, user_id=1, wanted=wanted, followed=set())
        == []
    )


def test_my_cases_turning_at_risk_are_news_and_others_are_not():
    rows = {**row(), **row(case_id=8, reference="C-8AAAA", assignee_id=4)}
    event = {"type": "sla.changed", "sla_state": "at_risk", "cases": [{"case_id": 7}, {"case_id": 8}]}

    found = notify.notices(kind="sla.changed", event=event, rows=rows, user_id=1, wanted=ALL, followed=set())

    assert [(n["reference"], n["title"]) for n in found] == [
        ("C-7Q4K2", "C-7Q4K2 is at risk of breaking its promise")
    ]
    breached = {**event, "sla_state": "breached"}
    assert (
        notify.notices(kind="sla.changed", event=breached, rows=rows, user_id=1, wanted=ALL, followed=set())
        == []
    )
    assert (
        notify.notices(
            kind="sla.changed", event=event, rows=rows, user_id=1, wanted=["reply"], followed=set()
        )
        == []
    )


def test_a_customer_reply_on_a_case_i_own_or_follow_is_news():
    event = {"type": "message.added", "case_id": 7, "message_id": 70, "direction": "in"}
    mine = notify.notices(
        kind="message.added", event=event, rows=row(), user_id=1, wanted=ALL, followed=set()
    )
    followed = notify.notices(
        kind="message.added", event=event, rows=row(assignee_id=5), user_id=1, wanted=ALL, followed={7}
    )
    elsewhere = notify.notices(
        kind="message.added", event=event, rows=row(assignee_id=5), user_id=1, wanted=ALL, followed=set()
    )
    note = notify.notices(
        kind="message.added",
        event={**event, "direction": "note"},
        rows=row(),
        user_id=1,
        wanted=ALL,
        followed=set(),
    )

    assert [n["title"] for n in mine] == ["C-7Q4K2: the customer replied"]
    assert [n["title"] for n in followed] == ["C-7Q4K2: the customer replied"]
    assert elsewhere == [] and note == []


def test_the_same_notice_is_sent_once_in_a_while():
    recent = notify.Recent(size=2)
    assert recent.fresh("assigned:C-1", 0.0)
    assert not recent.fresh("assigned:C-1", 10.0)
    assert recent.fresh("assigned:C-1", notify.REPEAT_SECONDS + 1)
    assert recent.fresh("assigned:C-2", 0.0) and recent.fresh("assigned:C-3", 0.0)
    assert recent.fresh("assigned:C-1", notify.REPEAT_SECONDS + 2)  # forgotten: only the newest kept


def test_assignment_events_name_who_assigned(
    agent, other_agent, case, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.case_assign(case=case, assignee=agent, actor=other_agent)
    with django_capture_on_commit_callbacks(execute=True):
        services.case_assign(case=case, assignee=None, actor=other_agent)
    fresh = factories.CustomerFactory()
    with django_capture_on_commit_callbacks(execute=True):
        claimed = services.case_open(customer=fresh, channel=case.last_channel or case.origin_channel)
    with django_capture_on_commit_callbacks(execute=True):
        services.case_claim(case=claimed, actor=agent)

    changes = [
        (e["case_id"], e["assignee_id"], e["actor_id"]) for e, _ in sent if e.get("change") == "assigned"
    ]
    assert changes == [
        (case.pk, agent.pk, other_agent.pk),
        (case.pk, None, other_agent.pk),
        (claimed.pk, agent.pk, agent.pk),
    ]
    groups_of_first = next(g for e, g in sent if e.get("change") == "assigned")
    assert f"user.{agent.pk}" in groups_of_first


# --- over the desk socket -------------------------------------------------------------------


def _save(user, **changes):
    values = {
        "notify_assigned": True,
        "notify_at_risk": True,
        "notify_replies": True,
        "sound": False,
        "theme": "system",
    }
    values.update(changes)
    return preferences.preferences_save(user=user, **values)


def _notices(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "notify"]


@pytest.mark.django_db(transaction=True)
async def test_the_socket_pushes_the_notices_a_user_wants_and_follows_their_changes():
    from asgiref.sync import sync_to_async

    from tests.test_consumers import build_world, connected, open_case, received

    world = await sync_to_async(build_world)()
    agent, colleague, boss = world["agent"], world["colleague"], world["super"]
    await sync_to_async(_save)(agent, sound=True, theme="dark")
    await sync_to_async(_save)(colleague, notify_assigned=False, notify_at_risk=False, notify_replies=False)
    first, second, third = [
        await sync_to_async(open_case)(world["x"], subject=s) for s in ("One", "Two", "Three")
    ]

    # given both on a page that is neither a queue nor a case (no subscription)
    mine = await connected(agent)
    theirs = await connected(colleague)

    # when the supervisor assigns a case to each of them
    await sync_to_async(services.case_assign)(case=first, assignee=agent, actor=boss)
    await sync_to_async(services.case_assign)(case=second, assignee=colleague, actor=boss)

    # then the agent is pushed one notice, with the chime; the colleague, who turned them off, none
    got = _notices(await received(mine))
    assert [(n["kind"], n["reference"], n["title"], n["sound"]) for n in got] == [
        ("assigned", first.reference, f"{first.reference} is assigned to you", True)
    ]
    assert await theirs.receive_nothing(timeout=0.5)

    # when the agent turns assignment notices off in another tab, this socket hears it at once
    await sync_to_async(_save)(agent, notify_assigned=False, theme="light")
    assert await mine.receive_json_from(timeout=2) == {"type": "prefs", "theme": "light", "sound": False}
    await sync_to_async(services.case_assign)(case=third, assignee=agent, actor=boss)
    assert await mine.receive_nothing(timeout=1.0)  # no notice (and nothing else: no page shows it)

    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_hello_carries_the_stored_theme_and_chime():
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from channels_app.consumers import DeskConsumer

    agent = await sync_to_async(factories.UserFactory)(username="hello-theme")
    await sync_to_async(_save)(agent, sound=True, theme="dark")
    communicator = WebsocketCommunicator(DeskConsumer.as_asgi(), "/ws/desk/")
    communicator.scope["user"] = agent
    ok, _ = await communicator.connect()
    assert ok
    hello = await communicator.receive_json_from(timeout=2)
    assert hello == {"type": "hello", "role": "none", "prefs": {"theme": "dark", "sound": True}}
    await communicator.disconnect()


def test_followed_cases_elsewhere_are_named_for_the_socket_to_join(agent, channel, billing_channel):
    here = services.case_open(customer=factories.CustomerFactory(), channel=channel, subject="Here")
    away = services.case_open(customer=factories.CustomerFactory(), channel=billing_channel, subject="Away")
    for case in (here, away):
        case.followers.add(agent)

    found = preferences.socket_preferences(user=agent)

    assert found["followed"] == [away.pk, here.pk]
    assert found["followed_elsewhere"] == [away.pk]


@pytest.mark.django_db(transaction=True)
async def test_a_reply_on_a_case_i_handed_to_another_department_reaches_me():
    from asgiref.sync import sync_to_async

    from tests.test_consumers import build_world, connected, open_case, received

    world = await sync_to_async(build_world)()
    agent = world["agent"]
    case = await sync_to_async(open_case)(world["x"], subject="Refund owed")
    await sync_to_async(services.case_claim)(case=case, actor=agent)
    # the agent hands it to Billing and keeps following it (case_transfer adds the follower)
    await sync_to_async(services.case_transfer)(
        case=case, to_department=world["billing"], actor=None, reason="Billing owns refunds"
    )
    socket = await connected(agent)

    def customer_writes():
        fresh = Case.objects.get(pk=case.pk)
        return services.message_add(
            case=fresh, direction="in", kind="email", text="Any news on my refund?", channel=world["mail"],
            identity=fresh.customer.identities.first(),
        )  # fmt: skip

    await sync_to_async(customer_writes)()

    notices = _notices(await received(socket))
    assert [(n["kind"], n["title"]) for n in notices] == [
        ("reply", f"{case.reference}: the customer replied")
    ]
    await socket.disconnect()
