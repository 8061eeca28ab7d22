"""Saved views and the queue's CSV in real Chromium over daphne: filter the queue, save the
filters under a name (htmx swaps the saved-views region in place), open the view again from
another tab in one click, and download the filtered queue as CSV (streamed under ASGI)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from cases import services
from cases.models import Membership, SavedView
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, in_thread

pytestmark = pytest.mark.browser


class SavedViewsTest(BrowserTestCase):
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

    def test_save_a_view_open_it_again_and_export_it(self):
        agent, cases = in_thread(self.world)
        page = self.signed_in_page(agent, accept_downloads=True)
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
