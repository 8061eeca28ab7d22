"""Incidents and hand-overs in real Chromium against the live ASGI server (daphne with websockets).

- A supervisor opens an incident from the navigation, previews the bulk reply (htmx swaps the
  preview in), sends it (one reply per customer, a resolved case skipped) and closes the
  incident with a note.
- A receiving agent accepts a case escalated to their department from the banner at the top of
  the case; the agent who escalated it, watching the same case, sees the banner go over the
  desk socket.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cases import escalation, services, triage
from cases.models import Case, CaseEvent, Incident, Membership, Message, TriageSettings
from connectors import registry
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, expect_live, in_thread, shared_channel_layer
from tests.desk.conftest import minutes_ago
from tests.sla.factories import EscalationPathFactory

pytestmark = [pytest.mark.browser, shared_channel_layer()]


class IncidentsAndHandOffsTest(BrowserTestCase):
    @classmethod
    def setUpClass(cls):
        # Replies are "sent" by a scripted connector: tasks run inline in the server.
        cls._x_connector = registry.CONNECTORS["x"]
        registry.CONNECTORS["x"] = "tests.scripted_connector"
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        registry.CONNECTORS["x"] = cls._x_connector

    def world(self):
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        billing = factories.DepartmentFactory(name="Billing", slug="billing")
        x = factories.ChannelFactory(kind="x", name="Brand on X", slug="brand-x", department=social)
        factories.ServicePromiseFactory(channel=x, first_response_minutes=60, next_response_minutes=60)
        people = {}
        for name, first, department, role in [
            ("supervisor", "Sam", social, Membership.Role.SUPERVISOR),
            ("agent", "Ana", social, Membership.Role.AGENT),
            ("receiver", "Rae", billing, Membership.Role.AGENT),
        ]:
            people[name] = factories.UserFactory(username=name, first_name=first, last_name="Test")
            factories.MembershipFactory(user=people[name], department=department, role=role)
        return {"social": social, "billing": billing, "x": x, **people}

    def tweet(self, channel, customer, identity, text, minutes):
        case = services.case_open(customer=customer, channel=channel)
        services.message_add(
            case=case, direction="in", kind="post", text=text, channel=channel, identity=identity,
            is_public=True, sent_at=minutes_ago(minutes),
        )  # fmt: skip
        return case

    def surge(self, w):
        TriageSettings.objects.create(surge_min_mentions=3)
        made = {}
        for name, handle in [("Dana Scully", "@dana"), ("Lee Adama", "@lee"), ("Kim Wexler", "@kim")]:
            customer = factories.CustomerFactory(name=name)
            identity = factories.IdentityFactory(
                customer=customer, kind="x", platform_id=f"x-{handle}", handle=handle
            )
            made[handle] = self.tweet(w["x"], customer, identity, f"{name}: the app is down", 3)
        dana = made["@dana"].customer
        made["@dana-again"] = self.tweet(w["x"], dana, dana.identities.get(), "Dana again: still down", 1)
        (incident,) = triage.surge_detect()
        services.case_set_status(case=made["@lee"], status="resolved", actor=w["supervisor"])
        return incident, made

    def test_a_supervisor_answers_everyone_and_closes_the_incident(self):
        w = in_thread(self.world)
        incident, made = in_thread(lambda: self.surge(w))
        page = self.signed_in_page(w["supervisor"])
        page.goto(f"{self.live_server_url}/desk/")

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
        expect(page).to_have_url(re.compile(r"/desk/incidents/$"))
        page.get_by_role("link", name=incident.title).click()
        expect(page).to_have_url(re.compile(rf"/desk/incidents/{incident.pk}/$"))
        expect(page.locator(".mention")).to_have_count(4)
        expect(page.locator(f"#incident-case-{made['@lee'].pk} .bulk-state")).to_contain_text(
            "Skipped: already resolved or closed"
        )
        expect(page.locator(f"#incident-case-{made['@dana'].pk} .bulk-state")).to_contain_text(
            f"answered on {made['@dana-again'].reference}"
        )

        page.get_by_label("Reply", exact=True).fill("Hi {first_name}, we are on it. Ref {reference}.")
        page.get_by_role("button", name="Preview").click()
        kim = made["@kim"]
        expect(page.locator("#bulk-preview-text")).to_have_text(f"Hi Kim, we are on it. Ref {kim.reference}.")
        assert in_thread(lambda: Message.objects.filter(direction="out").count()) == 0
        page.screenshot(path=f"{SCREENSHOTS}/incident-preview.png", full_page=True)

        page.get_by_role("button", name="Send to 2 customers").click()
        expect(page.locator("#messages")).to_contain_text("Reply queued to 2 customers.")
        sent = in_thread(lambda: dict(Message.objects.filter(direction="out").values_list("case_id", "text")))
        assert sent == {
            kim.pk: f"Hi Kim, we are on it. Ref {kim.reference}.",
            made["@dana-again"].pk: f"Hi Dana, we are on it. Ref {made['@dana-again'].reference}.",
        }

        page.get_by_label("Closing note").fill("App servers restarted; all logins work again.")
        page.get_by_role("button", name="Close incident").click()
        expect(page.locator("#incident-status")).to_have_text("Closed")
        expect(page.locator("#incident-close-note")).to_contain_text("App servers restarted")
        expect(page.get_by_role("button", name="Close incident")).to_have_count(0)
        closed = in_thread(lambda: Incident.objects.get(pk=incident.pk))
        assert closed.status == "closed" and closed.closed_by_id == w["supervisor"].pk
        page.screenshot(path=f"{SCREENSHOTS}/incident-closed.png", full_page=True)
        assert page.problems == []

    def test_a_receiving_agent_accepts_a_handed_off_case(self):
        w = in_thread(self.world)

        def escalated():
            EscalationPathFactory(from_department=w["social"], to_department=w["billing"])
            customer = factories.CustomerFactory(name="Robin Vale")
            identity = factories.IdentityFactory(
                customer=customer, kind="x", platform_id="x-robin", handle="@robin"
            )
            case = self.tweet(w["x"], customer, identity, "You charged me twice", 5)
            services.case_claim(case=case, actor=w["agent"])
            return escalation.case_escalate(
                case=case, actor=w["agent"], reason="Refund over the limit", note="Statement attached"
            )

        case = in_thread(escalated)
        # the agent who escalated it keeps following, and watches the case
        sender = self.signed_in_page(w["agent"])
        sender.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
        expect_live(sender)
        expect(sender.locator("#case-handoff")).to_be_visible()
        expect(sender.locator("#case-handoff").get_by_role("button", name="Accept")).to_have_count(0)

        receiver = self.signed_in_page(w["receiver"])
        receiver.goto(f"{self.live_server_url}/desk/?view=department")
        row = receiver.locator(f"#case-row-{case.pk}")
        expect(row).to_contain_text("Awaiting acceptance")
        row.get_by_role("link", name=case.reference).click()

        banner = receiver.locator("#case-handoff")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Escalated from Social Care")
        expect(banner).to_contain_text("Sent by Ana Test")
        expect(banner).to_contain_text("Refund over the limit")
        expect(banner).to_contain_text("Statement attached")
        box = banner.bounding_box()
        assert box is not None and box["y"] < receiver.locator("#case-header").bounding_box()["y"]
        receiver.screenshot(path=f"{SCREENSHOTS}/handoff-banner.png")

        banner.get_by_role("button", name="Accept").click()
        expect(receiver.locator("#case-handoff")).to_be_hidden()
        expect(receiver.locator("#messages")).to_contain_text("it is yours")
        expect(receiver.locator("#case-header .assignee")).to_have_text("Rae Test")
        # the sender's page hears it over the socket
        expect(sender.locator("#case-handoff")).to_be_hidden()
        expect(sender.locator("#case-header .assignee")).to_have_text("Rae Test")
        accepted = in_thread(
            lambda: CaseEvent.objects.filter(case_id=case.pk, kind="accepted").values_list(
                "actor_id", flat=True
            )
        )
        assert list(accepted) == [w["receiver"].pk]
        assert in_thread(lambda: Case.objects.get(pk=case.pk).assignee_id) == w["receiver"].pk
        assert receiver.problems == [] and sender.problems == []
