"""Every endpoint x every role: allowed, refused (403), invisible (404) or anonymous (401).

A case of another department answers 404, exactly like a case that does not exist, and never
shows up in a list. The last test fails when an endpoint is added without rows here.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from cases import services
from cases.models import BusinessCalendar, CannedReply, Incident, Membership, ServicePromise
from connectors import api_tokens
from connectors.models import WebhookSubscription
from customers import services as customer_services
from tests import factories

from .conftest import session_client, token_client

ROLES = ("agent", "agent_b", "supervisor", "admin", "anonymous", "readonly")

# Shorthands for the expected status per role, in ROLES order.
CASE_READ = (200, 404, 200, 200, 401, 200)
CASE_WRITE = (200, 404, 200, 200, 401, 403)
MEMBERS_READ = (200, 200, 200, 200, 401, 200)
MEMBERS_WRITE = (200, 200, 200, 200, 401, 403)
ADMIN_READ = (403, 403, 403, 200, 401, 403)
ADMIN_WRITE = (403, 403, 403, 200, 401, 403)
ADMIN_CREATE = (403, 403, 403, 201, 401, 403)
ADMIN_DELETE = (403, 403, 403, 204, 401, 403)
SESSION_ONLY = (200, 200, 200, 200, 401, 403)
MERGERS = (403, 403, 200, 200, 401, 403)
SUPERVISE = (403, 404, 200, 200, 401, 403)
REPORTS = (403, 403, 200, 200, 401, 403)
CASE_CREATE = (201, 404, 201, 201, 401, 403)

EXPORTERS = (403, 404, 200, 200, 401, 403)
ERASERS = (403, 404, 403, 200, 401, 403)


def _customer_in_social_care(w):
    """A customer with a case in Social Care, so its agents, supervisor and admins see it."""
    identity = factories.IdentityFactory()
    services.case_open(customer=identity.customer, channel=w.channel)
    return identity.customer


def _erasable(w):
    w.erasable = _customer_in_social_care(w)
    return w.erasable


def _merged_source(w):
    source = _customer_in_social_care(w)
    services.customer_merge(source=source, target=w.customer, actor=None)
    return {"source_id": source.pk, "reason": "Two people after all"}


def _suggestion(w):
    """An open suggestion for the world's customer: they wrote the e-mail address of another
    customer of Social Care."""
    other = factories.IdentityFactory(kind="email", platform_id="other.person@example.test")
    services.case_open(customer=other.customer, channel=w.channel)
    [suggestion] = customer_services.identity_suggestions_record(
        customer=w.customer, text="Or write to other.person@example.test", source_message_id=w.message.pk
    )
    return suggestion


def _monitored_case(w):
    return services.case_set_status(case=w.case, status="monitoring", actor=None)


def _second_case(w):
    """Another case of the world's customer in Social Care, merged into ``w.case``."""
    case = services.case_open(customer=w.customer, channel=w.channel)
    services.message_add(
        case=case, direction="in", kind="post", text="Still broken", channel=w.channel,
        identity=w.identity, external_id="t-2",
    )  # fmt: skip
    return {"source_id": case.pk, "reason": "The same router"}


def _second_topic(w):
    """A second customer message on ``w.case``, split off into a case of its own."""
    return services.message_add(
        case=w.case, direction="in", kind="post", text="And my bill is wrong", channel=w.channel,
        identity=w.identity, external_id="t-3",
    )  # fmt: skip


def _canned(w):
    return CannedReply.objects.create(title="Sorry", body="Sorry {customer_name}, we are on it.")


def _incident(w):
    now = timezone.now()
    incident = Incident.objects.create(
        channel=w.channel, title="Outage", window_start=now, window_end=now, mention_count=40, baseline=2.0
    )
    incident.cases.add(w.case)
    return incident


def _spare_department(w):
    return factories.DepartmentFactory(name="Spare", slug="spare")


def _own_token(w):
    token, _ = api_tokens.api_token_create(user=w.agent, name="Mine")
    return token


def _subscription(w):
    return WebhookSubscription.objects.create(
        name="BI", url="http://127.0.0.1:9/hook", event_types=["case.created"], signing_salt="s"
    )


