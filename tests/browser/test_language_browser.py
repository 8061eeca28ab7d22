"""The language chooser in real Chromium, under the desk's CSP: a visitor picks Deutsch on the
sign-in page, signs in in German, finds the desk in German and switches back to English from
the top bar; no console error on the way (a refused inline script or style would be one)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from cases.models import Membership
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase
from tests.desk.conftest import PASSWORD

pytestmark = pytest.mark.browser


class LanguageChooserTest(BrowserTestCase):
    def setUp(self):
        department = factories.DepartmentFactory(name="Social Care", slug="social-care")
        self.agent = factories.UserFactory(username="lena", email="lena@example.test", first_name="Lena")
        self.agent.set_password(PASSWORD)
        self.agent.save()
        factories.MembershipFactory(user=self.agent, department=department, role=Membership.Role.AGENT)

    def test_a_visitor_signs_in_in_german_and_switches_back_to_english(self):
        page = self.signed_out_page(locale="en-GB")

        # given the sign-in page in the browser's English
        page.goto(f"{self.live_server_url}/accounts/login/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        # when the visitor chooses Deutsch
        page.get_by_label("Language").select_option("de")
        page.get_by_role("button", name="Change language").click()

        # then the same page is German, and so is signing in
        expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "de")
        page.get_by_label("E-Mail").fill(self.agent.email)
        page.get_by_label("Passwort").fill(PASSWORD)
        page.get_by_role("button", name="Anmelden", exact=True).click()
        expect(page.get_by_role("link", name="Meine Einstellungen")).to_be_visible()
        expect(page.get_by_label("Sprache")).to_have_value("de")
        page.screenshot(path=str(SCREENSHOTS / "language-desk-de.png"))

        # and from the top bar, English again
        page.get_by_label("Sprache").select_option("en")
        page.get_by_role("button", name="Sprache wechseln").click()
        expect(page.get_by_role("link", name="My settings")).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        assert page.problems == []
        page.context.close()
