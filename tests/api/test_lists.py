"""List endpoints: query counts pinned whatever the page size, keyset pages, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from cases import services
from cases.models import Case, CaseEvent, Message
from tests import factories

from .conftest import session_client, token_client
from .factories import open_cases


def _warm(client, path):
    """One request first, so the token's last-used write and per-process caches are not counted."""
    assert client.get(path).status_code == 200


# path -> queries for one page, made with a token (token+user, memberships, the page, its prefetches).
PINNED = {
    "/api/v1/cases/": 3,
    "/api/v1/messages/": 4,
    "/api/v1/case-events/": 3,
    "/api/v1/customers/": 4,
    "/api/v1/identities/": 3,
    "/api/v1/departments/": 3,
    "/api/v1/memberships/": 3,
    "/api/v1/channels/": 3,
    "/api/v1/calendars/": 3,
    "/api/v1/service-promises/": 3,
    "/api/v1/escalation-paths/": 3,
    "/api/v1/canned-replies/": 3,
    "/api/v1/incidents/": 4,
}


def _incident(world, channel=None):
    from cases.models import Incident

    now = timezone.now()
    incident = Incident.objects.create(
        channel=channel or world.channel, window_start=now, window_end=now, mention_count=30, baseline=1.0
    )
    incident.cases.add(world.case)


# Lists the world has no row of: one row first, so "few" runs the page's prefetches too.
SEED = {"/api/v1/incidents/": _incident}


def _grow(world, extra: int) -> None:
    """More of everything every list shows."""
    open_cases(count=extra, channel=world.channel)
    for i in range(extra):
        department = factories.DepartmentFactory(name=f"Team {i}", slug=f"team-{i}")
        factories.MembershipFactory(user=world.agent, department=department)
        channel = factories.ChannelFactory(department=department)
        factories.ServicePromiseFactory(channel=channel)
        factories.IdentityFactory(customer=world.customer)
    from cases.models import BusinessCalendar, CannedReply, EscalationPath

    for i in range(extra):
        BusinessCalendar.objects.create(name=f"Calendar {i}")
        CannedReply.objects.create(
            title=f"Reply {i}", body="Hello {customer_name}", department=world.department
        )
        _incident(world, factories.ChannelFactory(department=world.department))
        EscalationPath.objects.create(
            from_department=factories.DepartmentFactory(slug=f"team-{i}"), to_department=world.department
        )


@pytest.mark.parametrize("path", sorted(PINNED))
def test_a_list_costs_the_same_queries_for_few_rows_as_for_many(world, path, django_assert_num_queries):
    if path in SEED:
        SEED[path](world)
    client = token_client(world.write_key)
    _warm(client, path)
    with django_assert_num_queries(PINNED[path]):
        few = client.get(path, {"limit": 100})
    _grow(world, 30)
    with django_assert_num_queries(PINNED[path]):
        many = client.get(path, {"limit": 100})
    assert few.status_code == many.status_code == 200
    assert len(many.json()["results"]) > len(few.json()["results"]), "the second page really is bigger"


def test_admin_lists_need_no_membership_query(world, django_assert_num_queries):
    client = session_client(world.admin)
    _warm(client, "/api/v1/webhooks/")
    # session, user, the page.
    with django_assert_num_queries(3):
        assert client.get("/api/v1/webhooks/").status_code == 200
    with django_assert_num_queries(3):
        assert client.get("/api/v1/tokens/").status_code == 200


def test_the_cases_list_at_page_size_100_costs_three_queries(world, django_assert_num_queries):
    open_cases(count=120, channel=world.channel)
    client = token_client(world.write_key)
    _warm(client, "/api/v1/cases/")
    with django_assert_num_queries(3):
        page = client.get("/api/v1/cases/", {"limit": 100}).json()
    assert len(page["results"]) == 100
    with django_assert_num_queries(3):
        second = client.get(page["next"]).json()
    assert len(second["results"]) == 121 - 100  # the world's own case, in agent's department


