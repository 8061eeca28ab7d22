"""The case page: one timeline across channels, the customer panel, actions, 404s, query count."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from cases import selectors, services
from cases.escalation import next_path
from cases.models import Attachment, Case, CaseEvent, Department
from cases.templatetags.desk import countdown_text
from tests import factories
from tests.desk.conftest import crossed_case, minutes_ago, open_case
from tests.sla.factories import EscalationPathFactory

# session, user, memberships, the case with the customer's other cases, the timeline with its
# attachments, identities, department members (assign to), departments with the escalation paths,
# reply channels, canned replies, the case's department moves (the department clock)
CASE_PAGE_QUERIES = 11


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def entry_ids(body: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="message-(\d+)"', body)]


def test_timeline_across_channels_in_time_order(desk, agent, channels):
    case, in_order = crossed_case(channels, agent)

    response = desk.get(reverse("desk:case", args=[case.reference]))

    assert response.status_code == 200
    body = response.content.decode()
    assert entry_ids(body) == [m.pk for m in in_order]
    entries = re.split(r'id="message-\d+"', body)[1:]
    tweet, dm, reply, email, call, note = entries
    assert "X</span>" in tweet and ">Post<" in tweet and ">Public<" in tweet and "Sam P" in tweet
    assert "Direct message" in dm and "Private" in dm
    assert "(agent)" in reply and "Sent" in reply
    assert "E-mail</span>" in email and "Re: [#" in email and "bill.pdf" in email and "20.0" in email
    assert "Phone</span>" in call and "Inbound call" in call and "03:05" in call and "rec1.mp3" in call
    assert "Internal note" in note
    assert f'class="card entry entry-note" id="message-{in_order[-1].pk}"' in body


def test_email_text_is_escaped_and_html_is_sanitized(desk, agent, channels):
    case, _ = crossed_case(channels, agent)

    body = desk.get(reverse("desk:case", args=[case.reference])).content.decode()

    assert "Serial number is &lt;b&gt;RX-42&lt;/b&gt;." in body
    assert "<p>Serial <b>RX-42</b></p>" in body
    assert "<script>alert(1)</script>" not in body


def test_customer_panel(desk, agent, channels):
    case, _ = crossed_case(channels, agent)
    older = services.case_open(customer=case.customer, channel=channels["email"], subject="Billing question")
    hidden_department = factories.DepartmentFactory(name="Legal", slug="legal")
    hidden = services.case_open(customer=case.customer, department=hidden_department, subject="Secret matter")

    body = desk.get(reverse("desk:case", args=[case.reference])).content.decode()

    panel = body[body.index('id="customer-panel"') :]
    assert "Sam Porter" in panel and "VIP" in panel
    assert "@samp" in panel and "12,840 followers" in panel
    assert "Verified" in panel and "Linked by an agent" in panel and "Suggested" in panel
    assert older.reference in panel and "Billing question" in panel
    assert hidden.reference not in body  # another department's case stays out of sight


def test_case_header_shows_clocks_and_handoff(desk, agent, supervisor, channel, other_department, department):
    case = open_case(channel=channel, subject="Refund", wrote_minutes_ago=20)
    services.case_transfer(
        case=case,
        to_department=other_department,
        actor=supervisor,
        reason="Billing owns refunds",
        note="Customer was double charged",
    )
    services.case_transfer(
        case=case,
        to_department=department,
        actor=None,
        reason="Back to social",
        note="Refund done; confirm with the customer",
    )
    case.refresh_from_db()

    body = desk.get(reverse("desk:case", args=[case.reference])).content.decode()

    assert "Refund done; confirm with the customer" in body
    assert f'data-due="{case.first_response_due_at.isoformat().replace("+00:00", "Z")}"' in body
    assert "First response" in body and "Resolution" in body
    assert re.search(r"in 3\dm", body)  # 60-minute promise, written 20 minutes ago


def test_agent_of_another_department_gets_404(client, outsider, channel):
    case = open_case(channel=channel)
    client.force_login(outsider)

    assert client.get(reverse("desk:case", args=[case.reference])).status_code == 404
    assert client.post(reverse("desk:case_claim", args=[case.reference])).status_code == 404
    assert client.get(reverse("desk:case", args=["C-NOPE2"])).status_code == 404
    case.refresh_from_db()
    assert case.assignee is None


def test_claim_by_post(desk, agent, channel):
    case = open_case(channel=channel)

    response = desk.post(reverse("desk:case_claim", args=[case.reference]), follow=True)

    case.refresh_from_db()
    assert case.assignee == agent
    assert CaseEvent.objects.filter(case=case, kind="claimed", actor=agent).exists()
    assert response.redirect_chain[-1][0] == reverse("desk:case", args=[case.reference])
    assert f"{case.reference} is yours." in response.content.decode()


def test_claim_of_a_taken_case_is_refused_with_a_message(desk, other_agent, channel):
    case = open_case(channel=channel, assignee=other_agent)

    response = desk.post(reverse("desk:case_claim", args=[case.reference]), follow=True)

    case.refresh_from_db()
    assert case.assignee == other_agent
    assert "already assigned" in response.content.decode()
    assert 'class="msg msg-error"' in response.content.decode()


def test_claim_with_htmx_answers_with_the_changed_regions_out_of_band(desk, agent, channel):
    case = open_case(channel=channel)

    response = desk.post(reverse("desk:case_claim", args=[case.reference]), HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    for region in ("case-live", "case-actions", "messages"):
        assert re.search(rf'<[a-z]+ id="{region}"[^>]*hx-swap-oob="true"', body), region
    assert 'id="composer"' not in body  # a draft being written is left alone
    assert "is yours" in body
    assert "<html" not in body


def test_note_and_its_errors(desk, agent, channel):
    case = open_case(channel=channel)

    empty = desk.post(reverse("desk:case_note", args=[case.reference]), {"text": "   "}, follow=True)
    added = desk.post(
        reverse("desk:case_note", args=[case.reference]), {"text": "Called the depot"}, follow=True
    )

    assert "Internal note: This field is required." in empty.content.decode()
    body = added.content.decode()
    assert "Note added." in body
    assert "Called the depot" in body
    assert case.messages.filter(direction="note", author=agent, text="Called the depot").count() == 1


def test_status_and_priority(desk, agent, channel):
    case = open_case(channel=channel)

    desk.post(
        reverse("desk:case_status", args=[case.reference]),
        {"status": "waiting_on_customer", "reason": "Asked for serial"},
    )
    desk.post(reverse("desk:case_priority", args=[case.reference]), {"priority": "urgent"})
    bad = desk.post(reverse("desk:case_status", args=[case.reference]), {"status": "sleeping"}, follow=True)

    case.refresh_from_db()
    assert (case.status, case.priority) == (Case.Status.WAITING_ON_CUSTOMER, Case.Priority.URGENT)
    assert CaseEvent.objects.get(case=case, kind="status").reason == "Asked for serial"
    assert "Status: Select a valid choice." in bad.content.decode()


def test_follower_of_another_department_sees_but_cannot_act(client, outsider, channel):
    case = open_case(channel=channel)
    case.followers.add(outsider)
    client.force_login(outsider)

    page = client.get(reverse("desk:case", args=[case.reference]))
    claim = client.post(reverse("desk:case_claim", args=[case.reference]), follow=True)

    assert page.status_code == 200
    assert "Claim</button>" not in page.content.decode()
    assert "You can claim only cases of your departments." in claim.content.decode()
    case.refresh_from_db()
    assert case.assignee is None


def test_actions_need_post(desk, channel):
    case = open_case(channel=channel)
    assert desk.get(reverse("desk:case_claim", args=[case.reference])).status_code == 405


@pytest.mark.parametrize("count", [3, 30])
def test_case_page_query_count_does_not_grow(desk, agent, channels, django_assert_num_queries, count):
    case = open_case(channel=channels["x"])
    kinds = [("x", "dm"), ("email", "email"), ("phone", "call"), ("facebook", "comment")]
    for n in range(count - 1):
        channel_kind, kind = kinds[n % 4]
        message = services.message_add(
            case=case,
            direction="in" if n % 2 else "out",
            kind=kind,
            channel=channels[channel_kind],
            author=agent,
            text=f"message {n}",
            sent_at=minutes_ago(count - n),
        )
        Attachment.objects.create(
            message=message, filename=f"f{n}.png", external_url="https://files.example.test/f.png"
        )
    for _ in range(3):
        services.case_open(customer=case.customer, channel=channels["email"])

    with django_assert_num_queries(CASE_PAGE_QUERIES):
        response = desk.get(reverse("desk:case", args=[case.reference]))

    assert len(entry_ids(response.content.decode())) == count
    # The live region carries the newest event of this case: a reconnect replays from there.
    newest = case.events.order_by("-id").values_list("id", flat=True).first()
    assert f'data-case="{case.reference}" data-since="' in response.content.decode()
    assert f'data-seq="{newest}"' in response.content.decode()


def test_paused_resolution_clock_shows_time_left(desk, agent, channel):
    case = open_case(channel=channel)

    services.case_set_status(case=case, status=Case.Status.WAITING_ON_CUSTOMER, actor=agent)
    body = desk.get(reverse("desk:case", args=[case.reference])).content.decode()

    case.refresh_from_db()
    assert case.resolution_remaining_seconds is not None
    assert re.search(r"Paused · 23h 5\dm left", body)  # 24-hour promise, a minute in


SPANS = [0, 1, 59, 61, 299, 300, 301, 3599, 3600, 3661, 86_399, 86_400, 90_061, 1_000_000]


@pytest.mark.parametrize("sign", [1, -1])
def test_browser_countdown_formats_like_the_server(sign):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = Path(settings.BASE_DIR, "static/js/desk.js")
    millis = [sign * s * 1000 for s in SPANS]
    out = subprocess.run(
        [
            node,
            "-e",
            f"const d = require({json.dumps(str(script))}); "
            f"console.log(JSON.stringify({json.dumps(millis)}.map(d.countdownText)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    now = datetime(2030, 1, 1, tzinfo=UTC)
    expected = [countdown_text(now + timedelta(milliseconds=ms), now) for ms in millis]
    assert json.loads(out) == expected


def test_case_routes_pick_the_path_escalation_picks(agent, channel, department, other_department):
    # given: paths out of the case's department in every state next_path looks at
    closed = factories.DepartmentFactory(name="Closed desk", slug="closed", is_active=False)
    legal = factories.DepartmentFactory(name="Legal", slug="legal")
    case = open_case(channel=channel, priority="normal")
    EscalationPathFactory(from_department=department, to_department=closed, order=0)
    EscalationPathFactory(from_department=department, to_department=legal, order=1, is_active=False)
    EscalationPathFactory(
        from_department=department,
        to_department=legal,
        order=2,
        trigger="priority",
        priority_threshold="high",
    )
    EscalationPathFactory(from_department=department, to_department=other_department, order=3)
    EscalationPathFactory(from_department=other_department, to_department=legal, order=0)

    # when / then: the same path as escalation.next_path, before and after the priority rises
    departments, path = selectors.case_routes(user=agent, case=case)
    assert [d.name for d in departments] == sorted(d.name for d in Department.objects.all())
    assert path.pk == next_path(case).pk and path.to_department == other_department
    case.priority = "urgent"
    departments, path = selectors.case_routes(user=agent, case=case)
    assert path.pk == next_path(case).pk and path.to_department == legal
    assert len(departments) == Department.objects.count()  # a department with two paths in is listed once


def test_other_cases_are_the_newest_visible_ones(desk, agent, outsider, channels, other_department):
    case = open_case(channel=channels["x"])
    mine = [services.case_open(customer=case.customer, channel=channels["email"]) for _ in range(12)]
    hidden = services.case_open(customer=case.customer, department=other_department)
    followed = services.case_open(customer=case.customer, department=other_department)
    followed.followers.add(agent, outsider)  # two followers: the page lists it once
    newest_first = sorted([*mine, followed], key=lambda c: (c.created_at, c.pk), reverse=True)

    page = selectors.case_page(user=agent, reference=case.reference)

    assert page.case == case
    assert [c.reference for c in page.other_cases] == [c.reference for c in newest_first[:10]]
    assert hidden not in page.other_cases
    assert selectors.case_page(user=outsider, reference=case.reference) is None
    assert selectors.case_page(user=agent, reference="C-NOPE2") is None


def test_an_admin_sees_the_customer_s_cases_in_every_department(channels, other_department):
    admin = factories.UserFactory(username="root", is_staff=True)
    case = open_case(channel=channels["x"])
    elsewhere = services.case_open(customer=case.customer, department=other_department)
    unrelated = open_case(channel=channels["x"])

    page = selectors.case_page(user=admin, reference=case.reference)

    assert page.case == case
    assert page.other_cases == [elsewhere]
    assert unrelated not in page.other_cases
