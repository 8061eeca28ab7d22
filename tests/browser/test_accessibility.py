"""Accessibility: axe-core (tests/browser/vendor/axe.min.js) over the desk's main pages in
Chromium, light and dark: the queue, a case page, the supervisors' board, the report pages,
and the settings pages (an admin's and My settings). No serious or critical violation.

axe is injected with ``page.add_script_tag``, an inline script: the pages' CSP forbids those,
so these contexts bypass CSP (the other browser tests keep it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from cases import services
from cases.models import EscalationPath
from tests import factories
from tests.browser.conftest import SCREENSHOTS
from tests.browser.live import BrowserTestCase, expect_live, in_thread, shared_channel_layer
from tests.desk.conftest import crossed_case

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")

pytestmark = [pytest.mark.browser, shared_channel_layer()]


def readable(violations: list[dict]) -> str:
    """Each violation with its rule, impact, help link and the elements at fault."""
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:10]:
            lines.append(f"    at {' '.join(node['target'])}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " | ")
            if summary:
                lines.append(f"       {summary[:300]}")
        if len(v["nodes"]) > 10:
            lines.append(f"    ... and {len(v['nodes']) - 10} more")
    return "\n".join(lines)


class AccessibilityTest(BrowserTestCase):
    def setUp(self):
        social = factories.DepartmentFactory(name="Social Care", slug="social-care")
        billing = factories.DepartmentFactory(name="Billing", slug="billing")
        EscalationPath.objects.create(from_department=social, to_department=billing)
        self.agent = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
        factories.MembershipFactory(user=self.agent, department=social, role="agent")
        self.boss = factories.UserFactory(username="boss", first_name="Mira", last_name="Chen")
        factories.MembershipFactory(user=self.boss, department=social, role="supervisor")
        self.admin = factories.UserFactory(
            username="root", first_name="Ada", last_name="Admin", is_superuser=True
        )
        self.channels = {}
        for kind, name in [("x", "Brand on X"), ("facebook", "Brand page"), ("instagram", "Brand on Instagram"),
                           ("whatsapp", "Brand WhatsApp"), ("email", "Support mailbox"), ("phone", "Support line")]:  # fmt: skip
            self.channels[kind] = factories.ChannelFactory(
                kind=kind, name=name, slug=f"brand-{kind}", department=social
            )
            factories.ServicePromiseFactory(
                channel=self.channels[kind], first_response_minutes=60, next_response_minutes=60
            )

    def audit(self, page, name: str) -> list[str]:
        """Run axe on the page as shown; the serious and critical violations, readable."""
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        blocking = [v for v in result["violations"] if v["impact"] in BLOCKING]
        page.screenshot(path=f"{SCREENSHOTS}/a11y-{name}.png", full_page=True)
        return [f"--- {name} ({page.url}):\n{readable(blocking)}"] if blocking else []

    def world(self):
        case, _ = crossed_case(self.channels, self.agent)
        for n, subject in enumerate(["Seat refund for CL208", "Pram damaged on arrival", "Lounge access"]):
            customer = factories.CustomerFactory(tier="vip" if n == 1 else "standard")
            identity = factories.IdentityFactory(customer=customer, kind="x", platform_id=str(6000 + n))
            other = services.case_open(customer=customer, channel=self.channels["x"], subject=subject)
            services.message_add(
                case=other, direction="in", kind="post", channel=self.channels["x"], identity=identity,
                is_public=True, text=subject,
            )  # fmt: skip
            if n == 0:
                services.case_claim(case=other, actor=self.agent)
        return case

    def test_no_serious_or_critical_violations_on_the_main_pages(self):
        case = in_thread(self.world)
        found: list[str] = []
        for scheme in ("light", "dark"):
            agent = self.signed_in_page(self.agent, color_scheme=scheme, bypass_csp=True)
            agent.goto(f"{self.live_server_url}/desk/?view=department")
            expect(agent.locator(f'tr[data-case="{case.reference}"]')).to_be_visible()
            found += self.audit(agent, f"queue-{scheme}")

            agent.goto(f"{self.live_server_url}/desk/cases/{case.reference}/")
            expect_live(agent)
            found += self.audit(agent, f"case-{scheme}")

            agent.goto(f"{self.live_server_url}/desk/me/settings/")
            found += self.audit(agent, f"my-settings-{scheme}")
            agent.keyboard.press("?")
            expect(agent.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
            found += self.audit(agent, f"shortcuts-{scheme}")

            boss = self.signed_in_page(self.boss, color_scheme=scheme, bypass_csp=True)
            boss.goto(f"{self.live_server_url}/desk/board/")
            expect(boss.locator("#board-live")).to_contain_text("Social Care")
            found += self.audit(boss, f"board-{scheme}")
            for path, name in [("/desk/reports/", "reports"), ("/desk/reports/promises/", "report-promises")]:
                boss.goto(f"{self.live_server_url}{path}")
                found += self.audit(boss, f"{name}-{scheme}")

            admin = self.signed_in_page(self.admin, color_scheme=scheme, bypass_csp=True)
            admin.goto(f"{self.live_server_url}/desk/settings/")
            found += self.audit(admin, f"settings-{scheme}")
            admin.goto(f"{self.live_server_url}/desk/settings/channels/{self.channels['x'].pk}/")
            found += self.audit(admin, f"settings-channel-{scheme}")
            for page in (agent, boss, admin):
                page.context.close()

        assert not found, "axe found serious or critical violations:\n" + "\n".join(found)
