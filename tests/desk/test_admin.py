"""Admin configuration pages open, search and filter, and refuse bad input with a reason."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from cases.models import BusinessCalendar, CannedReply, EscalationPath, ServicePromise
from tests.desk.conftest import open_case

MODELS = [
    "department",
    "membership",
    "escalationpath",
    "businesscalendar",
    "servicepromise",
    "triagesettings",
    "incident",
    "cannedreply",
    "case",
    "message",
    "caseevent",
    "attachment",
]


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


@pytest.mark.parametrize("model", MODELS)
def test_admin_lists_and_forms_open(admin_client, case, model):
    listing = admin_client.get(reverse(f"admin:cases_{model}_changelist"), {"q": "router"})
    assert listing.status_code == 200
    add = admin_client.get(reverse(f"admin:cases_{model}_add"))
    assert add.status_code in (200, 403)  # the audit trail and the single settings row refuse adding


def test_case_admin_change_page_shows_the_timeline(admin_client, channel):
    case = open_case(channel=channel, subject="Router", text="It blinks red")

    response = admin_client.get(reverse("admin:cases_case_change", args=[case.pk]))

    assert response.status_code == 200
    assert "It blinks red" in text_of(response)
    assert "Service clocks (kept by the services)" in text_of(response)


def test_calendar_form_explains_bad_hours(admin_client):
    response = admin_client.post(
        reverse("admin:cases_businesscalendar_add"),
        {
            "name": "Office",
            "time_zone": "Mars/Olympus",
            "weekly_hours": '{"1": [["9am", "17:00"]], "8": []}',
            "holiday_country": "GB",
            "extra_closed_dates": '["2026-13-40"]',
        },
    )

    body = text_of(response)
    assert "“Mars/Olympus” is not an IANA time zone such as Europe/London." in body
    assert "Monday: ['9am', '17:00'] is not a pair of times like [\"09:00\", \"17:30\"]." in body
    assert "“8” is not a weekday number (1 is Monday, 7 is Sunday)." in body
    assert "Not ISO dates (YYYY-MM-DD): 2026-13-40." in body
    assert not BusinessCalendar.objects.exists()


def test_calendar_form_accepts_split_shifts(admin_client):
    response = admin_client.post(
        reverse("admin:cases_businesscalendar_add"),
        {
            "name": "Office",
            "time_zone": "Europe/London",
            "weekly_hours": '{"1": [["09:00", "12:30"], ["13:30", "17:30"]], "6": [["22:00", "24:00"]]}',
            "holiday_country": "GB",
            "extra_closed_dates": '["2026-12-24"]',
        },
    )

    assert response.status_code == 302
    assert BusinessCalendar.objects.get().weekly_hours["1"][1] == ["13:30", "17:30"]


def test_promise_form_explains_bad_overrides(admin_client, channel):
    ServicePromise.objects.filter(channel=channel).delete()

    response = admin_client.post(
        reverse("admin:cases_servicepromise_add"),
        {
            "channel": channel.pk,
            "first_response_minutes": 60,
            "next_response_minutes": 60,
            "resolution_minutes": 1440,
            "at_risk_ratio": "1.5",
            "priority_overrides": '{"critical": {}, "urgent": {"first_response_minutes": 0, "lunch": 5}}',
        },
    )

    body = text_of(response)
    assert "“critical” is not a priority (low, normal, high, urgent)." in body
    assert "urgent: first_response_minutes is a whole number of minutes above zero." in body
    assert "urgent: “lunch” is not a target" in body
    assert "Between 0 and 1, e.g. 0.75." in body
    assert not ServicePromise.objects.filter(channel=channel).exists()


def test_escalation_path_form_needs_its_trigger_details(admin_client, department, other_department):
    response = admin_client.post(
        reverse("admin:cases_escalationpath_add"),
        {
            "from_department": department.pk,
            "to_department": other_department.pk,
            "trigger": "priority",
            "order": 1,
            "is_active": "on",
            "priority_threshold": "",
            "category": "",
        },
    )

    assert "A priority path needs the lowest priority that escalates: low, normal, high, urgent." in text_of(
        response
    )
    assert not EscalationPath.objects.exists()


def test_canned_replies_are_listed_with_a_preview(admin_client, department):
    CannedReply.objects.create(
        title="Apology", body="Hi {customer_name}, " + "sorry " * 30, department=department
    )

    response = admin_client.get(
        reverse("admin:cases_cannedreply_changelist"), {"department__id__exact": department.pk}
    )

    body = text_of(response)
    assert "Apology" in body and "Hi {customer_name}, sorry" in body and "…" in body
