"""Saved views and the queue's CSV in real Chromium over daphne: filter the queue, save the
filters under a name (htmx swaps the saved-views region in place), open the view again from
another tab in one click, and download the filtered queue as CSV (streamed under ASGI)."""

from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import expect

from cases import services
from cases.models import Membership, SavedView
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase

pytestmark = pytest.mark.browser


def in_thread(work):
    """Run ``work`` off the main thread, where sync Playwright's event loop runs (services
    publish with async_to_sync, which refuses to run inside a running loop)."""

    def run():
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


class SavedViewsTest(BrowserTestCase):
    @pytest.fixture(autouse=True)
    def _browser(self, browser, page):
        # ``page`` is asked for so the suite runs this with the other browser tests, last.
        self.browser = browser
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def world(self):
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        x = factories.ChannelFactory(kind="x", name="Brand on X", slug="brand-x", department=social)
        factories.ServicePromiseFactory(channel=x)
        agent = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
        factories.MembershipFactory(user=agent, department=social, role=Membership.Role.AGENT)
        made = {}
        for name, priority in [("urgent", "urgent"), ("calm", "normal")]:
            customer = factories.CustomerFactory(name=f"Customer {name}")
            identity = factories.IdentityFactory(customer=customer, kind="x", platform_id=f"{name}-1")
            case = services.case_open(customer=customer, channel=x, subject=f"{name} case", priority=priority)
            services.message_add(
                case=case,
                direction="in",
                kind="post",
                text="help",
                channel=x,
                identity=identity,
                is_public=True,
            )
            made[name] = case
        return agent, made

    def signed_in_page(self, user):
        client = Client()
        client.force_login(user)
        context = self.browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
              "url": self.live_server_url}]
        )  # fmt: skip
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        return page

    def test_save_a_view_open_it_again_and_export_it(self):
        agent, cases = in_thread(self.world)
        page = self.signed_in_page(agent)
        page.goto(f"{self.live_server_url}/desk/?view=department")
        rows = page.locator("#queue-rows tr")
        expect(rows).to_have_count(2)

        page.locator("select[name=priority]").select_option("urgent")  # the filters submit themselves
        expect(page).to_have_url(re.compile(r"priority=urgent"))
        expect(rows).to_have_count(1)

        page.get_by_label("Save this view as").fill("Urgent ones")
        page.get_by_role("button", name="Save this view").click()

        saved = page.get_by_role("navigation", name="My saved views").get_by_role("link", name="Urgent ones")
        expect(saved).to_be_visible()
        expect(saved).to_have_attribute("aria-current", "page")  # the filters on screen
        stored = in_thread(lambda: list(SavedView.objects.values_list("name", "query")))
        assert stored == [("Urgent ones", "view=department&priority=urgent")]
        page.screenshot(path=f"{SCREENSHOTS}/saved-views.png")

        page.get_by_role("link", name="Clear").click()
        expect(page).to_have_url(re.compile(r"/desk/\?view=department$"))
        expect(rows).to_have_count(2)
        expect(saved).not_to_have_attribute("aria-current", "page")

        page.get_by_role("navigation", name="My saved views").get_by_role("link", name="Urgent ones").click()

        expect(page).to_have_url(re.compile(r"/desk/\?view=department&priority=urgent$"))
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-case", cases["urgent"].reference)

        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        content = open(download.value.path(), encoding="utf-8").read()  # noqa: SIM115
        exported = list(csv.DictReader(io.StringIO(content)))
        assert [row["reference"] for row in exported] == [cases["urgent"].reference]
        assert exported[0]["priority"] == "Urgent"
        assert page.problems == []
