"""The API's test world: two departments, a case handed over into the first, users of every role.

Tests run against ``tests.api.urls`` (the site's URLs plus the API's) until
``config/urls.py`` mounts the API itself; throttles count in a private in-memory cache.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from drf_spectacular.settings import spectacular_settings
from rest_framework.test import APIClient

from cases import services
from cases.api.schema_settings import SCHEMA_SETTINGS
from cases.models import EscalationPath, Membership
from connectors import api_tokens
from tests import factories


@pytest.fixture(autouse=True)
def _api_urls_and_cache(settings):
    settings.ROOT_URLCONF = "tests.api.urls"
    # The world has several users; the production hasher would add a second to every test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def schema_settings(monkeypatch):
    """The SPECTACULAR_SETTINGS keys the API is documented with, when settings lack them."""
    for key, value in SCHEMA_SETTINGS.items():
        if key == "ENUM_NAME_OVERRIDES":
            value = {**value, **(getattr(spectacular_settings, key) or {})}
        monkeypatch.setattr(spectacular_settings, key, value)


@dataclass
class World:
    department: object
    other_department: object
    channel: object
    other_channel: object
    customer: object
    identity: object
    case: object
    other_case: object
    message: object
    event: object
    agent: object
    agent_b: object
    supervisor: object
    admin: object
    readonly_key: str
    write_key: str


@pytest.fixture
def world(department, other_department, channel, agent, supervisor, customer, identity):
    """Case ``case`` came from Billing to Social Care (so it can be handed back); ``other_case``
    stays in Billing. ``agent`` is in Social Care, ``agent_b`` in Billing."""
    agent_b = factories.UserFactory(username="agent-b", email="agent-b@example.test")
    factories.MembershipFactory(user=agent_b, department=other_department, role=Membership.Role.AGENT)
    admin = factories.UserFactory(username="admin", email="admin@example.test", is_staff=True)
    other_channel = factories.ChannelFactory(
        kind="email",
        name="Billing mail",
        slug="billing-mail",
        department=other_department,
        account_id="b@x.test",
    )
    factories.ServicePromiseFactory(channel=other_channel)
    EscalationPath.objects.create(from_department=department, to_department=other_department)

    case = services.case_open(
        customer=customer, channel=channel, department=other_department, subject="Router"
    )
    message = services.message_add(
        case=case,
        direction="in",
        kind="post",
        text="My router is broken @brand",
        channel=channel,
        identity=identity,
        is_public=True,
        external_id="t-1",
    )
    services.case_transfer(case=case, to_department=department, actor=None, reason="Needs social care")
    case.refresh_from_db()

    other_customer = factories.CustomerFactory(name="Other Customer")
    other_identity = factories.IdentityFactory(customer=other_customer, kind="email", platform_id="o@x.test")
    other_case = services.case_open(customer=other_customer, channel=other_channel, subject="Invoice")
    services.message_add(
        case=other_case,
        direction="in",
        kind="email",
        text="Invoice wrong",
        channel=other_channel,
        identity=other_identity,
        external_id="<m1@x.test>",
    )
    other_case.refresh_from_db()
    _, readonly_key = api_tokens.api_token_create(user=agent, name="BI", scope="read")
    _, write_key = api_tokens.api_token_create(user=agent, name="Bot", scope="write")
    return World(
        department=department,
        other_department=other_department,
        channel=channel,
        other_channel=other_channel,
        customer=customer,
        identity=identity,
        case=case,
        other_case=other_case,
        message=message,
        event=case.events.order_by("id").first(),
        agent=agent,
        agent_b=agent_b,
        supervisor=supervisor,
        admin=admin,
        readonly_key=readonly_key,
        write_key=write_key,
    )


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def as_agent(world):
    return session_client(world.agent)


@pytest.fixture
def as_supervisor(world):
    return session_client(world.supervisor)


@pytest.fixture
def as_admin(world):
    return session_client(world.admin)


@pytest.fixture
def as_agent_b(world):
    return session_client(world.agent_b)
