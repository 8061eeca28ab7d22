"""The desk in real Chromium against a live ASGI server (daphne, forked by
``ChannelsLiveServerTestCase``), so pages hold real websockets.

- Two agents at two browsers: a new case appears in both queues, a claim leaves the
  other's queue, each sees the other on the case, a stale draft is refused, a reply
  arrives, a dropped connection is announced and what it missed is fetched.
- A tour: sign in through the form, the queue, a case that crossed four channels, the
  customer page, the supervisor board with a live breach alert, narrow screens.

Events the test itself causes (a customer writing, the SLA sweep) are published from
this process, so the channel layer must be one both processes share: Redis.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cases import services, sla
from cases.models import Case, Membership, Message
from connectors import registry
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, expect_live, in_thread, shared_channel_layer
from tests.desk.conftest import PASSWORD, crossed_case, minutes_ago

pytestmark = [pytest.mark.browser, shared_channel_layer()]


class SocketSwitch:
    """The page's websocket through Playwright, so a test can cut it (and refuse reconnects)."""

    def __init__(self, page):
        self.down = False
        self.open: list = []
        page.route_web_socket(re.compile(r"/ws/desk/$"), self._route)

    def _route(self, route):
        if self.down:
            route.close(code=1011, reason="network down")
            return
        server = route.connect_to_server()
        self.open.append((route, server))

    def drop(self):
        self.down = True
        for route, server in self.open:
            server.close()
            route.close(code=1011, reason="network down")
        self.open.clear()

    def restore(self):
        self.down = False


