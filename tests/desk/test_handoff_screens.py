"""The hand-over banner on the case page: what the receiving department sees first, Accept and
Hand back from the desk, who sees the actions, the queue's "awaiting acceptance", live pushes."""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from cases import escalation, selectors, services
from cases.models import Case, CaseEvent, Membership
from channels_app import presence
from tests import factories
from tests.desk.conftest import open_case
from tests.sla.factories import EscalationPathFactory
from tests.test_consumers import build_world, case_page, received
from tests.test_consumers import open_case as live_open_case

# session, user, memberships, the case with the customer's other cases (and whether it waits for
# acceptance), the timeline, identities, department members, departments and paths, reply
# channels, canned replies, the department clock's moves: the case page's eleven; the banner reads
# its hand-over (with sender and the department it came from) in one more
CASE_PAGE_QUERIES = 11
CASE_PAGE_WITH_BANNER_QUERIES = CASE_PAGE_QUERIES + 1


@pytest.fixture
def sender(department):
    """The Social Care agent who escalates (and, as the previous assignee, follows the case)."""
    user = factories.UserFactory(
        username="sender", email="sender@example.test", first_name="Sasha", last_name="Sender"
    )
    factories.MembershipFactory(user=user, department=department, role=Membership.Role.AGENT)
    return user


@pytest.fixture
def receiver(other_department):
    user = factories.UserFactory(
        username="receiver", email="receiver@example.test", first_name="Rae", last_name="Receiver"
    )
    factories.MembershipFactory(user=user, department=other_department, role=Membership.Role.AGENT)
    return user


@pytest.fixture
def escalated(channels, department, other_department, sender):
    """A Social Care case escalated to Billing by its assignee, with a reason and a note."""
    EscalationPathFactory(from_department=department, to_department=other_department)
    case = open_case(channel=channels["x"], subject="Charged twice", assignee=sender)
    escalation.case_escalate(
        case=case, actor=sender, reason="Refund over the agent limit", note="Customer has the bank statement"
    )
    case.refresh_from_db()
    return case


def login(client, user):
    client.force_login(user)
    return client


def banner(body: str) -> str:
    match = re.search(r'<section id="case-handoff".*?</section>', body, re.DOTALL)
    assert match, "the page has no hand-over region"
    return match.group(0)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_the_receiver_sees_the_banner_first_with_note_reason_sender_and_actions(
    client, receiver, escalated, django_assert_num_queries
):
    login(client, receiver)

    with django_assert_num_queries(CASE_PAGE_WITH_BANNER_QUERIES):
        response = client.get(reverse("desk:case", args=[escalated.reference]))

    body = response.content.decode()
    assert response.status_code == 200
    # at the top of the case: before its header
    assert body.index('id="case-handoff"') < body.index('id="case-header"')
    shown = banner(body)
    words = text_of(shown)
    assert "hidden" not in shown.split(">", 1)[0]
    assert "Escalated from Social Care" in words
    assert "Waiting for Billing to accept" in words
    assert "Sent by Sasha Sender" in words
    assert "Refund over the agent limit" in words and "Customer has the bank statement" in words
    assert f'action="{reverse("desk:case_accept", args=[escalated.reference])}"' in shown
    assert f'action="{reverse("desk:case_hand_back", args=[escalated.reference])}"' in shown
    assert "Hand back to Social Care" in words


def test_a_case_without_a_hand_over_has_an_empty_banner_and_no_extra_query(
    client, agent, channels, django_assert_num_queries
):
    case = open_case(channel=channels["x"])
    login(client, agent)

    with django_assert_num_queries(CASE_PAGE_QUERIES):
        body = client.get(reverse("desk:case", args=[case.reference])).content.decode()

    shown = banner(body)
    assert " hidden" in shown.split(">", 1)[0] and "Accept" not in shown


def test_the_sender_following_the_case_sees_the_banner_but_not_the_actions(client, sender, escalated):
    login(client, sender)

    shown = banner(client.get(reverse("desk:case", args=[escalated.reference])).content.decode())

    assert "Waiting for Billing to accept" in text_of(shown)
    assert "case_accept" not in shown and "/accept/" not in shown and "/hand-back/" not in shown
    assert "Someone in Billing accepts it or hands it back." in text_of(shown)


