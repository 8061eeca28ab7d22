"""The live server the browser tests drive: daphne, forked by ``ChannelsLiveServerTestCase``,
on the test database, with Celery tasks inline and a private cache (presence and reply locks
of the forked server stay out of other tests' way).

The server process writes its warnings and errors to ``SERVER_LOG``; each test prints what
was written while it ran, which pytest shows when the test fails (a push that never arrived
in the browser is explained there, or nowhere).

What the browser tests share: ``BrowserTestCase.signed_in_page`` (a page in a context of its
own, signed in, its console errors in ``page.problems``), ``in_thread`` (the ORM and the
services off Playwright's event loop), ``expect_live`` (wait for the live socket) and
``shared_channel_layer`` (skip without Redis).
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.testing import ChannelsLiveServerTestCase
from daphne.testing import DaphneProcess
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings
from playwright.sync_api import expect

from config.celery import app as celery_app
from tests.browser.conftest import SCREENSHOTS

SERVER_LOG = SCREENSHOTS / "live-server.log"


def shared_channel_layer(
    reason: str = "the live server and the test publish through a shared channel layer: set REDIS_URL",
):
    """Skip unless the channel layer is Redis, one this process and the forked server share
    (events the test causes here must reach the browser's socket there)."""
    return pytest.mark.skipif(
        "redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower(), reason=reason
    )


def in_thread(work, *, timeout: float = 30):
    """Run ``work`` on another thread and return its result: sync Playwright's event loop runs
    on the test's thread, and the services publish live events with async_to_sync, which
    refuses to run inside a running loop. The thread's database connections are closed after."""

    def run():
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=timeout)


def expect_live(page) -> None:
    """Wait until the page's live socket is connected (the dot in the top bar says so)."""
    expect(page.locator("#live-dot")).to_have_class(re.compile("is-live"))


class LoggedDaphneProcess(DaphneProcess):
    def run(self):
        build = self.get_application

        def get_application():
            application = build()  # sets Django up, and with it the logging configuration
            SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(SERVER_LOG)
            handler.setLevel(logging.WARNING)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
            return application

        self.get_application = get_application
        super().run()


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
class BrowserTestCase(ChannelsLiveServerTestCase):
    host = "127.0.0.1"
    serve_static = True
    ProtocolServerProcess = LoggedDaphneProcess

    @classmethod
    def setUpClass(cls):
        cls._eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
        # The forked server opens the test database by its TEST name; name the one in use.
        test_settings = settings.DATABASES["default"].setdefault("TEST", {})
        cls._test_name, test_settings["NAME"] = (
            test_settings.get("NAME"),
            connections["default"].settings_dict["NAME"],
        )
        super().setUpClass()  # forks the server with the settings above

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        settings.DATABASES["default"]["TEST"]["NAME"] = cls._test_name
        celery_app.conf.task_always_eager = cls._eager

    @pytest.fixture(autouse=True)
    def _browser(self, browser, page):
        # ``page`` is asked for so the suite's ordering runs these tests last, after every async
        # test (sync Playwright keeps an event loop running from the first browser test on).
        self.browser = browser
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def signed_in_page(
        self,
        user,
        *,
        width: int = 1360,
        height: int = 900,
        color_scheme: str | None = None,
        permissions: tuple[str, ...] = (),
        init_script: str | None = None,
        **context_options,
    ):
        """A page in a browser context of its own, ``width`` x ``height``, signed in as ``user``
        through a session cookie (``None``: nobody signed in), with ``permissions`` granted on
        the live server and ``init_script`` run in every document. ``context_options`` go to
        ``new_context`` as they are (``bypass_csp``, ``accept_downloads``, ``locale``...).

        The page's console errors and uncaught exceptions are collected in ``page.problems``.
        """
        context = self.browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=color_scheme, **context_options
        )
        if user is not None:
            client = Client()  # one each: signing a second user into a client ends the first's session
            client.force_login(user)
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                  "url": self.live_server_url}]
            )  # fmt: skip
        if permissions:
            context.grant_permissions(list(permissions), origin=self.live_server_url)
        if init_script is not None:
            context.add_init_script(script=init_script)
        page = context.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.problems = problems
        return page

    def signed_out_page(self, **options):
        """A page with nobody signed in; ``options`` as for ``signed_in_page``."""
        return self.signed_in_page(None, **options)

    @pytest.fixture(autouse=True)
    def _server_log(self):
        start = SERVER_LOG.stat().st_size if SERVER_LOG.exists() else 0
        yield
        if SERVER_LOG.exists():
            with SERVER_LOG.open("rb") as log:
                log.seek(start)
                written = log.read().decode("utf-8", "replace")
            if written:
                print(f"--- the live server logged while this test ran ({SERVER_LOG}):\n{written}")