# Tasks inline (see BrowserTestCase), so a reply is "sent" by a scripted connector instead of
# a platform.
class LiveDeskTest(BrowserTestCase):
    @classmethod
    def setUpClass(cls):
        cls._x_connector = registry.CONNECTORS["x"]
        registry.CONNECTORS["x"] = "tests.scripted_connector"
        super().setUpClass()  # forks the server with the connector above

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        registry.CONNECTORS["x"] = cls._x_connector

    def signed_in_page(self, user, **options):
        """A page as BrowserTestCase makes them (signed out for ``None``), whose socket the test
        can cut and restore: ``page.network``."""
        page = super().signed_in_page(user, **options)
        page.network = SocketSwitch(page)
        return page

    def setUp(self):
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        self.channel = factories.ChannelFactory(
            kind="x", name="Brand on X", slug="brand-x", department=social
        )
        factories.ServicePromiseFactory(
            channel=self.channel, first_response_minutes=60, next_response_minutes=60
        )
        self.ana = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
        self.ben = factories.UserFactory(username="ben", first_name="Ben", last_name="Okafor")
        for user in (self.ana, self.ben):
            factories.MembershipFactory(user=user, department=social, role=Membership.Role.AGENT)
        self.customer = factories.CustomerFactory(name="Riley Vale")
        self.identity = factories.IdentityFactory(
            customer=self.customer, kind="x", platform_id="81", handle="@rileyv"
        )

    def customer_writes(self, case, text, kind="dm"):
        return in_thread(
            lambda: services.message_add(
                case=Case.objects.get(pk=case.pk), direction="in", kind=kind, text=text,
                channel=self.channel, identity=self.identity, is_public=kind == "post",
            )
        )  # fmt: skip

    def test_two_agents_see_each_other_live(self):
        a = self.signed_in_page(self.ana)
        b = self.signed_in_page(self.ben)

        # given both agents on their queues, connected
        a.goto(f"{self.live_server_url}/desk/?view=department")
        b.goto(f"{self.live_server_url}/desk/?view=unassigned")
        for page in (a, b):
            expect_live(page)
            expect(page.locator("#live-status")).to_be_hidden()

        # when a customer tweets, a case opens and both queues show it without a reload
        def tweet():
            case = services.case_open(customer=self.customer, channel=self.channel, subject="Lost bag at LHR")
            services.message_add(
                case=case, direction="in", kind="post", text="@brand my bag never arrived", channel=self.channel,
                identity=self.identity, is_public=True,
            )  # fmt: skip
            return case

        case = in_thread(tweet)
        row_a = a.locator(f'tr[data-case="{case.reference}"]')
        row_b = b.locator(f'tr[data-case="{case.reference}"]')
        expect(row_a).to_contain_text("Lost bag at LHR")
        expect(row_b).to_contain_text("Riley Vale")
        expect(row_b).to_contain_text("Unassigned")
        b.screenshot(path=f"{SCREENSHOTS}/live-queue-new-row.png")

        # when A opens the case and claims it, it leaves B's unassigned queue, live
        row_a.get_by_role("link", name=case.reference).click()
        expect(a.get_by_role("heading", name="Lost bag at LHR")).to_be_visible()
        a.get_by_role("button", name="Claim").click()
        expect(a.locator("#messages")).to_contain_text(f"{case.reference} is yours.")
        expect(row_b).to_have_count(0)

        # when B opens the case too, each sees the other there
        b.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
        expect(b.locator("#case-header .assignee")).to_contain_text("Ana Lima")
        expect(b.locator("#presence")).to_contain_text("Ana Lima is viewing")
        expect(a.locator("#presence")).to_contain_text("Ben Okafor is viewing")
        expect(b.get_by_role("button", name="Claim")).to_have_count(0)

        # when B starts a reply, A sees B typing and holding the reply
        b.locator("#reply-text").fill("Hi Riley, so sorry about the bag. Could you DM us your tag number?")
        expect(a.locator("#presence")).to_contain_text("Ben Okafor is typing a reply")
        expect(a.locator("#draft-lock")).to_contain_text("Ben Okafor is writing the reply")
        expect(b.locator("#draft-lock")).to_contain_text("You hold the reply")
        a.screenshot(path=f"{SCREENSHOTS}/live-case-colleague-typing.png", full_page=True)

        # when the customer writes again, B's timeline shows it at once, and B's draft is now stale
        message = self.customer_writes(case, "Tag number is LH 4471, thanks")
        new_entry = b.locator(f"#message-{message.pk}")
        expect(new_entry).to_contain_text("Tag number is LH 4471")
        expect(a.locator(f"#message-{message.pk}")).to_be_visible()
        expect(b.locator(".stale-note")).to_be_visible()

        # then sending the stale draft is refused with a clear message, and the draft is kept
        b.get_by_role("button", name="Send reply").click()
        expect(b.locator("#messages")).to_contain_text("read it before sending")
        expect(b.locator("#reply-text")).to_have_value(re.compile("Could you DM us your tag number"))
        b.screenshot(path=f"{SCREENSHOTS}/live-case-stale-draft.png", full_page=True)
        assert not Message.objects.filter(case=case, direction="out").exists()

        # when B, having seen it, sends again, the reply goes and A sees it arrive
        b.locator("#reply-text").fill("Thanks Riley, we have found bag LH 4471 and it is on its way.")
        b.get_by_role("button", name="Send reply").click()
        expect(b.locator("#messages")).to_contain_text("Reply queued")
        reply = Message.objects.get(case=case, direction="out")
        expect(a.locator(f"#message-{reply.pk}")).to_contain_text("it is on its way")
        expect(a.locator(f"#message-{reply.pk}")).to_contain_text("Sent")
        expect(a.locator("#draft-lock")).not_to_contain_text("Ben Okafor is writing")
        expect(a.locator("#presence")).to_contain_text("Ben Okafor is viewing")
        a.screenshot(path=f"{SCREENSHOTS}/live-case-after-reply.png", full_page=True)

        # when A's connection drops, A is told; what happened meanwhile arrives when it is back
        a.network.drop()
        expect(a.locator("#live-status")).to_be_visible()
        expect(a.locator("#live-status")).to_contain_text("Offline — reconnecting")
        expect(a.locator("#live-dot")).to_have_class(re.compile("is-down"))
        a.screenshot(path=f"{SCREENSHOTS}/live-case-offline.png")
        missed = self.customer_writes(case, "Brilliant, thank you!")
        expect(a.locator(f"#message-{missed.pk}")).to_have_count(0)
        a.network.restore()
        expect(a.locator("#live-status")).to_be_hidden(timeout=20_000)
        expect(a.locator(f"#message-{missed.pk}")).to_contain_text("Brilliant, thank you!")

        refusals = [text for text in b.problems if "status of 409" in text]
        assert len(refusals) == 1  # the stale draft, and nothing else went wrong on either page
        assert [text for text in a.problems if "ERR_INTERNET_DISCONNECTED" not in text] == []
        assert [text for text in b.problems if text not in refusals] == []

    def make_channels(self):
        """One company channel per platform for Social Care, each with a 60-minute promise."""
        social = self.channel.department
        made = {"x": self.channel}
        for kind, name in [
            ("facebook", "Brand page"),
            ("instagram", "Brand on Instagram"),
            ("whatsapp", "Brand WhatsApp"),
            ("email", "Support mailbox"),
            ("phone", "Support line"),
        ]:
            made[kind] = factories.ChannelFactory(
                kind=kind, name=name, slug=f"brand-{kind}", department=social
            )
            factories.ServicePromiseFactory(
                channel=made[kind], first_response_minutes=60, next_response_minutes=60
            )
        return made  # fmt: skip

    def test_tour_of_the_desk(self):
        # services publish after commit; off the main thread (see in_thread)
        case, in_order, elsewhere, boss = in_thread(self.tour_world)
        self.tour(case, in_order, elsewhere, boss)

    def tour_world(self):
        channels = self.make_channels()
        case, in_order = crossed_case(channels, self.ana)
        billing = factories.DepartmentFactory(name="Billing", slug="billing")
        mailbox = factories.ChannelFactory(
            kind="email", name="Billing mailbox", slug="billing-mail", department=billing
        )
        factories.ServicePromiseFactory(channel=mailbox)
        elsewhere = services.case_open(
            customer=factories.CustomerFactory(), channel=mailbox, subject="Invoice copy"
        )
        for n, (minutes, subject) in enumerate(
            [
                (50, "Seat refund for CL208"),
                (95, "Pram damaged on arrival"),
                (5, "Lounge access question"),
                (20, "Name change on booking"),
                (130, "Missed connection in AMS"),
            ]
        ):
            customer = factories.CustomerFactory(tier="vip" if n == 1 else "standard")
            identity = factories.IdentityFactory(customer=customer, kind="x", platform_id=str(5000 + n))
            other = services.case_open(customer=customer, channel=self.channel, subject=subject)
            services.message_add(
                case=other,
                direction="in",
                kind="post",
                channel=self.channel,
                identity=identity,
                is_public=True,
                text=subject,
                sent_at=minutes_ago(minutes),
            )
            if n % 2:
                services.case_claim(case=other, actor=self.ben)  # fmt: skip
        boss = factories.UserFactory(
            username="boss", first_name="Mira", last_name="Chen", email="mira@example.test"
        )
        factories.MembershipFactory(
            user=boss, department=self.channel.department, role=Membership.Role.SUPERVISOR
        )
        self.ana.email = "ana@example.test"
        self.ana.set_password(PASSWORD)
        self.ana.save()
        return case, in_order, elsewhere, boss

    def tour(self, case, in_order, elsewhere, boss):
        # the agent signs in through the real form
        page = self.signed_out_page(width=1280)
        page.goto(f"{self.live_server_url}/desk/")
        expect(page).to_have_url(re.compile(r"/accounts/login/"))
        page.screenshot(path=f"{SCREENSHOTS}/tour-login.png")
        page.get_by_label("E-mail").fill("ana@example.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        # the queue shows the department's cases, soonest due first, and no other department's
        expect(page.get_by_role("heading", name="Department")).to_be_visible()
        row = page.locator(f'tr[data-case="{case.reference}"]')
        expect(row).to_contain_text("Sam Porter")
        expect(row).to_contain_text("VIP")
        expect(page.locator(f'tr[data-case="{elsewhere.reference}"]')).to_have_count(0)
        keys = page.locator("#queue-rows tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
        assert keys == sorted(keys) and len(keys) == 6
        expect_live(page)
        page.screenshot(path=f"{SCREENSHOTS}/tour-queue.png", full_page=True)

        # the crossed case reads in the order things were written, each with its channel and form
        row.get_by_role("link", name=case.reference).click()
        expect(page.get_by_role("heading", name="Router keeps dropping")).to_be_visible()
        entries = page.locator("#timeline > li")
        expect(entries).to_have_count(len(in_order))
        assert [entries.nth(i).get_attribute("id") for i in range(len(in_order))] == [
            f"message-{m.pk}" for m in in_order
        ]
        expect(entries.nth(0).locator(".entry-head")).to_contain_text("Post")
        expect(entries.nth(0).locator(".entry-head")).to_contain_text("Public")
        expect(entries.nth(1).locator(".entry-head")).to_contain_text("Direct message")
        expect(entries.nth(3).locator(".entry-head")).to_contain_text("E-mail")
        expect(entries.nth(4)).to_contain_text("03:05")
        expect(entries.nth(5).locator(".entry-head")).to_contain_text("Internal note")
        expect(page.locator("#case-header time.countdown").first).to_have_text(
            re.compile(r"^(in .+|.+ overdue)$")
        )
        # the X counter counts against 280 on a public reply, and an e-mail reply cannot be public
        page.locator("#reply-channel").select_option(label="Brand on X")
        page.locator("label.vis-public").click()
        page.locator("#reply-text").fill("Hello " * 50)
        expect(page.locator("[data-counter]")).to_have_text("299 / 280")
        expect(page.locator("[data-counter]")).to_have_class(re.compile("is-over"))
        page.locator("#reply-channel").select_option(label="Support mailbox")
        expect(page.locator("label.vis-public input")).to_be_disabled()
        expect(page.locator("label.vis-private input")).to_be_checked()
        page.locator("#reply-text").fill("")
        page.screenshot(path=f"{SCREENSHOTS}/tour-case.png", full_page=True)

        # the customer page: identities with provenance, every case
        page.get_by_role("link", name="profile and all cases").click()
        expect(page.get_by_role("heading", name=re.compile("Sam Porter"))).to_be_visible()
        expect(page.locator("#identities-title + ul")).to_contain_text("Linked by an agent")
        expect(page.locator(f'tr[data-case="{case.reference}"]')).to_be_visible()
        page.screenshot(path=f"{SCREENSHOTS}/tour-customer.png", full_page=True)

        # on a phone-sized screen nothing scrolls sideways
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{self.live_server_url}/desk/?view=department")
        expect(page.locator(f'tr[data-case="{case.reference}"]')).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=f"{SCREENSHOTS}/tour-queue-narrow.png", full_page=True)
        page.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=f"{SCREENSHOTS}/tour-case-narrow.png", full_page=True)

        # the supervisor's board, and a breach alert arriving live
        board = self.signed_in_page(boss)
        board.goto(f"{self.live_server_url}/desk/board/")
        expect(board.locator("#board-live")).to_contain_text("Social Care")
        expect_live(board)
        in_thread(sla.sla_sweep)
        alert = board.locator("#alerts [data-alert]").first
        expect(alert).to_contain_text("broke the service promise")
        expect(board.locator("#board-live tr[data-department] .stat-bad")).to_have_text(
            "2"
        )  # refetched figures
        board.screenshot(path=f"{SCREENSHOTS}/tour-board.png", full_page=True)
        alert.get_by_role("button", name="Dismiss").click()
        expect(board.locator("#alerts [data-alert]")).to_have_count(0)

        assert [text for text in page.problems if "Content Security Policy" in text] == []
        assert board.problems == []