def test_accept_records_it_claims_the_case_and_the_banner_goes(client, receiver, escalated):
    login(client, receiver)

    response = client.post(reverse("desk:case_accept", args=[escalated.reference]), follow=True)

    assert response.status_code == 200
    escalated.refresh_from_db()
    assert escalated.assignee_id == receiver.pk
    accepted = CaseEvent.objects.get(case=escalated, kind=CaseEvent.Kind.ACCEPTED)
    assert accepted.actor_id == receiver.pk
    body = response.content.decode()
    assert f"You accepted {escalated.reference}; it is yours." in body
    assert " hidden" in banner(body).split(">", 1)[0]
    # a second accept is refused: nothing is waiting any more
    again = client.post(reverse("desk:case_accept", args=[escalated.reference]), follow=True)
    assert "No hand-over of this case is waiting to be accepted." in again.content.decode()
    assert CaseEvent.objects.filter(case=escalated, kind=CaseEvent.Kind.ACCEPTED).count() == 1


def test_accept_with_htmx_answers_the_case_regions_out_of_band(client, receiver, escalated):
    login(client, receiver)

    response = client.post(reverse("desk:case_accept", args=[escalated.reference]), HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="case-live"' in body and 'hx-swap-oob="true"' in body
    assert " hidden" in banner(body).split(">", 1)[0]
    assert "it is yours" in body


def test_hand_back_needs_a_reason_and_the_error_names_the_field(client, receiver, escalated):
    login(client, receiver)

    response = client.post(
        reverse("desk:case_hand_back", args=[escalated.reference]), {"reason": "  ", "note": "keep me"}
    )

    assert response.status_code == 400
    shown = banner(response.content.decode())
    assert "Reason: Say why; it stays on the case&#x27;s record." in shown
    assert 'aria-invalid="true"' in shown and '<details class="act-more handoff-back" open>' in shown
    assert ">keep me</textarea>" in shown  # what was typed is kept
    escalated.refresh_from_db()
    assert escalated.department.name == "Billing"
    assert not CaseEvent.objects.filter(case=escalated, kind=CaseEvent.Kind.HANDED_BACK).exists()


def test_hand_back_returns_it_and_the_origin_sees_a_handed_back_banner(
    client, receiver, sender, escalated, department
):
    login(client, receiver)

    response = client.post(
        reverse("desk:case_hand_back", args=[escalated.reference]),
        {"reason": "Refunds under 50 stay with you", "note": "See the refund table"},
    )

    # the receiver no longer sees the case: the queue, not a 404
    assert response.status_code == 302 and response["Location"] == reverse("desk:queue")
    escalated.refresh_from_db()
    assert escalated.department_id == department.pk
    event = CaseEvent.objects.get(case=escalated, kind=CaseEvent.Kind.HANDED_BACK)
    assert event.actor_id == receiver.pk and event.reason == "Refunds under 50 stay with you"

    login(client, sender)
    shown = banner(client.get(reverse("desk:case", args=[escalated.reference])).content.decode())
    words = text_of(shown)
    assert "Handed back from Billing" in words and "Sent by Rae Receiver" in words
    assert "Refunds under 50 stay with you" in words and "See the refund table" in words
    # a case handed back is accepted, not handed back again
    assert "/accept/" in shown and "/hand-back/" not in shown


def test_hand_back_with_htmx_redirects_to_the_queue(client, receiver, escalated):
    login(client, receiver)

    response = client.post(
        reverse("desk:case_hand_back", args=[escalated.reference]),
        {"reason": "Not ours"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200 and response["HX-Redirect"] == reverse("desk:queue")


def test_only_the_receiving_department_may_act(client, sender, outsider, escalated):
    # the sender sees the case (they follow it) but may not accept or hand it back
    login(client, sender)
    refused = client.post(reverse("desk:case_accept", args=[escalated.reference]), follow=True)
    assert "Only the department that has the case can accept it." in refused.content.decode()
    refused = client.post(
        reverse("desk:case_hand_back", args=[escalated.reference]), {"reason": "mine again"}
    )
    assert refused.status_code == 403
    assert "Only the department that has the case can hand it back." in refused.content.decode()
    # someone who does not see the case gets a 404, as for any case page
    other = factories.UserFactory(username="stranger")
    login(client, other)
    assert client.post(reverse("desk:case_accept", args=[escalated.reference])).status_code == 404
    assert not CaseEvent.objects.filter(
        case=escalated, kind__in=[CaseEvent.Kind.ACCEPTED, CaseEvent.Kind.HANDED_BACK]
    ).exists()


def test_an_admin_sees_and_may_use_the_actions(client, escalated):
    admin = factories.UserFactory(username="boss", is_staff=True)
    login(client, admin)
    shown = banner(client.get(reverse("desk:case", args=[escalated.reference])).content.decode())
    assert "/accept/" in shown and "/hand-back/" in shown


def test_the_queue_row_says_the_case_awaits_acceptance(client, receiver, escalated, channels):
    other = open_case(channel=channels["x"])
    Case.objects.filter(pk=other.pk).update(department=escalated.department)  # Billing's, never moved
    login(client, receiver)

    body = client.get(reverse("desk:queue") + "?view=department").content.decode()

    rows = dict(re.findall(r'<tr id="case-row-(\d+)".*?(</tr>)', body, re.DOTALL))
    assert str(escalated.pk) in rows and str(other.pk) in rows
    row = re.search(rf'<tr id="case-row-{escalated.pk}".*?</tr>', body, re.DOTALL).group(0)
    plain = re.search(rf'<tr id="case-row-{other.pk}".*?</tr>', body, re.DOTALL).group(0)
    assert "Awaiting acceptance" in row and "Awaiting acceptance" not in plain

    escalation.case_accept(case=escalated, actor=receiver)
    row = re.search(
        rf'<tr id="case-row-{escalated.pk}".*?</tr>',
        client.get(reverse("desk:queue") + "?view=department").content.decode(),
        re.DOTALL,
    ).group(0)
    assert "Awaiting acceptance" not in row
    # the live row (what a push renders) says the same as the page
    (live,) = selectors.live_queue_rows(case_ids=[escalated.pk]).values()
    assert live.awaiting_acceptance is False


def test_the_push_of_the_banner_shows_the_actions_only_to_the_receivers(receiver, sender, escalated):
    for_receiver = presence.case_view(user=receiver, case_id=escalated.pk)["handoff"]
    for_sender = presence.case_view(user=sender, case_id=escalated.pk)["handoff"]

    assert "/accept/" in for_receiver and "/hand-back/" in for_receiver
    assert "Waiting for Billing to accept" in text_of(for_sender)
    assert "/accept/" not in for_sender and "/hand-back/" not in for_sender
    assert 'name="csrfmiddlewaretoken"' not in for_receiver  # pushed forms post with htmx's header


async def handoff_swap(page, wanted, *, timeout: float = 10.0) -> str:
    """The first hand-over banner pushed to ``page`` for which ``wanted(html)`` holds.

    A change can reach the page as several pushes (the hand-over, then the claim), and on a
    busy machine they are not always within one quiet spell: wait for the one that says it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = []
    while (left := deadline - loop.time()) > 0:
        try:
            message = await page.receive_json_from(timeout=left)
        except TimeoutError:
            break
        if message.get("type") == "swap" and message.get("target") == "case-handoff":
            if wanted(message["html"]):
                return message["html"]
            seen.append(message["html"][:120])
    raise AssertionError(f"no such hand-over banner was pushed; banners seen: {seen}")


@pytest.mark.django_db(transaction=True)
async def test_others_watching_the_case_see_the_banner_come_and_go_live():
    world = await sync_to_async(build_world)()

    def setup():
        EscalationPathFactory(from_department=world["social"], to_department=world["billing"])
        case = live_open_case(world["x"])
        services.case_claim(case=case, actor=world["agent"])
        colleague = factories.UserFactory(username="live-billing-2", first_name="Bo", last_name="Billing")
        factories.MembershipFactory(user=colleague, department=world["billing"], role=Membership.Role.AGENT)
        return case, colleague

    case, billing_colleague = await sync_to_async(setup)()
    watcher = await case_page(world["agent"], case)  # the assignee, who will follow it
    await received(watcher)

    # when the agent escalates it to Billing
    await sync_to_async(escalation.case_escalate)(
        case=case, actor=world["agent"], reason="Refund needed", note="Bank statement attached"
    )
    banner = await handoff_swap(watcher, lambda html: "Escalated from Social Care" in text_of(html))
    assert "Bank statement attached" in text_of(banner)
    assert "/accept/" not in banner  # not theirs to accept

    billing_page = await case_page(billing_colleague, case)
    await received(billing_page)

    # when someone in Billing accepts it, everyone watching sees the banner go
    await sync_to_async(escalation.case_accept)(case=case, actor=world["outsider"])
    for page in (watcher, billing_page):
        banner = await handoff_swap(page, lambda html: " hidden" in html.split(">", 1)[0])
        assert banner.startswith('<section id="case-handoff"')
        assert "Accept" not in banner
    await watcher.disconnect()
    await billing_page.disconnect()
