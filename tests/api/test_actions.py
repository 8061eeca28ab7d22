"""Case actions call the services and answer with the updated case; refusals share one error shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cases import services
from cases.models import Case, CaseEvent, Message
from customers.models import Customer
from tests import factories

from .conftest import session_client, token_client


def _post(client, case, action, body=None):
    return client.post(f"/api/v1/cases/{case.pk}/{action}/", body or {}, format="json")


def fresh_draft() -> dict:
    return {"draft_started_at": timezone.now().isoformat()}


def test_reply_queues_the_message_and_answers_with_the_case(world, django_capture_on_commit_callbacks):
    client = token_client(world.write_key)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _post(
            client, world.case, "reply", {**fresh_draft(), "channel_id": world.channel.pk, "text": "On it!"}
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == world.case.pk and body["status"] == "open"
    reply = Message.objects.get(case=world.case, direction="out")
    assert (reply.text, reply.delivery_state, reply.author) == ("On it!", "queued", world.agent)
    assert reply.identity == world.identity
    assert callbacks, "the send is queued for after commit"


def test_a_stale_draft_is_a_409(world):
    started = timezone.now() - timedelta(minutes=5)
    services.message_add(
        case=world.case,
        direction="in",
        kind="post",
        text="Hello??",
        channel=world.channel,
        identity=world.identity,
        external_id="t-2",
    )
    response = _post(
        token_client(world.write_key),
        world.case,
        "reply",
        {"channel_id": world.channel.pk, "text": "Hi", "draft_started_at": started.isoformat()},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_draft"
    assert not Message.objects.filter(case=world.case, direction="out").exists()


def test_a_reply_without_draft_started_at_is_refused_naming_the_field(world):
    response = _post(
        token_client(world.write_key), world.case, "reply", {"channel_id": world.channel.pk, "text": "Hi"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "draft_started_at"
    assert "read_at" in error["message"]
    assert not Message.objects.filter(case=world.case, direction="out").exists()


def test_the_case_says_when_it_was_read_and_a_reply_sent_with_it_goes_until_the_customer_writes(world):
    client = token_client(world.write_key)
    read_at = client.get(f"/api/v1/cases/{world.case.pk}/").json()["read_at"]
    reply = {"channel_id": world.channel.pk, "text": "Hi", "draft_started_at": read_at}

    # a reply drafted against what was read is sent
    answered = _post(client, world.case, "reply", reply)
    assert answered.status_code == 200, answered.content
    # and the answer carries the time to send with the next reply, taken before it was read
    assert answered.json()["read_at"] > read_at

    # once the customer writes again, a reply drafted against the old read is refused
    services.message_add(
        case=world.case,
        direction="in",
        kind="post",
        text="Still broken",
        channel=world.channel,
        identity=world.identity,
        external_id="t-3",
    )
    assert (
        _post(client, world.case, "reply", {**reply, "text": "Again"}).json()["error"]["code"]
        == "stale_draft"
    )
    assert list(Message.objects.filter(case=world.case, direction="out").values_list("text", flat=True)) == [
        "Hi"
    ]


def test_reply_to_an_identity_of_another_customer_names_the_field(world):
    stranger = factories.IdentityFactory()
    response = _post(
        token_client(world.write_key),
        world.case,
        "reply",
        {**fresh_draft(), "channel_id": world.channel.pk, "text": "Hi", "identity_id": stranger.pk},
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "identity_id"


@pytest.mark.parametrize("action", ["transfer", "escalate", "hand-back"])
def test_moves_without_a_reason_are_reason_required(world, action):
    body = {"to_department_id": world.other_department.pk} if action == "transfer" else {}
    response = _post(session_client(world.supervisor), world.case, action, body)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "reason_required",
        "message": "A reason is required.",
        "field": "reason",
    }
    assert Case.objects.get(pk=world.case.pk).department == world.department


def test_claiming_a_claimed_case_is_a_409(world, other_agent):
    services.case_claim(case=world.case, actor=other_agent)
    response = _post(token_client(world.write_key), world.case, "claim")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_claimed"


def test_claim_assign_status_priority_each_answer_with_the_change(world, other_agent):
    client = token_client(world.write_key)
    assert _post(client, world.case, "claim").json()["assignee"]["id"] == world.agent.pk
    body = _post(client, world.case, "assign", {"assignee_id": other_agent.pk, "reason": "Shift end"}).json()
    assert body["assignee"]["id"] == other_agent.pk
    assert world.agent.pk in body["follower_ids"]
    assert _post(client, world.case, "set-priority", {"priority": "urgent"}).json()["priority"] == "urgent"
    assert _post(client, world.case, "set-status", {"status": "resolved"}).json()["status"] == "resolved"
    kinds = list(CaseEvent.objects.filter(case=world.case, actor=world.agent).values_list("kind", flat=True))
    assert kinds == ["claimed", "assigned", "priority", "status"]


def test_assigning_someone_outside_the_department_is_not_permitted(world):
    response = _post(token_client(world.write_key), world.case, "assign", {"assignee_id": world.agent_b.pk})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"


def test_validation_errors_name_the_field(world):
    client = token_client(world.write_key)
    missing = _post(client, world.case, "set-status", {})
    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "status"
    assert missing.json()["error"]["code"] == "required"
    wrong = _post(client, world.case, "set-status", {"status": "done"})
    assert wrong.json()["error"]["code"] == "invalid_choice"
    unknown = _post(client, world.case, "transfer", {"to_department_id": 987654, "reason": "x"})
    assert unknown.json()["error"]["field"] == "to_department_id"
    empty_note = _post(client, world.case, "note", {"text": "   "})
    assert empty_note.json()["error"] == {
        "code": "invalid",
        "message": "A note cannot be empty.",
        "field": "text",
    }


def test_note_and_call_land_on_the_timeline(world):
    client = token_client(world.write_key)
    _post(client, world.case, "note", {"text": "Line test booked"})
    _post(
        client, world.case, "log-call", {"direction": "in", "number": "+441632960001", "duration_seconds": 75}
    )
    timeline = client.get(f"/api/v1/cases/{world.case.pk}/timeline/").json()["results"]
    assert [(m["direction"], m["kind"]) for m in timeline][-2:] == [("note", "note"), ("in", "call")]
    assert timeline[-1]["call_duration"] == 75


def test_transfer_escalate_hand_back_and_accept(world):
    supervisor = session_client(world.supervisor)
    handed = _post(supervisor, world.case, "hand-back", {"reason": "Billing's", "note": "Invoice issue"})
    assert handed.status_code == 200
    assert handed.json()["department"]["id"] == world.other_department.pk
    billing = session_client(world.agent_b)
    accepted = _post(billing, world.case, "accept", {"note": "Ours"})
    assert accepted.json()["assignee"]["id"] == world.agent_b.pk
    no_path = _post(billing, world.case, "escalate", {"reason": "Up"})
    assert no_path.status_code == 400
    assert no_path.json()["error"]["code"] == "no_escalation_path"
    moved = _post(
        session_client(world.admin),
        world.case,
        "transfer",
        {"to_department_id": world.department.pk, "reason": "Back"},
    )
    assert moved.json()["department"]["id"] == world.department.pk
    escalated = _post(token_client(world.write_key), world.case, "escalate", {"reason": "Needs billing"})
    assert escalated.json()["department"]["id"] == world.other_department.pk


def test_link_and_merge_customers(world):
    client = session_client(world.supervisor)
    stray = factories.IdentityFactory(kind="email", platform_id="dana@example.test")
    services.case_open(customer=stray.customer, channel=world.channel)  # so the supervisor sees it
    linked = client.post(
        f"/api/v1/customers/{world.customer.pk}/link/", {"identity_id": stray.pk}, format="json"
    )
    assert stray.pk in {i["id"] for i in linked.json()["identities"]}
    duplicate = factories.CustomerFactory(name="Dana C.")
    factories.IdentityFactory(customer=duplicate, kind="phone", platform_id="+441632960002")
    moved = services.case_open(customer=duplicate, channel=world.channel)
    merged = client.post(
        f"/api/v1/customers/{world.customer.pk}/merge/", {"source_id": duplicate.pk}, format="json"
    )
    assert merged.status_code == 200
    assert {i["kind"] for i in merged.json()["identities"]} == {"x", "email", "phone"}
    assert Customer.objects.get(pk=duplicate.pk).merged_into_id == world.customer.pk
    assert Case.objects.get(pk=moved.pk).customer_id == world.customer.pk
    again = client.post(
        f"/api/v1/customers/{world.customer.pk}/merge/", {"source_id": duplicate.pk}, format="json"
    )
    assert again.status_code == 400
    assert again.json()["error"]["field"] == "source_id"
    undone = client.post(
        f"/api/v1/customers/{world.customer.pk}/unmerge/",
        {"source_id": duplicate.pk, "reason": "Two people"},
        format="json",
    )
    assert undone.status_code == 200, undone.content
    assert undone.json()["id"] == duplicate.pk and undone.json()["merged_into_id"] is None
    assert Case.objects.get(pk=moved.pk).customer_id == duplicate.pk


def test_customers_and_identities_follow_the_cases_one_may_see(world):
    billing = session_client(world.agent_b)
    assert billing.get(f"/api/v1/customers/{world.customer.pk}/").status_code == 404
    assert billing.get(f"/api/v1/identities/{world.identity.pk}/").status_code == 404
    other = world.other_case.customer_id
    assert billing.get(f"/api/v1/customers/{other}/").status_code == 200
    hidden = billing.post(
        f"/api/v1/customers/{other}/link/", {"identity_id": world.identity.pk}, format="json"
    )
    assert hidden.status_code == 400
    assert hidden.json()["error"] == {
        "code": "does_not_exist",
        "message": "There is no such identity.",
        "field": "identity_id",
    }


def test_monitor_respond_and_move_to_private(world):
    client = token_client(world.write_key)
    monitored = _post(client, world.case, "monitor", {"reason": "Just venting"})
    assert monitored.json()["status"] == "monitoring" and monitored.json()["due_at"] is None
    assert _post(client, world.case, "monitor", {}).json()["error"]["code"] == "reason_required"
    assert _post(client, world.case, "respond", {"reason": "Asks for a refund"}).json()["status"] == "open"
    moved = _post(client, world.case, "move-to-private", {"channel_id": world.channel.pk})
    assert moved.json()["status"] == "waiting_on_customer"
    invitation = Message.objects.filter(case=world.case, direction="out").get()
    assert invitation.is_public and world.case.reference in invitation.text


def test_bulk_reassign_is_all_or_none(world, other_agent):
    client = session_client(world.supervisor)
    body = {"case_ids": [world.case.pk], "assignee_id": other_agent.pk, "reason": "Rota"}
    done = client.post("/api/v1/cases/bulk-reassign/", body, format="json")
    assert [row["assignee"]["id"] for row in done.json()["results"]] == [other_agent.pk]
    body = {"case_ids": [world.case.pk, world.other_case.pk], "assignee_id": world.agent.pk, "reason": "Rota"}
    refused = client.post("/api/v1/cases/bulk-reassign/", body, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "case_ids"
    assert Case.objects.get(pk=world.case.pk).assignee == other_agent


# --- Configuration --------------------------------------------------------------------------------


def test_channels_never_show_secrets_and_show_variable_names_to_admins_only(world, monkeypatch):
    world.channel.secret_env = {"consumer_secret": "X_CONSUMER_SECRET"}
    world.channel.save()
    monkeypatch.setenv("X_CONSUMER_SECRET", "s3cr3t-value")
    agent_view = token_client(world.readonly_key).get(f"/api/v1/channels/{world.channel.pk}/")
    admin_view = session_client(world.admin).get(f"/api/v1/channels/{world.channel.pk}/")
    assert "secret_env" not in agent_view.json() and "api_base_url" not in agent_view.json()
    assert admin_view.json()["secret_env"] == {"consumer_secret": "X_CONSUMER_SECRET"}
    assert b"s3cr3t-value" not in agent_view.content + admin_view.content


def test_a_secret_value_is_refused_where_a_variable_name_belongs(world):
    response = session_client(world.admin).patch(
        f"/api/v1/channels/{world.channel.pk}/",
        {"secret_env": {"app_secret": "abc123-real-secret"}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "secret_env"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/departments/", {"name": "Social Care", "slug": "social-2"}, "name"),
        ("/api/v1/calendars/", {"name": "Office", "time_zone": "Mars/Olympus"}, "time_zone"),
        (
            "/api/v1/calendars/",
            {"name": "Office", "weekly_hours": {"1": [["17:00", "09:00"]]}},
            "weekly_hours",
        ),
        ("/api/v1/service-promises/", {"channel_id": 0, "first_response_minutes": 5}, "channel_id"),
        ("/api/v1/escalation-paths/", {"from_department_id": "{dept}", "to_department_id": "{dept}"}, None),
        (
            "/api/v1/escalation-paths/",
            {"from_department_id": "{dept}", "to_department_id": "{other}", "trigger": "priority"},
            "priority_threshold",
        ),
    ],
)
def test_configuration_rules_are_400s_naming_the_field(world, path, body, field):
    placeholders = {"{dept}": world.department.pk, "{other}": world.other_department.pk}
    body = {
        key: placeholders.get(value, value) if isinstance(value, str) else value
        for key, value in body.items()
    }
    response = session_client(world.admin).post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


def test_a_department_in_use_cannot_be_deleted(world):
    response = session_client(world.admin).delete(f"/api/v1/departments/{world.department.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "in_use"