def test_case_pages_follow_due_time_then_newest_and_visit_every_case_once(world):
    open_cases(count=7, channel=world.channel)
    no_clock = open_cases(count=3, channel=world.channel)
    Case.objects.filter(pk__in=[c.pk for c in no_clock]).update(due_at=None)
    client = token_client(world.write_key)
    seen, url = [], "/api/v1/cases/?limit=3"
    while url:
        page = client.get(url).json()
        seen += page["results"]
        url = page["next"]
    expected = list(
        Case.objects.filter(department=world.department)
        .order_by(F_due_nulls_last(), "-id")
        .values_list("id", flat=True)
    )
    assert [row["id"] for row in seen] == expected
    assert [row["due_at"] is None for row in seen][-3:] == [True, True, True]


def F_due_nulls_last():  # noqa: N802 - reads like the ORDER BY it builds
    from django.db.models import F

    return F("due_at").asc(nulls_last=True)


def test_message_pages_are_in_time_order(world):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for minutes in (5, 1, 3, 2, 4):
        services.message_add(
            case=world.case,
            direction="in",
            kind="post",
            text=f"at {minutes}",
            channel=world.channel,
            identity=world.identity,
            external_id=f"later-{minutes}",
            sent_at=start + timedelta(minutes=minutes),
        )
    client = token_client(world.write_key)
    seen, url = [], f"/api/v1/cases/{world.case.pk}/timeline/?limit=2"
    while url:
        page = client.get(url).json()
        seen += page["results"]
        url = page["next"]
    assert [m["id"] for m in seen] == list(
        Message.objects.filter(case=world.case).order_by("sent_at", "id").values_list("id", flat=True)
    )
    assert len(seen) == 6


