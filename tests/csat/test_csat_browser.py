"""Satisfaction surveys in real Chromium against the live ASGI server: the customer opens the
link they were sent and answers; the agent watching the case sees the answer arrive live; the
supervisor reads it on the CSAT report."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import override_settings
from playwright.sync_api import expect

from cases import services
from cases.models import Membership, SatisfactionSurvey
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, expect_live, in_thread, shared_channel_layer
from tests.desk.conftest import minutes_ago

pytestmark = [
    pytest.mark.browser,
    shared_channel_layer(
        reason="the agent's page is pushed through the channel layer the live server shares: set REDIS_URL"
    ),
]


class SurveyInTheBrowserTest(BrowserTestCase):
    def world(self):
        care = factories.DepartmentFactory(name="Social Care", slug="social-care")
        mailbox = factories.ChannelFactory(
            kind="email", name="Support mailbox", slug="support-mail", department=care,
            account_id="support@brand.example.test",
        )  # fmt: skip
        factories.ServicePromiseFactory(channel=mailbox)
        agent = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
        factories.MembershipFactory(user=agent, department=care, role=Membership.Role.AGENT)
        boss = factories.UserFactory(username="sam", first_name="Sam", last_name="Boss")
        factories.MembershipFactory(user=boss, department=care, role=Membership.Role.SUPERVISOR)
        customer = factories.CustomerFactory(name="Riley Vale")
        identity = factories.IdentityFactory(
            customer=customer, kind="email", platform_id="riley@example.test", handle="riley@example.test"
        )
        case = services.case_open(customer=customer, channel=mailbox, subject="Parcel never came")
        services.message_add(
            case=case, direction="in", kind="email", text="Where is my parcel?", channel=mailbox,
            identity=identity, sent_at=minutes_ago(30),
        )  # fmt: skip
        services.case_claim(case=case, actor=agent)
        return case, agent, boss

    def resolve(self, case, agent):
        with override_settings(CASELINE_CSAT_ENABLED=True, PUBLIC_URL=self.live_server_url):
            services.case_set_status(case=case, status="resolved", actor=agent)
        return SatisfactionSurvey.objects.select_related("message").get(case=case)

    def test_the_customer_answers_and_the_desk_sees_it(self):
        case, agent, boss = in_thread(self.world, timeout=60)

        # the agent has the case open, connected
        desk = self.signed_in_page(agent, width=1280)
        desk.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
        expect_live(desk)

        # when the case is resolved, the customer is mailed the survey
        survey = in_thread(lambda: self.resolve(case, agent), timeout=60)
        expect(desk.locator(f"#message-{survey.message_id}")).to_contain_text("How did we do?")
        [sent] = mail.outbox
        link = re.search(rf"{re.escape(self.live_server_url)}/s/[^/\s]+/", sent.body).group(0)

        # the customer opens the link (no sign-in) and answers
        customer = self.signed_out_page(width=1280)
        customer.goto(link)
        expect(customer.get_by_role("heading", name="How did we do?")).to_be_visible()
        customer.get_by_role("button", name="Send my answer").click()
        expect(customer.locator("#error-rating")).to_contain_text("Your rating: This field is required.")
        customer.get_by_label("4 — Satisfied").check()
        customer.get_by_label("Anything you would like to add?").fill("Found it with the neighbours, thanks!")
        customer.screenshot(path=f"{SCREENSHOTS}/csat-survey.png")
        customer.get_by_role("button", name="Send my answer").click()
        expect(customer.get_by_role("heading", name="Thank you")).to_be_visible()
        expect(customer.locator(".csat-thanks")).to_contain_text("You rated us 4 out of 5")
        customer.screenshot(path=f"{SCREENSHOTS}/csat-thanks.png")

        # the agent's timeline shows the answer, pushed live, in the customer's name
        answer = desk.locator(".entry-csat")
        expect(answer).to_contain_text("★★★★☆ Rated 4 out of 5")
        expect(answer).to_contain_text("Found it with the neighbours, thanks!")
        expect(answer.locator(".entry-author")).to_contain_text("riley@example.test")
        desk.screenshot(path=f"{SCREENSHOTS}/csat-case.png")

        # the supervisor reads it on the report
        report = self.signed_in_page(boss, width=1280)
        report.goto(f"{self.live_server_url}/desk/reports/")
        report.get_by_role("link", name="Satisfaction").click()
        expect(report).to_have_url(re.compile(r"/desk/reports/csat/$"))
        expect(report.locator("#csat-sent")).to_have_text("1")
        expect(report.locator("#csat-average")).to_have_text("4.0")
        expect(report.locator("#csat-score")).to_have_text("100.0%")
        channel_row = report.locator("#csat-by-channel tbody tr")
        expect(channel_row).to_have_count(1)
        expect(channel_row).to_contain_text("Support mailbox")
        expect(report.locator("#csat-by-agent tbody tr")).to_contain_text("Ana Lima")
        expect(report.locator("#csat-comments")).to_contain_text("Found it with the neighbours, thanks!")
        report.screenshot(path=f"{SCREENSHOTS}/csat-report.png", full_page=True)

        assert desk.problems == [] and report.problems == []
        # the one the test asked for: the empty answer, refused with 400
        assert customer.problems == [
            "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        ]
