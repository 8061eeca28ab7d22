"""Desk comforts in Chromium over the live server: desktop notifications over the socket,
keyboard shortcuts, and the theme (dark mode).

Notifications: the browser context is granted the permission and ``window.Notification`` is
wrapped by an init script that records every notice (and every chime played), so the test
reads what the page would have shown. Events are caused from this process through the
services (another session's work), published over the shared Redis channel layer.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from cases import preferences, services, sla
from cases.models import Case, DeskPreferences, EscalationPath
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, expect_live, in_thread, shared_channel_layer

pytestmark = [pytest.mark.browser, shared_channel_layer()]

# Records what the page asks the browser to show or play; the real API still answers.
RECORD_NOTICES = """
(() => {
  const Real = window.Notification;
  window.__notices = [];
  window.__chimes = 0;
  function Recording(title, options) {
    window.__notices.push({ title: title, body: (options || {}).body || "", tag: (options || {}).tag || "" });
    try { return new Real(title, options); } catch (e) { return { close() {} }; }
  }
  Object.defineProperty(Recording, "permission", { get: () => Real.permission });
  Recording.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recording;
  HTMLMediaElement.prototype.play = function () { window.__chimes += 1; return Promise.resolve(); };
})();
"""

BG_LIGHT = "rgb(245, 246, 248)"
BG_DARK = "rgb(15, 20, 27)"


class ComfortsTest(BrowserTestCase):
    def setUp(self):
        self.social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        self.billing = factories.DepartmentFactory(name="Billing", slug="billing")
        self.channel = factories.ChannelFactory(
            kind="x", name="Brand on X", slug="brand-x", department=self.social
        )
        factories.ServicePromiseFactory(
            channel=self.channel, first_response_minutes=60, next_response_minutes=60
        )
        self.ana = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
        self.ben = factories.UserFactory(username="ben", first_name="Ben", last_name="Okafor")
        self.boss = factories.UserFactory(username="boss", first_name="Mira", last_name="Chen")
        for user, role in ((self.ana, "agent"), (self.ben, "agent"), (self.boss, "supervisor")):
            factories.MembershipFactory(user=user, department=self.social, role=role)
        EscalationPath.objects.create(from_department=self.social, to_department=self.billing)

    def open_case(self, subject: str, *, assignee=None, n: int = 0) -> Case:
        def work():
            customer = factories.CustomerFactory(name=f"Customer {subject}")
            identity = factories.IdentityFactory(customer=customer, kind="x", platform_id=str(9000 + n))
            case = services.case_open(customer=customer, channel=self.channel, subject=subject)
            services.message_add(
                case=case, direction="in", kind="post", text=subject, channel=self.channel, identity=identity,
                is_public=True,
            )  # fmt: skip
            if assignee is not None:
                services.case_claim(case=case, actor=assignee)
            return Case.objects.get(pk=case.pk)

        return in_thread(work)

    @staticmethod
    def notices(page, count: int, timeout: float = 10.0) -> list[dict]:
        """The notices the page showed, once there are ``count`` (CSP forbids wait_for_function)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = page.evaluate("window.__notices")
            if len(shown) >= count or time.monotonic() > deadline:
                return shown
            page.wait_for_timeout(100)

    def test_notifications_for_my_assignments_risks_and_replies_and_none_when_off(self):
        in_thread(lambda: preferences.preferences_save(
            user=self.ana, notify_assigned=True, notify_at_risk=True, notify_replies=True, sound=True, theme="system"
        ))  # fmt: skip
        in_thread(lambda: preferences.preferences_save(
            user=self.ben, notify_assigned=False, notify_at_risk=False, notify_replies=False, sound=True,
            theme="system",
        ))  # fmt: skip
        first = self.open_case("Lost bag at LHR", n=1)
        second = self.open_case("Seat refund", n=2)

        # given Ana on her settings page (not a queue) in a browser that allows notifications
        ana = self.signed_in_page(self.ana, permissions=("notifications",), init_script=RECORD_NOTICES)
        ana.goto(f"{self.live_server_url}/desk/me/settings/")
        expect_live(ana)
        expect(ana.locator("#notify-permission-state")).to_have_text("Notifications are on in this browser.")
        expect(ana.get_by_role("button", name="Turn on notifications")).to_be_hidden()
        # and Ben, with every notification off, on his own cases
        ben = self.signed_in_page(self.ben, permissions=("notifications",), init_script=RECORD_NOTICES)
        ben.goto(f"{self.live_server_url}/desk/?view=mine")
        expect_live(ben)

        # when the supervisor assigns a case to Ana from another session
        in_thread(lambda: services.case_assign(case=first, assignee=self.ana, actor=self.boss))

        # then Ana's browser shows a notice naming the case, with the chime
        shown = self.notices(ana, 1)
        assert [n["title"] for n in shown] == [f"{first.reference} is assigned to you"]
        assert shown[0]["body"] == "Lost bag at LHR — Customer Lost bag at LHR"
        assert ana.evaluate("window.__chimes") == 1

        # when the customer writes again on her case, and when it turns at risk
        in_thread(lambda: services.message_add(
            case=Case.objects.get(pk=first.pk), direction="in", kind="post", text="Any news?", channel=self.channel,
            identity=Case.objects.get(pk=first.pk).customer.identities.first(), is_public=True,
        ))  # fmt: skip
        shown = self.notices(ana, 2)
        assert shown[1]["title"] == f"{first.reference}: the customer replied"
        due = Case.objects.get(pk=first.pk).due_at
        in_thread(lambda: sla.sla_sweep(now=due - (due - Case.objects.get(pk=first.pk).at_risk_at) / 2))
        shown = self.notices(ana, 3)
        assert shown[2]["title"] == f"{first.reference} is at risk of breaking its promise"
        ana.screenshot(path=f"{SCREENSHOTS}/comforts-settings-notifications.png", full_page=True)

        # when Ana takes a case herself, that is no news to her
        in_thread(lambda: services.case_claim(case=second, actor=self.ana))
        # and when a case is assigned to Ben, his queue shows it (the push reached him) but no notice
        third = self.open_case("Pram damaged", n=3)
        in_thread(lambda: services.case_assign(case=third, assignee=self.ben, actor=self.boss))
        expect(ben.locator(f'tr[data-case="{third.reference}"]')).to_be_visible()
        assert ben.evaluate("window.__notices") == []
        assert ben.evaluate("window.__chimes") == 0
        assert len(self.notices(ana, 4, timeout=1.0)) == 3
        assert ana.problems == [] and ben.problems == []

    def test_the_permission_is_asked_only_from_the_button(self):
        page = self.signed_in_page(self.ana)
        page.goto(f"{self.live_server_url}/desk/me/settings/")
        expect_live(page)
        # not granted yet: the page says so and offers the button (nothing was asked on load)
        expect(page.locator("#notify-permission-state")).to_have_text(
            "Desktop notifications need your browser's permission."
        )
        button = page.get_by_role("button", name="Turn on notifications")
        expect(button).to_be_visible()
        page.context.grant_permissions(["notifications"], origin=self.live_server_url)
        button.click()
        expect(page.locator("#notify-permission-state")).to_have_text("Notifications are on in this browser.")
        expect(button).to_be_hidden()

    # --- keyboard shortcuts -----------------------------------------------------------------------

    def test_queue_shortcuts_move_through_the_cases_and_open_one(self):
        cases = [self.open_case(subject, n=n) for n, subject in enumerate(["One", "Two", "Three"])]
        page = self.signed_in_page(self.ana)
        page.goto(f"{self.live_server_url}/desk/?view=department")
        expect_live(page)
        rows = page.locator("#queue-rows tr[data-case]")
        expect(rows).to_have_count(3)
        order = rows.evaluate_all("rows => rows.map(r => r.dataset.case)")
        assert sorted(order) == sorted(c.reference for c in cases)
        current = page.locator("#queue-rows tr.is-current")

        page.keyboard.press("j")
        expect(current).to_have_attribute("data-case", order[0])
        expect(page.locator(f'tr[data-case="{order[0]}"] a.ref')).to_be_focused()
        page.keyboard.press("j")
        page.keyboard.press("j")
        page.keyboard.press("j")  # stays on the last
        expect(current).to_have_attribute("data-case", order[2])
        page.keyboard.press("k")
        expect(current).to_have_attribute("data-case", order[1])
        page.screenshot(path=f"{SCREENSHOTS}/comforts-queue-current-row.png")

        page.keyboard.press("o")
        expect(page).to_have_url(re.compile(rf"/desk/cases/{order[1]}/$"))

        page.keyboard.press("g")
        page.keyboard.press("q")
        expect(page).to_have_url(re.compile(r"/desk/$"))
        expect_live(page)
        page.keyboard.press("j")
        page.evaluate("document.activeElement.blur()")  # a selection without focus: Enter opens it
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(rf"/desk/cases/{order[0]}/$"))

    def test_case_shortcuts_reply_note_assign_escalate_and_the_list(self):
        case = self.open_case("Router keeps dropping", n=7)
        page = self.signed_in_page(self.ana)
        page.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
        expect_live(page)

        page.keyboard.press("r")
        expect(page.locator("#reply-text")).to_be_focused()
        expect(page.get_by_role("tab", name="Reply to customer")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#reply-text")).to_have_value("")  # the key itself was not typed

        page.locator("#reply-text").blur()
        page.keyboard.press("n")
        note = page.locator(".note-form textarea")
        expect(note).to_be_focused()
        expect(page.get_by_role("tab", name="Internal note")).to_have_attribute("aria-selected", "true")

        # inside a text field the keys are text: nothing is assigned, no list opens
        note.press_sequentially("a e ? gq j")
        expect(note).to_have_value("a e ? gq j")
        expect(page.locator("#shortcuts-help")).not_to_be_visible()
        expect(page).to_have_url(re.compile(rf"/desk/cases/{case.reference}/$"))
        assert Case.objects.get(pk=case.pk).assignee_id is None
        note.fill("")
        note.blur()

        # a: the case is mine (Claim, as it was nobody's)
        page.keyboard.press("a")
        expect(page.locator("#case-header .assignee")).to_contain_text("Ana Lima")
        assert Case.objects.get(pk=case.pk).assignee_id == self.ana.pk

        # e: the escalation form opens with its reason focused
        page.keyboard.press("e")
        reason = page.locator('#case-actions form[action$="/escalate/"] [name=reason]')
        expect(reason).to_be_visible()
        expect(reason).to_be_focused()
        reason.blur()

        # ?: the list, an accessible modal dialog; Esc closes it and the keys work again
        page.keyboard.press("?")
        dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Assign the case to me")
        page.screenshot(path=f"{SCREENSHOTS}/comforts-shortcuts-dialog.png")
        page.keyboard.press("g")
        page.keyboard.press("q")  # the dialog has the keyboard: no navigation
        expect(page).to_have_url(re.compile(rf"/desk/cases/{case.reference}/$"))
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert page.problems == []

    def test_modifier_keys_and_text_fields_never_fire_shortcuts(self):
        self.open_case("One", n=1)
        page = self.signed_in_page(self.ana)
        page.goto(f"{self.live_server_url}/desk/?view=department")
        expect_live(page)
        current = page.locator("#queue-rows tr.is-current")

        for chord in ("Control+j", "Alt+j", "Meta+j", "Shift+J"):
            page.keyboard.press(chord)
        expect(current).to_have_count(0)

        search = page.get_by_label("Search cases, customers and messages")
        search.click()
        search.press_sequentially("j?gq")
        expect(search).to_have_value("j?gq")
        expect(current).to_have_count(0)
        expect(page.locator("#shortcuts-help")).not_to_be_visible()
        expect(page).to_have_url(re.compile(r"/desk/\?view=department$"))

        page.locator("form[data-autosubmit] select").first.focus()
        page.keyboard.press("j")
        expect(current).to_have_count(0)

    # --- theme ------------------------------------------------------------------------------------

    def background(self, page) -> str:
        return page.evaluate("getComputedStyle(document.body).backgroundColor")

    def test_dark_mode_follows_the_system_and_the_users_choice(self):
        page = self.signed_in_page(self.ana)
        page.emulate_media(color_scheme="dark")
        page.goto(f"{self.live_server_url}/desk/?view=department")
        expect_live(page)
        assert self.background(page) == BG_DARK
        page.screenshot(path=f"{SCREENSHOTS}/comforts-queue-dark.png", full_page=True)
        page.emulate_media(color_scheme="light")
        assert self.background(page) == BG_LIGHT

        # the toggle: Dark on a light system shows at once, and is kept once saved
        page.goto(f"{self.live_server_url}/desk/me/settings/")
        page.get_by_label("Dark").check()
        assert self.background(page) == BG_DARK
        page.get_by_role("button", name="Save my settings").click()
        expect(page.locator("#messages")).to_contain_text("Your settings are saved.")
        assert DeskPreferences.objects.get(user=self.ana).theme == "dark"
        assert page.evaluate("localStorage.getItem('caseline.theme')") == "dark"
        page.goto(f"{self.live_server_url}/desk/?view=department")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        assert self.background(page) == BG_DARK
        page.screenshot(path=f"{SCREENSHOTS}/comforts-settings-dark.png", full_page=True)

        # another browser (nothing in its storage) on a dark system: the socket brings "light"
        in_thread(lambda: preferences.preferences_save(
            user=self.ana, notify_assigned=True, notify_at_risk=True, notify_replies=True, sound=False, theme="light"
        ))  # fmt: skip
        elsewhere = self.signed_in_page(self.ana, color_scheme="dark")
        elsewhere.goto(f"{self.live_server_url}/desk/?view=department")
        expect_live(elsewhere)
        expect(elsewhere.locator("html")).to_have_attribute("data-theme", "light")
        assert self.background(elsewhere) == BG_LIGHT
        assert elsewhere.evaluate("localStorage.getItem('caseline.theme')") == "light"
        # and the first browser, still open, followed the change over its socket
        expect(page.locator("html")).to_have_attribute("data-theme", "light")

        # "Same as the system" drops the override
        elsewhere.goto(f"{self.live_server_url}/desk/me/settings/")
        elsewhere.get_by_label("Same as the system").check()
        elsewhere.get_by_role("button", name="Save my settings").click()
        expect(elsewhere.locator("#messages")).to_contain_text("Your settings are saved.")
        expect(elsewhere.locator("html")).not_to_have_attribute("data-theme", re.compile("."))
        assert self.background(elsewhere) == BG_DARK
