"""The desk in real Chromium: sign in through the form, read the queue, open a crossed case."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS
from tests.desk.conftest import PASSWORD, crossed_case, open_case


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_agent_signs_in_reads_the_queue_and_a_crossed_case(
    live_server, page, agent, channels, billing_channel
):
    # given a case that crossed four channels, and one of another department
    case, in_order = crossed_case(channels, agent)
    elsewhere = open_case(channel=billing_channel, subject="Invoice copy")
    csp_problems = []
    page.on(
        "console",
        lambda msg: csp_problems.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.set_viewport_size({"width": 1280, "height": 900})

    # when the agent signs in through the real form
    page.goto(f"{live_server.url}/desk/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.screenshot(path=f"{SCREENSHOTS}/caseline-login.png")
    page.get_by_label("E-mail").fill("agent@example.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # then the queue shows the department's case, not the other department's
    expect(page.get_by_role("heading", name="Department")).to_be_visible()
    row = page.locator(f'tr[data-case="{case.reference}"]')
    expect(row).to_contain_text("Sam Porter")
    expect(row).to_contain_text("VIP")
    expect(page.locator(f'tr[data-case="{elsewhere.reference}"]')).to_have_count(0)
    page.screenshot(path=f"{SCREENSHOTS}/caseline-queue.png", full_page=True)

    # when they open the case
    row.get_by_role("link", name=case.reference).click()

    # then the timeline reads in the order things were written, each with its channel and form
    expect(page.get_by_role("heading", name="Router keeps dropping")).to_be_visible()
    entries = page.locator("#timeline > li")
    expect(entries).to_have_count(len(in_order))
    ids = [entries.nth(i).get_attribute("id") for i in range(len(in_order))]
    assert ids == [f"message-{m.pk}" for m in in_order]
    expect(entries.nth(0).locator(".entry-head")).to_contain_text("X")
    expect(entries.nth(0).locator(".entry-head")).to_contain_text("Post")
    expect(entries.nth(0).locator(".entry-head")).to_contain_text("Public")
    expect(entries.nth(1).locator(".entry-head")).to_contain_text("Direct message")
    expect(entries.nth(3).locator(".entry-head")).to_contain_text("E-mail")
    expect(entries.nth(4).locator(".entry-head")).to_contain_text("Phone")
    expect(entries.nth(4)).to_contain_text("03:05")
    expect(entries.nth(5).locator(".entry-head")).to_contain_text("Internal note")
    # the countdowns are ticking text from desk.js, not the server's frozen string
    expect(page.locator("#case-header time.countdown").first).to_have_text(
        re.compile(r"^(in .+|.+ overdue)$")
    )
    page.screenshot(path=f"{SCREENSHOTS}/caseline-case.png", full_page=True)

    # when they claim it (htmx swaps the case body in place)
    page.get_by_role("button", name="Claim").click()

    # then the header names them without a reload, and the CSP never had to block anything
    expect(page.locator("#messages")).to_contain_text(f"{case.reference} is yours.")
    expect(page.locator("#case-header")).to_contain_text(agent.get_full_name())
    expect(page.get_by_role("button", name="Claim")).to_have_count(0)
    assert csp_problems == []

    # and the queue reads on a phone-sized screen too
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/desk/?view=mine")
    expect(page.locator(f'tr[data-case="{case.reference}"]')).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/caseline-queue-narrow.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(f"{live_server.url}/desk/cases/{case.reference}/")
    page.screenshot(path=f"{SCREENSHOTS}/caseline-case-narrow.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing scrolls sideways
