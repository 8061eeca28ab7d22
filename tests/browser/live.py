"""The live server the browser tests drive: daphne, forked by ``ChannelsLiveServerTestCase``,
on the test database, with Celery tasks inline and a private cache (presence and reply locks
of the forked server stay out of other tests' way).

The server process writes its warnings and errors to ``SERVER_LOG``; each test prints what
was written while it ran, which pytest shows when the test fails (a push that never arrived
in the browser is explained there, or nowhere).
"""

from __future__ import annotations

import logging

import pytest
from channels.testing import ChannelsLiveServerTestCase
from daphne.testing import DaphneProcess
from django.conf import settings
from django.db import connections
from django.test import override_settings

from config.celery import app as celery_app
from tests.browser.conftest import SCREENSHOTS

SERVER_LOG = SCREENSHOTS / "live-server.log"


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
    def _server_log(self):
        start = SERVER_LOG.stat().st_size if SERVER_LOG.exists() else 0
        yield
        if SERVER_LOG.exists():
            with SERVER_LOG.open("rb") as log:
                log.seek(start)
                written = log.read().decode("utf-8", "replace")
            if written:
                print(f"--- the live server logged while this test ran ({SERVER_LOG}):\n{written}")
