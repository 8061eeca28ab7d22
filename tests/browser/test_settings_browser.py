"""The settings pages in real Chromium: an admin changes a promise's target and sees the due-time
preview follow as they type (htmx, under the desk's CSP), then saves it and finds the change
in the audit trail on the same page; a bad value is named beside its field.

The expected times are worked out by hand: the office calendar is open 09:00-12:30 and
13:30-18:00 on weekdays in London, with England's public holidays.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from cases import promise_settings
from cases.models import ServicePromise
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase

pytestmark = pytest.mark.browser


class SettingsPages(BrowserTestCase):
    """The office calendar and a promise on it, and an admin's browser.

    One test per class: the forked server caches content types, whose ids the flush after
    a test of a TransactionTestCase renews, and every save here writes an audit entry
    naming its content type. A class of its own forks a server with the current ones.
    """

    __test__ = False

    def setUp(self):
        self.admin = factories.UserFactory(
            username="ada", first_name="Ada", last_name="Admin", email="ada@example.test", is_staff=True
        )
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        self.channel = factories.ChannelFactory(
            kind="x", name="Brand on X", slug="brand-x", department=social
        )
        office = promise_settings.calendar_save(
            calendar=None,
            actor=self.admin,
            name="Office",
            time_zone="Europe/London",
            always_open=False,
            weekly_hours={str(day): [["09:00", "12:30"], ["13:30", "18:00"]] for day in range(1, 6)},
            holiday_country="GB",
            extra_closed_dates=[],
        )
        promise_settings.promise_save(
            channel=self.channel,
            actor=self.admin,
            calendar=office,
            first_response_minutes=60,
            next_response_minutes=60,
            resolution_minutes=480,
            at_risk_ratio=Decimal("0.75"),
            priority_overrides={},
        )


class PromisePreviewTest(SettingsPages):
    __test__ = True

    def test_an_admin_changes_a_target_and_the_preview_follows(self):
        page = self.signed_in_page(self.admin, height=1000)

        # given the channel's settings, previewing a tweet on Friday 4 December 2026 at 17:55:
        # 5 minutes before closing, the other 55 from 09:00 on Monday
        page.goto(f"{self.live_server_url}/desk/")
        page.get_by_role("link", name="Settings", exact=True).click()
        page.get_by_role("link", name="Brand on X").click()
        due = page.locator("#preview-result .preview-due")
        page.get_by_label("A first message arriving at").fill("2026-12-04T17:55")
        expect(due).to_have_text("Monday 7 Dec 09:55")

        # when the admin types a longer first response target, before saving
        page.get_by_label("First response target").fill("120")
        # then the preview follows: 5 minutes on Friday, 115 from 09:00 on Monday
        expect(due).to_have_text("Monday 7 Dec 10:55")

        # and when the arrival moves to Christmas Eve: Christmas Day, the weekend and the Boxing
        # Day holiday (Monday 28th) are skipped
        page.get_by_label("A first message arriving at").fill("2026-12-24T17:55")
        expect(due).to_have_text("Tuesday 29 Dec 10:55")
        page.screenshot(path=f"{SCREENSHOTS}/settings-channel-preview.png", full_page=True)

        # when the admin saves, the change is in the audit trail beside the form
        page.get_by_role("button", name="Save promise").click()
        expect(page.locator("#messages")).to_contain_text("The promise of Brand on X is saved.")
        entry = page.locator("#audit .audit-entry").first
        expect(entry).to_contain_text("Ada Admin")
        expect(entry).to_contain_text("First response target: 60 min → 120 min")
        assert ServicePromise.objects.get(channel=self.channel).first_response_minutes == 120

        # and a bad share is named beside its field, and not saved
        page.get_by_label("At-risk share").fill("1.5")
        expect(page.locator("#preview-result")).to_contain_text("Fix the promise to preview it")
        page.get_by_role("button", name="Save promise").click()
        expect(page.get_by_label("At-risk share")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(".field.has-error")).to_contain_text(
            "At-risk share must be between 0.01 and 0.99"
        )
        page.screenshot(path=f"{SCREENSHOTS}/settings-channel-refused.png", full_page=True)
        assert ServicePromise.objects.get(channel=self.channel).at_risk_ratio == Decimal("0.75")

        # no console errors but the refused form's own 400: the preview works under the desk's
        # CSP (no inline script or eval)
        assert [p for p in page.problems if "status of 400" not in p] == [], page.problems


class CalendarHoursTest(SettingsPages):
    __test__ = True

    def test_an_admin_edits_a_calendars_hours(self):
        page = self.signed_in_page(self.admin, height=1000)
        page.goto(f"{self.live_server_url}/desk/settings/")
        expect(page.locator(f'tr[data-channel="{self.channel.pk}"]')).to_contain_text("60 min")
        page.screenshot(path=f"{SCREENSHOTS}/settings-index.png", full_page=True)
        page.get_by_role("link", name="Office").first.click()

        page.get_by_label("Saturday").fill("10:00-14:00")
        page.get_by_label("Monday").fill("9am to 5")
        page.get_by_role("button", name="Save calendar").click()
        expect(page.locator(".hours-row.has-error")).to_contain_text(
            "Monday: “9am to 5” is not a span like 09:00-17:30."
        )

        page.get_by_label("Monday").fill("08:30-12:00, 13:00-17:00")
        page.get_by_role("button", name="Save calendar").click()
        expect(page.locator("#messages")).to_contain_text("The calendar “Office” is saved.")
        expect(page.get_by_label("Monday")).to_have_value("08:30-12:00, 13:00-17:00")
        expect(page.locator("#audit .audit-entry").first).to_contain_text("Ada Admin")
        expect(page.locator("#audit .audit-entry").first).to_contain_text(
            "Saturday hours: closed → 10:00-14:00"
        )
        page.screenshot(path=f"{SCREENSHOTS}/settings-calendar.png", full_page=True)
        assert [p for p in page.problems if "status of 400" not in p] == [], page.problems
