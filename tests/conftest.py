"""Fixtures shared by the whole suite, and the ordering rules that keep async,
Channels and browser tests from tripping over each other (see docs/architecture.md)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_asyncio
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections

from cases import services
from cases.models import Membership
from tests import factories

# A daphne child forked by a live-server test must get its own sync_to_async thread.
os.register_at_fork(
    after_in_child=lambda: setattr(SyncToAsync, "single_thread_executor", ThreadPoolExecutor(max_workers=1))
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "postgres" in item.keywords and not settings.IS_POSTGRES:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
    # Sync Playwright keeps an event loop running once it starts: browser tests go last.
    items.sort(key=lambda i: "page" in getattr(i, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    """Close the connections async tests opened on asgiref's worker thread.

    The ORM in async code runs on that thread, on its own connection, which would
    otherwise stay open and keep PostgreSQL from dropping the test database.
    """
    if pytest_asyncio.is_async_test(item):
        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser(browser):
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    return browser


@pytest.fixture(autouse=True)
def _celery_inline(settings):
    """Unit tests run tasks inline; the worker test (tests/test_worker.py) uses a real one."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _own_contacts_forgotten():
    """The company's own addresses are read per process: each test reads its own channels'."""
    from connectors import own_contacts

    own_contacts.forget()


@pytest.fixture(autouse=True)
def _private_cache(settings):
    """Each test gets its own cache: login-failure counters and the like never leak between
    tests, or between test runs sharing one Redis."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def department(db):
    return factories.DepartmentFactory(name="Social Care", slug="social-care")


@pytest.fixture
def other_department(db):
    return factories.DepartmentFactory(name="Billing", slug="billing")


@pytest.fixture
def channel(department):
    ch = factories.ChannelFactory(
        kind="x", name="Brand on X", slug="brand-x", department=department, account_id="777"
    )
    factories.ServicePromiseFactory(channel=ch, first_response_minutes=60, next_response_minutes=60)
    return ch


@pytest.fixture
def agent(department):
    user = factories.UserFactory(username="agent", email="agent@example.test")
    factories.MembershipFactory(user=user, department=department, role=Membership.Role.AGENT)
    return user


@pytest.fixture
def other_agent(department):
    user = factories.UserFactory(username="agent2", email="agent2@example.test")
    factories.MembershipFactory(user=user, department=department, role=Membership.Role.AGENT)
    return user


@pytest.fixture
def supervisor(department):
    user = factories.UserFactory(username="super", email="super@example.test")
    factories.MembershipFactory(user=user, department=department, role=Membership.Role.SUPERVISOR)
    return user


@pytest.fixture
def customer(db):
    return factories.CustomerFactory(name="Dana Customer")


@pytest.fixture
def identity(customer):
    return factories.IdentityFactory(customer=customer, kind="x", platform_id="4242", handle="dana")


@pytest.fixture
def case(customer, channel, identity):
    """A case opened by a tweet, through the services."""
    new = services.case_open(customer=customer, channel=channel, subject="Broken router")
    services.message_add(
        case=new,
        direction="in",
        kind="post",
        text="My router is broken @brand",
        channel=channel,
        identity=identity,
        is_public=True,
        external_id="t1",
    )
    new.refresh_from_db()
    return new