def test_a_forged_cursor_is_a_400_naming_the_cursor(world):
    response = token_client(world.write_key).get("/api/v1/cases/", {"cursor": "bm90IGEgY3Vyc29y"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_cursor",
        "message": "The cursor is not one this API gave out.",
        "field": "cursor",
    }


@pytest.mark.parametrize("limit", ["0", "201", "ten"])
def test_a_limit_out_of_range_names_the_field(world, limit):
    response = token_client(world.write_key).get("/api/v1/messages/", {"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "limit"


# --- Filters -------------------------------------------------------------------------------------


@pytest.fixture
def mixed(world):
    """Cases of the agent's department in different states, plus the world's two cases."""
    a, b, c = open_cases(count=3, channel=world.channel)
    services.case_assign(case=a, assignee=world.agent, actor=world.supervisor)
    services.case_set_priority(case=b, priority="urgent", actor=world.supervisor)
    services.case_set_status(case=c, status="resolved", actor=world.supervisor)
    Case.objects.filter(pk=b.pk).update(sla_state=Case.SlaState.AT_RISK)
    return {"assigned": a, "urgent": b, "resolved": c}


def _ids(client, **params) -> set[int]:
    response = client.get("/api/v1/cases/", params)
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_case_filters(world, mixed):
    admin = session_client(world.admin)
    a, b, c = mixed["assigned"], mixed["urgent"], mixed["resolved"]
    assert _ids(admin, department_id=world.other_department.pk) == {world.other_case.pk}
    assert _ids(admin, department_id=[world.department.pk, world.other_department.pk]) == _ids(admin)
    assert _ids(admin, assignee_id=world.agent.pk) == {a.pk}
    assert a.pk not in _ids(admin, assignee_id="null")
    assert _ids(admin, assignee_id=["null", world.agent.pk]) == _ids(admin)
    assert _ids(admin, priority="urgent") == {b.pk}
    assert _ids(admin, status="resolved") == {c.pk}
    assert _ids(admin, status=["resolved", "new"]) >= {c.pk, b.pk}
    assert _ids(admin, sla_state="at_risk") == {b.pk}
    assert _ids(admin, channel_id=world.other_channel.pk) == {world.other_case.pk}
    assert _ids(admin, q=world.case.reference.lower()) == {world.case.pk}
    assert _ids(admin, q="invoice") == {world.other_case.pk}
    assert _ids(admin, q="other customer") == {world.other_case.pk}


def test_time_filters_bound_creation(world, mixed):
    admin = session_client(world.admin)
    later = timezone.now() + timedelta(hours=1)
    Case.objects.filter(pk=mixed["urgent"].pk).update(created_at=later)
    bound = (later - timedelta(minutes=1)).isoformat()
    assert _ids(admin, created_after=bound) == {mixed["urgent"].pk}
    assert mixed["urgent"].pk not in _ids(admin, created_before=bound)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"department_id": "sales"}, "department_id"),
        ({"status": "pending"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"assignee_id": "-1"}, "assignee_id"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(world, params, field):
    response = token_client(world.write_key).get("/api/v1/cases/", params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_filters_never_widen_what_a_user_sees(world):
    client = session_client(world.agent_b)
    assert _ids(client, department_id=world.department.pk) == set()
    assert _ids(client, q=world.case.reference) == set()


def test_message_and_event_filters(world):
    client = token_client(world.write_key)
    services.note_add(case=world.case, author=world.agent, text="internal")
    notes = client.get("/api/v1/messages/", {"direction": "note"}).json()["results"]
    assert [m["text"] for m in notes] == ["internal"]
    by_case = client.get("/api/v1/messages/", {"case_id": world.case.pk, "q": "router"}).json()["results"]
    assert [m["id"] for m in by_case] == [world.message.pk]
    moves = client.get("/api/v1/case-events/", {"kind": "transferred", "actor_id": "null"}).json()["results"]
    assert [e["case_id"] for e in moves] == [world.case.pk]
    assert CaseEvent.objects.filter(kind="transferred").count() == 1


def test_identity_lookup_by_platform_id_in_any_spelling(world):
    identity = factories.IdentityFactory(kind="email", platform_id="Dana@Example.test")
    services.case_open(customer=identity.customer, channel=world.channel)
    client = token_client(world.write_key)
    rows = client.get("/api/v1/identities/", {"kind": "email", "platform_id": " DANA@example.TEST "}).json()
    assert [row["id"] for row in rows["results"]] == [identity.pk]
    customers = client.get("/api/v1/customers/", {"q": "dana@example.test"}).json()["results"]
    assert identity.customer_id in {row["id"] for row in customers}


def test_webhook_and_token_filters(world):
    from connectors import api_tokens
    from connectors.models import ApiToken, WebhookSubscription

    admin = session_client(world.admin)
    on = WebhookSubscription.objects.create(
        name="BI", url="https://bi.example.test/hook", event_types=["case.created"], signing_salt="s"
    )
    off = WebhookSubscription.objects.create(
        name="Ops", url="https://ops.example.test/", event_types=["sla.breached"], signing_salt="t",
        is_active=False, disabled_at=timezone.now(),
    )  # fmt: skip

    def webhooks(**params):
        return [row["id"] for row in admin.get("/api/v1/webhooks/", params).json()["results"]]

    assert webhooks(is_active="true") == [on.pk]
    assert webhooks(disabled="true") == [off.pk]
    assert webhooks(q="ops.example") == [off.pk]
    token, _ = api_tokens.api_token_create(user=world.admin, name="Old", scope="read")
    api_tokens.api_token_revoke(token=token, actor=world.admin)
    api_tokens.api_token_create(user=world.admin, name="New", scope="write")
    rows = admin.get("/api/v1/tokens/", {"revoked": "false", "scope": "write"}).json()["results"]
    assert [row["name"] for row in rows] == ["New"]
    assert ApiToken.objects.filter(user=world.admin).count() == 2
