"""Two agents at two browsers on a live ASGI server: queues, claims, presence and a stale draft, live.

Runs against daphne (``ChannelsLiveServerTestCase`` forks it), so the pages hold real
websockets. Events the test itself causes (a customer writing) are published from this
process, so the channel layer must be one both processes share: Redis.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings
from playwright.sync_api import expect

from cases import services
from cases.models import Case, Membership, Message
from config.celery import app as celery_app
from connectors import registry
from tests import factories
from tests.browser.conftest import SCREENSHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        "redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower(),
        reason="the live server and the test publish through a shared channel layer: set REDIS_URL",
    ),
]


def in_thread(work):
    """Run ``work`` off the main thread: Playwright's event loop runs there, and services
    publish with async_to_sync, which refuses to run inside a running loop."""

    def run():
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


# A private cache for the server process (presence and reply locks live there), tasks
# inline so a reply is "sent" by a scripted connector instead of a platform.
@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
class LiveDeskTest(ChannelsLiveServerTestCase):
    host = "127.0.0.1"
    serve_static = True

    @classmethod
    def setUpClass(cls):
        cls._eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
        cls._x_connector = registry.CONNECTORS["x"]
        registry.CONNECTORS["x"] = "tests.scripted_connector"
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
        registry.CONNECTORS["x"] = cls._x_connector

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def signed_in_page(self, user):
        """A browser context of its own for ``user``, signed in through a session cookie."""
        client = Client()  # one each: signing a second user into a client ends the first's session
        client.force_login(user)
        context = self.browser.new_context(viewport={"width": 1360, "height": 900})
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
              "url": self.live_server_url}]
        )  # fmt: skip
        page = context.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.problems = problems
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
            expect(page.locator("#live-dot")).to_have_class(re.compile("is-live"))
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
        a.screenshot(path=f"{SCREENSHOTS}/live-case-after-reply.png", full_page=True)

        refusals = [text for text in b.problems if "status of 409" in text]
        assert len(refusals) == 1  # the stale draft, and nothing else went wrong on either page
        assert a.problems == [] and [text for text in b.problems if text not in refusals] == []
