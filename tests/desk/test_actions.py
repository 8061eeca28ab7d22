"""Case page actions: reply (channel, identity, public or private, stale drafts, the reply lock),
calls, assignment, transfer and escalation with reasons, monitoring, take-over, canned replies."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from cases import drafts, services
from cases.models import CannedReply, Case, CaseEvent, EscalationPath, Message
from connectors import registry
from tests import factories, scripted_connector
from tests.desk.conftest import open_case


@pytest.fixture(autouse=True)
def scripted_sends(monkeypatch):
    """Replies are sent by a scripted connector: these tests are about the desk, not a platform."""
    for kind in ("x", "email", "facebook", "whatsapp", "instagram"):
        monkeypatch.setitem(registry.CONNECTORS, kind, "tests.scripted_connector")
    scripted_connector.script.clear()
    scripted_connector.sent.clear()


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def url(name, case):
    return reverse(f"desk:{name}", args=[case.reference])


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def error_messages(response) -> list[str]:
    return (
        [str(m) for m in response.context["messages"] if m.level_tag == "error"] if response.context else []
    )


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


# --- Reply ----------------------------------------------------------------------------------------


def test_public_reply_on_x_is_queued_and_sent(desk, agent, channel, django_capture_on_commit_callbacks):
    case = open_case(channel=channel, kind="post", text="@brand help")

    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post(
            url("case_reply", case),
            {
                "channel": channel.pk,
                "visibility": "public",
                "text": "We are on it",
                "draft_started_at": iso(datetime.now(UTC)),
            },
            follow=True,
        )

    reply = Message.objects.get(case=case, direction="out")
    assert (reply.is_public, reply.kind, reply.author, reply.text) == (True, "post", agent, "We are on it")
    assert reply.delivery_state == "sent"  # the task ran after commit
    assert "Reply queued publicly on Brand on X" in text_of(response)


def test_reply_form_offers_the_customers_identities_and_marks_public_and_private(desk, channels):
    case = open_case(channel=channels["x"], kind="post")
    factories.IdentityFactory(
        customer=case.customer, kind="email", platform_id="robin@example.test", handle="robin@example.test"
    )

    body = text_of(desk.get(url("case", case)))

    assert 'data-kind="x" data-limit="280" data-public="yes"' in body  # the X counter's limit
    assert re.search(r'data-kind="email" data-limit="" data-public=""', body)
    assert "robin@example.test" in body
    assert 'value="public" checked' in body  # the customer tweeted: answer where they wrote
    assert "Public reply: anyone on the platform can read it." in body
    assert "Private message: only the customer reads it." in body
    assert "Internal note: agents only, never sent to the customer." in body


def test_reply_errors_name_their_field(desk, channels):
    case = open_case(channel=channels["x"], kind="post")
    email = factories.IdentityFactory(customer=case.customer, kind="email", platform_id="robin@example.test")

    empty = desk.post(
        url("case_reply", case), {"channel": channels["x"].pk, "visibility": "private", "text": " "}
    )
    public_mail = desk.post(
        url("case_reply", case), {"channel": channels["email"].pk, "visibility": "public", "text": "Hi"}
    )
    wrong_identity = desk.post(
        url("case_reply", case),
        {"channel": channels["x"].pk, "identity": email.pk, "visibility": "private", "text": "Hi"},
    )
    too_long = desk.post(
        url("case_reply", case), {"channel": channels["x"].pk, "visibility": "public", "text": "x" * 281}
    )

    assert empty.status_code == 400
    assert "Reply: This field is required." in error_messages(empty)
    assert "Visibility: A reply on E-mail is always private." in error_messages(public_mail)
    assert "To: Choose one of the customer's X identities, or none." in error_messages(wrong_identity)
    assert too_long.status_code == 400
    assert any(
        m.startswith("Text: A public reply on X is at most 280 characters") for m in error_messages(too_long)
    )
    assert "x" * 281 in too_long.content.decode()  # the draft is given back
    assert not Message.objects.filter(case=case, direction="out").exists()


def test_stale_draft_is_refused_with_the_draft_kept_and_then_sent_on_purpose(desk, agent, channel):
    case = open_case(channel=channel, kind="post")
    started = datetime.now(UTC) - timedelta(seconds=30)
    services.message_add(case=case, direction="in", kind="dm", text="Also my bill is wrong", channel=channel)
    form = {
        "channel": channel.pk,
        "visibility": "private",
        "text": "Sorry to hear that!",
        "draft_started_at": iso(started),
    }

    refused = desk.post(url("case_reply", case), form, HTTP_HX_REQUEST="true")

    assert refused.status_code == 409
    body = text_of(refused)
    assert (
        "The customer wrote or a colleague replied since you started this draft; read it before sending."
        in body
    )
    assert "Also my bill is wrong" in body  # the timeline, swapped in with what is new
    assert "Sorry to hear that!</textarea>" in body  # the draft is kept
    assert 'class="stale-note" role="alert"' in body  # shown, not hidden
    restarted = re.search(r'name="draft_started_at" value="([^"]+)"', body).group(1)
    assert datetime.fromisoformat(restarted) > started
    assert not Message.objects.filter(case=case, direction="out").exists()

    # the agent has now seen it and sends the same draft again
    sent = desk.post(url("case_reply", case), {**form, "draft_started_at": restarted}, HTTP_HX_REQUEST="true")
    assert sent.status_code == 200
    assert Message.objects.filter(case=case, direction="out", text="Sorry to hear that!").count() == 1


def test_stale_draft_without_javascript_gets_the_page_back_with_409(desk, channel):
    case = open_case(channel=channel, kind="post")
    started = datetime.now(UTC) - timedelta(seconds=30)
    services.message_add(case=case, direction="in", kind="dm", text="Hello again", channel=channel)

    response = desk.post(
        url("case_reply", case),
        {
            "channel": channel.pk,
            "visibility": "private",
            "text": "Draft text",
            "draft_started_at": iso(started),
        },
    )

    assert response.status_code == 409
    assert "<html" in response.content.decode()
    assert "Draft text</textarea>" in response.content.decode()


def test_a_colleagues_reply_lock_refuses_the_send(desk, agent, other_agent, channel):
    case = open_case(channel=channel, kind="post")
    drafts.case_typing(case=case, tab="their-tab", user=other_agent, typing=True, has_draft=True)

    response = desk.post(
        url("case_reply", case), {"channel": channel.pk, "visibility": "private", "text": "Mine"}, follow=True
    )

    name = other_agent.get_full_name()
    assert f"Text: {name} is writing the reply to this case." in text_of(response)
    assert f"{name} is writing the reply" in text_of(response)  # and the page says so above the composer
    assert not Message.objects.filter(case=case, direction="out").exists()
    # the holder's own send goes, and lets the lock go
    drafts.draft_send(case=case, author=other_agent, channel=channel, text="Theirs")
    assert drafts.draft_lock_holder(case_id=case.pk) is None


# --- Take-over --------------------------------------------------------------------------------------


def test_supervisor_takes_over_a_reply_and_the_record_says_so(
    client, agent, supervisor, channel, django_capture_on_commit_callbacks
):
    case = open_case(channel=channel, kind="post")
    drafts.case_typing(case=case, tab="t", user=agent, typing=True, has_draft=True)
    client.force_login(agent)
    refused = client.post(url("case_take_over", case), {"reason": "mine now"}, follow=True)
    assert "Only a supervisor of the case's department can take over a reply." in text_of(refused)
    assert drafts.draft_lock_holder(case_id=case.pk).user_id == agent.pk

    client.force_login(supervisor)
    page = text_of(client.get(url("case", case)))
    assert "Take over the reply" in page
    with django_capture_on_commit_callbacks(execute=True):  # the lock changes hands when the record commits
        taken = client.post(url("case_take_over", case), {"reason": "VIP escalation"}, follow=True)

    assert f"You now hold the reply (from {agent.get_full_name()})." in text_of(taken)
    lock = drafts.draft_lock_holder(case_id=case.pk)
    assert (lock.user_id, lock.taken_from) == (supervisor.pk, agent.get_full_name())
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.DRAFT_TAKEN)
    assert (event.actor, event.before, event.after, event.reason) == (
        supervisor,
        {"holder": agent.pk},
        {"holder": supervisor.pk},
        "VIP escalation",
    )
    with pytest.raises(drafts.DraftLocked, match="taken over from"):
        drafts.draft_send(case=case, author=agent, channel=channel, text="too late")


# --- Calls, notes, assignment -----------------------------------------------------------------------------


def test_log_a_call(desk, agent, channels):
    case = open_case(channel=channels["x"])

    bad = desk.post(
        url("case_call", case),
        {"direction": "in", "number": "+12025550143", "duration": "three"},
        follow=True,
    )
    good = desk.post(
        url("case_call", case),
        {"direction": "out", "number": "+12025550143", "duration": "3:05", "notes": "Promised a callback"},
        follow=True,
    )

    assert "Duration: Write the length as minutes:seconds (3:05) or seconds (185)." in error_messages(bad)
    call = Message.objects.get(case=case, kind="call")
    assert (call.direction, call.call_duration, call.author) == ("out", 185, agent)
    assert "Promised a callback" in call.text
    assert "Call logged." in text_of(good)


def test_assign_to_a_member_only(desk, agent, other_agent, outsider, channel):
    case = open_case(channel=channel)

    desk.post(url("case_assign", case), {"assignee": other_agent.pk})
    refused = desk.post(url("case_assign", case), {"assignee": outsider.pk}, follow=True)

    case.refresh_from_db()
    assert case.assignee == other_agent
    assert any(m.startswith("Assignee: Select a valid choice.") for m in error_messages(refused))
    desk.post(url("case_assign", case), {"assignee": ""})
    case.refresh_from_db()
    assert case.assignee is None


# --- Transfer, escalation, monitoring -------------------------------------------------------------------------


def test_transfer_needs_a_reason_named_in_the_error(client, supervisor, channel, other_department):
    case = open_case(channel=channel)
    client.force_login(supervisor)

    refused = client.post(
        url("case_transfer", case), {"to_department": other_department.pk, "reason": ""}, follow=True
    )
    case.refresh_from_db()
    assert case.department_id != other_department.pk
    assert "Reason: Say why; it stays on the case's record." in error_messages(refused)

    moved = client.post(
        url("case_transfer", case),
        {"to_department": other_department.pk, "reason": "Billing owns refunds", "note": "Double charge"},
        follow=True,
    )
    case.refresh_from_db()
    assert case.department == other_department
    assert case.handoff_note == "Double charge"
    assert CaseEvent.objects.get(case=case, kind="transferred").reason == "Billing owns refunds"
    assert moved.status_code == 404 or "moved to Billing" in text_of(moved)


def test_agent_transfer_without_a_path_is_refused_with_the_rule(desk, channel, other_department):
    case = open_case(channel=channel)

    response = desk.post(
        url("case_transfer", case), {"to_department": other_department.pk, "reason": "not mine"}, follow=True
    )

    assert "No escalation path allows that transfer; ask a supervisor." in text_of(response)


def test_escalate_along_the_path_with_a_reason(desk, agent, channel, department, other_department):
    EscalationPath.objects.create(from_department=department, to_department=other_department)
    case = open_case(channel=channel)
    assert "Escalate to Billing" in text_of(desk.get(url("case", case)))

    refused = desk.post(url("case_escalate", case), {"reason": "  "}, follow=True)
    assert "Reason: Say why; it stays on the case's record." in error_messages(refused)

    desk.post(url("case_escalate", case), {"reason": "Refund over my limit", "note": "Customer is patient"})
    case.refresh_from_db()
    assert case.department == other_department
    event = CaseEvent.objects.get(case=case, kind="escalated")
    assert (event.actor, event.reason) == (agent, "Refund over my limit")


def test_monitor_and_respond_need_reasons(desk, channel):
    case = open_case(channel=channel)

    refused = desk.post(url("case_monitor", case), {"reason": ""}, follow=True)
    assert "Reason: Say why; it stays on the case's record." in error_messages(refused)
    desk.post(url("case_monitor", case), {"reason": "Venting, no question"})
    case.refresh_from_db()
    assert case.status == Case.Status.MONITORING
    assert "Needs an answer after all" in text_of(desk.get(url("case", case)))

    desk.post(url("case_respond", case), {"reason": "They asked for a refund"})
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert list(CaseEvent.objects.filter(case=case, kind="status").values_list("reason", flat=True)) == [
        "Venting, no question",
        "They asked for a refund",
    ]


# --- Canned replies --------------------------------------------------------------------------------------


def test_canned_replies_are_filled_in_and_offered_where_they_belong(
    desk, agent, channel, department, other_department
):
    case = open_case(channel=channel, customer=factories.CustomerFactory(name="Dana Reyes"))
    CannedReply.objects.create(
        title="Apology", body="Hi {customer_name}, {agent_name} here about {reference}. {{sorry}}"
    )
    CannedReply.objects.create(title="Social only", body="Social", department=department, channel_kind="x")
    CannedReply.objects.create(title="Billing only", body="Billing", department=other_department)
    CannedReply.objects.create(title="Retired", body="Old", is_active=False)

    body = desk.get(url("case", case)).content.decode()

    expected = f"Hi Dana Reyes, {agent.first_name} here about {case.reference}. {{sorry}}"
    assert f'data-text="{expected}"' in body
    assert ">Social only<" in body and 'data-kind="x"' in body
    assert "Billing only" not in body and "Retired" not in body


def test_canned_reply_with_an_unknown_placeholder_is_refused_in_admin(admin_client):
    response = admin_client.post(
        reverse("admin:cases_cannedreply_add"),
        {
            "title": "Bad",
            "body": "Hello {first_name}",
            "is_active": "on",
            "department": "",
            "channel_kind": "",
        },
    )

    assert response.status_code == 200
    assert "Unknown placeholder {first_name}. Use {customer_name}, {reference}, {agent_name}" in text_of(
        response
    )
    assert not CannedReply.objects.exists()


# --- Move to private -------------------------------------------------------------------------------------


def test_ask_a_public_customer_to_continue_privately(desk, agent, other_agent, channel):
    case = open_case(channel=channel, kind="post", text="@brand my account is locked")
    assert "Ask to continue privately" in text_of(desk.get(url("case", case)))

    response = desk.post(
        url("case_move_private", case), {"channel": channel.pk, "private_channel_kind": "dm"}, follow=True
    )

    reply = Message.objects.get(case=case, direction="out")
    assert reply.is_public and case.reference in reply.text
    case.refresh_from_db()
    assert case.status == Case.Status.WAITING_ON_CUSTOMER
    assert "Asked the customer publicly to continue by a direct message" in text_of(response)


def test_move_to_private_respects_the_reply_lock_and_needs_a_public_message(desk, other_agent, channel):
    dm_only = open_case(channel=channel, kind="dm")
    assert "Ask to continue privately" not in text_of(desk.get(url("case", dm_only)))
    refused = desk.post(
        url("case_move_private", dm_only), {"channel": channel.pk, "private_channel_kind": "dm"}, follow=True
    )
    assert "Channel: Choose a channel where the customer wrote in public." in text_of(refused)

    public = open_case(channel=channel, kind="post")
    drafts.case_typing(case=public, tab="t", user=other_agent, typing=True, has_draft=True)
    held = desk.post(
        url("case_move_private", public), {"channel": channel.pk, "private_channel_kind": "dm"}, follow=True
    )
    assert f"{other_agent.get_full_name()} is writing the reply to this case" in text_of(held)
    assert not Message.objects.filter(direction="out").exists()