def _calendar(w):
    return BusinessCalendar.objects.create(name="Office", time_zone="Europe/London")


def _promise(w):
    return ServicePromise.objects.get(channel=w.channel)


def _membership(w):
    return Membership.objects.get(user=w.agent, department=w.department)


# (method, path template, setup returning the object behind {id} or None, body, expected per role)
ENDPOINTS = [
    ("get", "/api/v1/customers/", None, None, MEMBERS_READ),
    ("get", "/api/v1/customers/{id}/", lambda w: w.customer, None, CASE_READ),
    (
        "post",
        "/api/v1/customers/{id}/link/",
        lambda w: w.customer,
        lambda w: {"identity_id": _customer_in_social_care(w).identities.get().pk},
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/customers/{id}/merge/",
        lambda w: w.customer,
        lambda w: {"source_id": _customer_in_social_care(w).pk},
        MERGERS,
    ),
    ("post", "/api/v1/customers/{id}/unmerge/", lambda w: w.customer, _merged_source, MERGERS),
    ("get", "/api/v1/customers/{id}/export/", lambda w: w.customer, None, EXPORTERS),
    ("post", "/api/v1/customers/{id}/erase/", _erasable, lambda w: {"confirm": w.erasable.pk}, ERASERS),
    ("get", "/api/v1/customers/{id}/suggestions/", lambda w: w.customer, None, CASE_READ),
    ("get", "/api/v1/identity-suggestions/", None, None, MEMBERS_READ),
    ("get", "/api/v1/identity-suggestions/{id}/", _suggestion, None, CASE_READ),
    ("post", "/api/v1/identity-suggestions/{id}/accept/", _suggestion, None, CASE_WRITE),
    ("post", "/api/v1/identity-suggestions/{id}/dismiss/", _suggestion, None, CASE_WRITE),
    ("get", "/api/v1/identities/", None, None, MEMBERS_READ),
    ("get", "/api/v1/identities/{id}/", lambda w: w.identity, None, CASE_READ),
    ("get", "/api/v1/cases/", None, None, MEMBERS_READ),
    ("get", "/api/v1/cases/{id}/", lambda w: w.case, None, CASE_READ),
    ("get", "/api/v1/cases/{id}/timeline/", lambda w: w.case, None, CASE_READ),
    ("get", "/api/v1/cases/{id}/canned-replies/", lambda w: w.case, None, CASE_READ),
    (
        "post",
        "/api/v1/cases/{id}/reply/",
        lambda w: w.case,
        lambda w: {
            "channel_id": w.channel.pk,
            "text": "Sorry about that, we are on it.",
            "draft_started_at": timezone.now().isoformat(),
        },
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/cases/{id}/note/",
        lambda w: w.case,
        lambda w: {"text": "Checked the line"},
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/cases/{id}/log-call/",
        lambda w: w.case,
        lambda w: {"direction": "out", "number": "+441632960000", "duration_seconds": 90},
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/cases/{id}/assign/",
        lambda w: w.case,
        lambda w: {"assignee_id": w.agent.pk, "reason": "Knows the customer"},
        CASE_WRITE,
    ),
    ("post", "/api/v1/cases/{id}/claim/", lambda w: w.case, lambda w: {}, CASE_WRITE),
    (
        "post",
        "/api/v1/cases/{id}/transfer/",
        lambda w: w.case,
        lambda w: {"to_department_id": w.other_department.pk, "reason": "Billing question"},
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/cases/{id}/escalate/",
        lambda w: w.case,
        lambda w: {"reason": "Needs billing"},
        CASE_WRITE,
    ),
    ("post", "/api/v1/cases/{id}/hand-back/", lambda w: w.case, lambda w: {"reason": "Not ours"}, CASE_WRITE),
    ("post", "/api/v1/cases/{id}/accept/", lambda w: w.case, lambda w: {}, CASE_WRITE),
    (
        "post",
        "/api/v1/cases/{id}/set-status/",
        lambda w: w.case,
        lambda w: {"status": "waiting_on_customer"},
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/cases/{id}/set-priority/",
        lambda w: w.case,
        lambda w: {"priority": "high"},
        CASE_WRITE,
    ),
    (
        "post",
        "/api/v1/cases/{id}/move-to-private/",
        lambda w: w.case,
        lambda w: {"channel_id": w.channel.pk, "private_channel_kind": "dm"},
        CASE_WRITE,
    ),
    ("post", "/api/v1/cases/{id}/monitor/", lambda w: w.case, lambda w: {"reason": "Venting"}, CASE_WRITE),
    (
        "post",
        "/api/v1/cases/{id}/respond/",
        _monitored_case,
        lambda w: {"reason": "Asks a question"},
        CASE_WRITE,
    ),
    ("post", "/api/v1/cases/{id}/merge/", lambda w: w.case, _second_case, CASE_WRITE),
    (
        "post",
        "/api/v1/cases/{id}/take-over-reply/",
        lambda w: w.case,
        lambda w: {"reason": "Customer escalated by phone"},
        SUPERVISE,
    ),
    (
        "post",
        "/api/v1/cases/bulk-reassign/",
        None,
        lambda w: {"case_ids": [w.case.pk], "assignee_id": w.agent.pk, "reason": "Shift change"},
        (200, 400, 200, 200, 401, 403),
    ),
    ("get", "/api/v1/messages/", None, None, MEMBERS_READ),
    ("get", "/api/v1/messages/{id}/", lambda w: w.message, None, CASE_READ),
    ("post", "/api/v1/messages/{id}/split/", _second_topic, lambda w: {"reason": "Billing"}, CASE_CREATE),
    ("get", "/api/v1/case-events/", None, None, MEMBERS_READ),
    ("get", "/api/v1/case-events/{id}/", lambda w: w.event, None, CASE_READ),
    ("get", "/api/v1/departments/", None, None, MEMBERS_READ),
    ("get", "/api/v1/departments/{id}/", lambda w: w.department, None, MEMBERS_READ),
    (
        "post",
        "/api/v1/departments/",
        None,
        lambda w: {"name": "Retention", "slug": "retention"},
        ADMIN_CREATE,
    ),
    (
        "patch",
        "/api/v1/departments/{id}/",
        lambda w: w.department,
        lambda w: {"description": "X"},
        ADMIN_WRITE,
    ),
    ("delete", "/api/v1/departments/{id}/", _spare_department, None, ADMIN_DELETE),
    ("get", "/api/v1/memberships/", None, None, MEMBERS_READ),
    ("get", "/api/v1/memberships/{id}/", _membership, None, (200, 404, 200, 200, 401, 200)),
    (
        "post",
        "/api/v1/memberships/",
        None,
        lambda w: {"user_id": w.agent_b.pk, "department_id": w.department.pk, "role": "agent"},
        ADMIN_CREATE,
    ),
    (
        "patch",
        "/api/v1/memberships/{id}/",
        _membership,
        lambda w: {"role": "supervisor"},
        ADMIN_WRITE,
    ),
    ("delete", "/api/v1/memberships/{id}/", _membership, None, ADMIN_DELETE),
    ("get", "/api/v1/channels/", None, None, MEMBERS_READ),
    ("get", "/api/v1/channels/{id}/", lambda w: w.channel, None, MEMBERS_READ),
    (
        "post",
        "/api/v1/channels/",
        None,
        lambda w: {"kind": "phone", "name": "Line", "slug": "line", "department_id": w.department.pk},
        ADMIN_CREATE,
    ),
    ("patch", "/api/v1/channels/{id}/", lambda w: w.channel, lambda w: {"handle": "@brand"}, ADMIN_WRITE),
    (
        "delete",
        "/api/v1/channels/{id}/",
        lambda w: factories.ChannelFactory(department=w.department),
        None,
        ADMIN_DELETE,
    ),
    ("get", "/api/v1/calendars/", None, None, MEMBERS_READ),
    ("get", "/api/v1/calendars/{id}/", _calendar, None, MEMBERS_READ),
    (
        "post",
        "/api/v1/calendars/",
        None,
        lambda w: {"name": "Office", "time_zone": "Europe/Paris"},
        ADMIN_CREATE,
    ),
    ("patch", "/api/v1/calendars/{id}/", _calendar, lambda w: {"always_open": True}, ADMIN_WRITE),
    ("delete", "/api/v1/calendars/{id}/", _calendar, None, ADMIN_DELETE),
    ("get", "/api/v1/service-promises/", None, None, MEMBERS_READ),
    ("get", "/api/v1/service-promises/{id}/", _promise, None, MEMBERS_READ),
    (
        "post",
        "/api/v1/service-promises/",
        None,
        lambda w: {
            "channel_id": factories.ChannelFactory(department=w.department).pk,
            "first_response_minutes": 30,
        },
        ADMIN_CREATE,
    ),
    (
        "patch",
        "/api/v1/service-promises/{id}/",
        _promise,
        lambda w: {"next_response_minutes": 45},
        ADMIN_WRITE,
    ),
    ("delete", "/api/v1/service-promises/{id}/", _promise, None, ADMIN_DELETE),
    ("get", "/api/v1/escalation-paths/", None, None, MEMBERS_READ),
    ("get", "/api/v1/escalation-paths/{id}/", lambda w: w.department.paths_out.first(), None, MEMBERS_READ),
    (
        "post",
        "/api/v1/escalation-paths/",
        None,
        lambda w: {"from_department_id": w.other_department.pk, "to_department_id": w.department.pk},
        ADMIN_CREATE,
    ),
    (
        "patch",
        "/api/v1/escalation-paths/{id}/",
        lambda w: w.department.paths_out.first(),
        lambda w: {"order": 2},
        ADMIN_WRITE,
    ),
    (
        "delete",
        "/api/v1/escalation-paths/{id}/",
        lambda w: w.department.paths_out.first(),
        None,
        ADMIN_DELETE,
    ),
    ("get", "/api/v1/canned-replies/", None, None, MEMBERS_READ),
    ("get", "/api/v1/canned-replies/{id}/", _canned, None, MEMBERS_READ),
    (
        "post",
        "/api/v1/canned-replies/",
        None,
        lambda w: {"title": "Hello", "body": "Hi {customer_name}", "department_id": w.department.pk},
        ADMIN_CREATE,
    ),
    ("patch", "/api/v1/canned-replies/{id}/", _canned, lambda w: {"is_active": False}, ADMIN_WRITE),
    ("delete", "/api/v1/canned-replies/{id}/", _canned, None, ADMIN_DELETE),
    ("get", "/api/v1/incidents/", None, None, MEMBERS_READ),
    ("get", "/api/v1/incidents/{id}/", _incident, None, CASE_READ),
    ("post", "/api/v1/incidents/{id}/reply/", _incident, lambda w: {"text": "We are on it."}, CASE_WRITE),
    ("post", "/api/v1/incidents/{id}/close/", _incident, None, SUPERVISE),
    ("get", "/api/v1/reports/promises/", None, None, REPORTS),
    ("get", "/api/v1/reports/figures/{figure}/", None, None, REPORTS),
    ("get", "/api/v1/tokens/", None, None, SESSION_ONLY),
    (
        "post",
        "/api/v1/tokens/",
        None,
        lambda w: {"name": "Export", "scope": "read"},
        (201, 201, 201, 201, 401, 403),
    ),
    ("get", "/api/v1/tokens/{id}/", _own_token, None, (200, 404, 404, 404, 401, 403)),
    ("delete", "/api/v1/tokens/{id}/", _own_token, None, (204, 404, 404, 404, 401, 403)),
    ("get", "/api/v1/webhooks/", None, None, ADMIN_READ),
    (
        "post",
        "/api/v1/webhooks/",
        None,
        lambda w: {"name": "BI", "url": "https://bi.example.test/hook", "event_types": ["case.created"]},
        ADMIN_CREATE,
    ),
    ("get", "/api/v1/webhooks/{id}/", _subscription, None, ADMIN_READ),
    ("patch", "/api/v1/webhooks/{id}/", _subscription, lambda w: {"is_active": False}, ADMIN_WRITE),
    ("delete", "/api/v1/webhooks/{id}/", _subscription, None, ADMIN_DELETE),
    ("post", "/api/v1/webhooks/{id}/rotate-secret/", _subscription, None, ADMIN_WRITE),
    ("get", "/api/v1/webhooks/{id}/deliveries/", _subscription, None, ADMIN_READ),
]


