"""The desk's main pages on the demo contact centre, in real Chromium against a live ASGI
server: each renders, holds its live socket and logs no error. With ``CASELINE_SCREENSHOTS_DIR``
set, each is also saved there as a PNG 1280 pixels wide (the README's pictures):

    CASELINE_SCREENSHOTS_DIR=docs/screenshots .venv/bin/pytest tests/browser/test_screenshots.py
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count
from playwright.sync_api import expect

from cases import demo
from cases.models import Case
from tests.browser.live import BrowserTestCase, expect_live, in_thread

pytestmark = pytest.mark.browser

WIDTH = 1280


def png_size(path: Path) -> tuple[int, int]:
    with path.open("rb") as image:
        header = image.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


class DemoPagesTest(BrowserTestCase):
    @pytest.fixture(autouse=True)
    def _out(self):
        out = os.environ.get("CASELINE_SCREENSHOTS_DIR", "")
        self.out = Path(out) if out else None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)

    def signed_in_as(self, email: str):
        """A page the README's width, signed in as the demo user with this e-mail."""
        return self.signed_in_page(get_user_model().objects.get(email=email), width=WIDTH, height=860)

    def shoot(self, page, name: str, *, full_page: bool) -> None:
        expect_live(page)
        assert page.problems == []
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # nothing scrolls sideways
        if self.out is None:
            return
        path = self.out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        assert png_size(path)[0] == WIDTH

    def test_queue_case_and_board_render_on_the_demo(self):
        in_thread(demo.seed_demo, timeout=300)
        agent_email, supervisor_email, _ = demo.DEMO_LOGINS
        agent = get_user_model().objects.get(email=agent_email)
        # the demo agent's conversation that crossed the most channels
        case = (
            Case.objects.filter(assignee=agent)
            .annotate(kinds=Count("messages__channel__kind", distinct=True), count=Count("messages"))
            .order_by("-kinds", "-count", "reference")
            .first()
        )

        # the agent's queue
        queue = self.signed_in_as(agent_email)
        queue.goto(f"{self.live_server_url}/desk/?view=department")
        rows = queue.locator("#queue-rows tr[data-case]")
        expect(rows.first).to_be_visible()
        assert rows.count() > 10
        self.shoot(queue, "queue", full_page=False)

        # the case: every message in the timeline, the customer panel, the clocks
        page = self.signed_in_as(agent_email)
        page.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
        expect(page.locator("#timeline > li.entry")).to_have_count(case.count)
        expect(page.locator("#customer-panel")).to_contain_text(str(case.customer))
        expect(page.locator("#case-header")).to_contain_text(case.reference)
        self.shoot(page, "case", full_page=True)

        # the supervisor's board
        board = self.signed_in_as(supervisor_email)
        board.goto(f"{self.live_server_url}/desk/board/")
        expect(board.locator("#board-live tr[data-department]").first).to_be_visible()
        expect(board.locator("#board-live")).to_contain_text("Social Care")
        expect(board.locator("table.picked tbody tr").first).to_be_visible()
        board.set_viewport_size({"width": WIDTH, "height": 1100})  # the figures, and the first cases to pick
        self.shoot(board, "board", full_page=False)

    def test_reports_settings_and_my_settings_render_on_the_demo(self):
        in_thread(demo.seed_demo, timeout=300)
        agent_email, supervisor_email, admin_email = demo.DEMO_LOGINS

        # the supervisor's report charts: every figure drawn
        reports = self.signed_in_as(supervisor_email)
        reports.goto(f"{self.live_server_url}/desk/reports/")
        expect(reports.locator("svg[role=img]")).to_have_count(5)
        self.shoot(reports, "reports", full_page=True)

        # the admin's service promise settings of the X channel, with the preview
        from connectors.models import Channel

        channel = Channel.objects.filter(kind="x").order_by("pk").first()
        settings_page = self.signed_in_as(admin_email)
        settings_page.goto(f"{self.live_server_url}/desk/settings/channels/{channel.pk}/")
        expect(settings_page.locator("main")).to_contain_text(channel.name)
        self.shoot(settings_page, "settings", full_page=True)

        # an agent's own settings, in the dark theme
        mine = self.signed_in_as(agent_email)
        mine.emulate_media(color_scheme="dark")
        mine.goto(f"{self.live_server_url}/desk/me/settings/")
        expect(mine.locator("main")).to_contain_text("notifications")
        self.shoot(mine, "my-settings-dark", full_page=False)
