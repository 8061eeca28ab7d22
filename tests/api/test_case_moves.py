"""Merging cases, splitting a message off and taking over a reply over the API."""

from __future__ import annotations

from django.utils import timezone

from cases import drafts, services
from cases.models import Case, CaseEvent, Message
from tests import factories

from .conftest import session_client, token_client


def _second_case(
    world, *, customer=None, identity=None, channel=None, text="Still broken", external_id="t-2"
):
    customer = customer or world.customer
    channel = channel or world.channel
    case = services.case_open(customer=customer, channel=channel)
    services.message_add(
        case=case, direction="in", kind="post", text=text, channel=channel,
        identity=identity or world.identity, external_id=external_id,
    )  # fmt: skip
    return case


def _merge(client, target, body):
    return client.post(f"/api/v1/cases/{target.pk}/merge/", body, format="json")


def test_merge_answers_with_the_target_and_closes_the_source(world):
    source = _second_case(world)
    response = _merge(
        token_client(world.write_key), world.case, {"source_id": source.pk, "reason": "Same router"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == world.case.pk and body["first_inbound_at"] is not None
    assert set(Message.objects.filter(case=world.case).values_list("external_id", flat=True)) == {
        "t-1",
        "t-2",
    }
    source.refresh_from_db()
    assert source.status == Case.Status.CLOSED
    assert CaseEvent.objects.filter(kind="merged", actor=world.agent).count() == 2


def test_merge_needs_a_reason(world):
    source = _second_case(world)
    response = _merge(token_client(world.write_key), world.case, {"source_id": source.pk})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "reason_required",
        "message": "A reason is required.",
        "field": "reason",
    }


def test_merge_into_itself_names_the_source(world):
    response = _merge(token_client(world.write_key), world.case, {"source_id": world.case.pk, "reason": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "source_id"


def test_a_source_in_another_department_looks_like_a_missing_one(world):
    client = token_client(world.write_key)
    hidden = _merge(client, world.case, {"source_id": world.other_case.pk, "reason": "x"})
    missing = _merge(client, world.case, {"source_id": 987654321, "reason": "x"})
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json() == missing.json()
    assert hidden.json()["error"] == {
        "code": "does_not_exist",
        "message": "There is no such case.",
        "field": "source_id",
    }
    assert Case.objects.get(pk=world.other_case.pk).status != Case.Status.CLOSED


def test_a_source_the_user_only_follows_is_403(world):
    # agent follows the Billing case: sees it, may not close it
    world.other_case.followers.add(world.agent)
    response = _merge(
        token_client(world.write_key), world.case, {"source_id": world.other_case.pk, "reason": "x"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"


def test_merge_across_customers_when_the_user_works_both(world):
    other = factories.IdentityFactory(kind="x", platform_id="31337")
    source = _second_case(world, customer=other.customer, identity=other, external_id="o-1")
    response = _merge(
        token_client(world.write_key), world.case, {"source_id": source.pk, "reason": "Household"}
    )
    assert response.status_code == 200, response.content
    assert Message.objects.get(external_id="o-1").case_id == world.case.pk


def test_split_answers_with_the_new_case(world):
    later = services.message_add(
        case=world.case, direction="in", kind="post", text="And my bill", channel=world.channel,
        identity=world.identity, external_id="t-3",
    )  # fmt: skip
    response = token_client(world.write_key).post(
        f"/api/v1/messages/{later.pk}/split/", {"reason": "Billing"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] != world.case.pk and body["customer"]["id"] == world.customer.pk
    assert body["department"]["id"] == world.department.pk and body["subject"] == "And my bill"
    later.refresh_from_db()
    assert later.case_id == body["id"]


def test_split_refusals_share_the_error_shape(world):
    client = token_client(world.write_key)
    only = client.post(f"/api/v1/messages/{world.message.pk}/split/", {"reason": "x"}, format="json")
    assert only.status_code == 400 and "Nothing would be left" in only.json()["error"]["message"]
    no_reason = client.post(f"/api/v1/messages/{world.message.pk}/split/", {}, format="json")
    assert no_reason.json()["error"]["code"] == "reason_required"
    hidden = session_client(world.agent_b).post(
        f"/api/v1/messages/{world.message.pk}/split/", {"reason": "x"}, format="json"
    )
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"


def test_take_over_a_reply(world, django_capture_on_commit_callbacks):
    drafts.draft_lock_acquire(case=world.case, user=world.agent)
    with django_capture_on_commit_callbacks(execute=True):
        response = session_client(world.supervisor).post(
            f"/api/v1/cases/{world.case.pk}/take-over-reply/", {"reason": "Angry customer"}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["case_id"], body["user_id"], body["taken_from"]) == (
        world.case.pk,
        world.supervisor.pk,
        drafts.display_name(world.agent),
    )
    event = CaseEvent.objects.get(case=world.case, kind="draft_taken")
    assert event.before == {"holder": world.agent.pk} and event.reason == "Angry customer"
    # the agent's own send is now refused
    refused = token_client(world.write_key).post(
        f"/api/v1/cases/{world.case.pk}/reply/",
        {"channel_id": world.channel.pk, "text": "Hi", "draft_started_at": timezone.now().isoformat()},
        format="json",
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "draft_locked"


def test_an_agent_may_not_take_over(world):
    response = token_client(world.write_key).post(
        f"/api/v1/cases/{world.case.pk}/take-over-reply/", {}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"