def _client(world, role):
    if role == "anonymous":
        return APIClient()
    if role == "readonly":
        return token_client(world.readonly_key)
    return session_client(getattr(world, role))


CASES = [
    pytest.param(method, path, setup, body, role, expected[index], id=f"{method} {path} as {role}")
    for method, path, setup, body, expected in ENDPOINTS
    for index, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("method", "path", "setup", "body", "role", "expected"), CASES)
def test_endpoint_by_role(world, method, path, setup, body, role, expected):
    # given
    target = setup(world) if setup else None
    url = path.format(id=target.pk) if target is not None else path.format(figure="backlog")
    client = _client(world, role)
    # when
    response = getattr(client, method)(url, body(world) if body else None, format="json")
    # then
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert set(response.json()["error"]) == {"code", "message", "field"}


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/v1/cases/", "id"),
        ("/api/v1/messages/", "case_id"),
        ("/api/v1/case-events/", "case_id"),
        ("/api/v1/memberships/", "department_id"),
        ("/api/v1/customers/", "id"),
        ("/api/v1/identities/", "customer_id"),
        ("/api/v1/identity-suggestions/", "customer_id"),
    ],
)
def test_lists_never_show_another_departments_rows(world, path, key):
    rows = session_client(world.agent_b).get(path).json()["results"]
    forbidden = {
        "/api/v1/cases/": {world.case.pk},
        "/api/v1/messages/": {world.case.pk},
        "/api/v1/case-events/": {world.case.pk},
        "/api/v1/memberships/": {world.department.pk},
        "/api/v1/customers/": {world.customer.pk},
        "/api/v1/identities/": {world.customer.pk},
        "/api/v1/identity-suggestions/": {world.customer.pk},
    }[path]
    if path == "/api/v1/identity-suggestions/":
        _suggestion(world)
        # One of Billing's customers wrote an address too, so agent_b's list is not empty.
        billing = factories.IdentityFactory(kind="email", platform_id="billing.person@example.test")
        services.case_open(customer=billing.customer, channel=world.other_channel)
        writer = services.case_open(
            customer=factories.CustomerFactory(), channel=world.other_channel
        ).customer
        customer_services.identity_suggestions_record(customer=writer, text="billing.person@example.test")
        rows = session_client(world.agent_b).get(path).json()["results"]
    assert rows, "agent_b sees their own department's rows"
    assert not {row[key] for row in rows} & forbidden


def test_a_hidden_case_looks_exactly_like_a_missing_one(world):
    client = session_client(world.agent_b)
    hidden = client.get(f"/api/v1/cases/{world.case.pk}/")
    missing = client.get("/api/v1/cases/987654321/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    hidden_action = client.post(f"/api/v1/cases/{world.case.pk}/claim/", {}, format="json")
    assert hidden_action.json() == client.post("/api/v1/cases/987654321/claim/", {}, format="json").json()


def test_a_follower_sees_a_case_but_may_not_change_it(world):
    world.case.followers.add(world.agent_b)
    client = session_client(world.agent_b)
    assert client.get(f"/api/v1/cases/{world.case.pk}/").status_code == 200
    response = client.post(f"/api/v1/cases/{world.case.pk}/set-priority/", {"priority": "low"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"


def test_the_matrix_covers_every_endpoint(schema_settings):
    """Every (method, path) the API routes is in ENDPOINTS, and nothing in ENDPOINTS is stale."""
    schema = SchemaGenerator(urlconf="tests.api.urls").get_schema(request=None, public=True)
    routed = {
        (method, path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if method in {"get", "post", "patch", "put", "delete"}
    }
    covered = {(method, path) for method, path, *_ in ENDPOINTS}
    assert routed == covered
