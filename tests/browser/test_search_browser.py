"""The search box in real Chromium: type in the header's box, read the results (escaped snippet,
highlighted word), open a result, and jump straight to a case by its reference."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import expect

from cases import services
from cases.models import Membership
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


class SearchBoxTest(BrowserTestCase):
    @pytest.fixture(autouse=True)
    def _browser(self, browser, page):
        # ``page`` is asked for so the suite runs this with the other browser tests, last.
        self.browser = browser
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def world(self):
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        billing = factories.DepartmentFactory(name="Billing", slug="billing")
        x = factories.ChannelFactory(kind="x", name="Brand on X", slug="brand-x", department=social)
        mailbox = factories.ChannelFactory(
            kind="email", name="Billing mailbox", slug="billing-mail", department=billing
        )
        for channel in (x, mailbox):
            factories.ServicePromiseFactory(channel=channel)
        agent = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
        factories.MembershipFactory(user=agent, department=social, role=Membership.Role.AGENT)
        made = {}
        for name, channel, text in [
            ("mine", x, "My <b>snowglobe</b> arrived broken <script>document.title='pwned'</script>"),
            ("theirs", mailbox, "Invoice for the snowglobe is wrong"),
        ]:
            customer = factories.CustomerFactory(name=f"Customer {name}")
            identity = factories.IdentityFactory(
                customer=customer, kind=channel.kind, platform_id=f"{name}@example.test"
            )
            case = services.case_open(customer=customer, channel=channel, subject=f"Order of {name}")
            services.message_add(
                case=case,
                direction="in",
                kind="post",
                text=text,
                channel=channel,
                identity=identity,
                is_public=True,
            )
            made[name] = case
        return agent, made

    def signed_in_page(self, user):
        client = Client()
        client.force_login(user)
        context = self.browser.new_context(viewport={"width": 1360, "height": 900})
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
              "url": self.live_server_url}]
        )  # fmt: skip
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        return page

    def test_type_in_the_box_and_open_a_result(self):
        agent, cases = in_thread(self.world)
        page = self.signed_in_page(agent)
        page.goto(f"{self.live_server_url}/desk/")

        box = page.get_by_role("searchbox", name="Search cases, customers and messages")
        box.fill("snowglobe")
        box.press("Enter")

        expect(page).to_have_url(re.compile(r"/desk/search/\?q=snowglobe"))
        hits = page.locator(".search-hit")
        expect(hits).to_have_count(1)  # the billing case's message is not the agent's to see
        snippet = hits.first.locator(".search-snippet")
        expect(snippet.locator("mark")).to_have_text("snowglobe")
        expect(snippet).not_to_contain_text("<b>")  # markup is text, never elements
        expect(snippet.locator("b, script")).to_have_count(0)
        assert page.title() != "pwned"
        page.screenshot(path=f"{SCREENSHOTS}/search-results.png")

        hits.first.get_by_role("link", name=cases["mine"].reference).click()

        expect(page).to_have_url(re.compile(rf"/desk/cases/{cases['mine'].reference}/"))
        expect(page.locator("#case-title")).to_have_text("Order of mine")

        box = page.get_by_role("searchbox", name="Search cases, customers and messages")
        box.fill(cases["mine"].reference.lower())
        box.press("Enter")
        expect(page).to_have_url(re.compile(rf"/desk/cases/{cases['mine'].reference}/$"))
        assert page.problems == []
