"""The search box in real Chromium: type in the header's box, read the results (escaped snippet,
highlighted word), open a result, and jump straight to a case by its reference."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cases import services
from cases.models import Membership
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, in_thread

pytestmark = pytest.mark.browser


class SearchBoxTest(BrowserTestCase):
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
