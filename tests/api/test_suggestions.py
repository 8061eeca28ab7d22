"""Suggested links over the API: a customer's suggestions, accept (links as "suggested"), dismiss,
refusals in the one error shape, 404 for customers the user does not see, pinned query counts."""

from __future__ import annotations

import pytest

from cases import services
from cases.models import Case
from customers import services as customer_services
from customers.models import Identity, IdentitySuggestion
from tests import factories

from .conftest import session_client, token_client

# token+user, memberships, the page (with each suggestion's identity)
SUGGESTIONS_QUERIES = 3
# token+user, memberships, the customer (may the user see them?), the page
CUSTOMER_SUGGESTIONS_QUERIES = 4


def _suggest(world, n: int = 0, *, channel=None) -> IdentitySuggestion:
    """The world's customer wrote the address of another customer, who has a case on ``channel``."""
    address = f"other{n}@example.test"
    other = factories.IdentityFactory(kind="email", platform_id=address)
    services.case_open(customer=other.customer, channel=channel or world.channel)
    [suggestion] = customer_services.identity_suggestions_record(
        customer=world.customer, text=f"Also try {address}", source_message_id=world.message.pk
    )
    return suggestion


def test_customer_suggestions_list_what_was_written_and_whose_it_is(world):
    suggestion = _suggest(world)

    response = session_client(world.agent).get(f"/api/v1/customers/{world.customer.pk}/suggestions/")

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["id"] == suggestion.pk and row["customer_id"] == world.customer.pk
    assert row["value"] == "other0@example.test" and row["status"] == "open"
    assert row["source_message_id"] == world.message.pk
    assert row["identity"]["customer_id"] == suggestion.identity.customer_id
    assert row["identity"]["platform_id"] == "other0@example.test"
    assert "display_name" not in row["identity"]  # the other customer may be one the reader does not see


def test_a_hidden_customer_suggestions_are_404_like_a_missing_customer(world):
    _suggest(world)
    client = session_client(world.agent_b)

    hidden = client.get(f"/api/v1/customers/{world.customer.pk}/suggestions/")
    missing = client.get("/api/v1/customers/987654321/suggestions/")

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_accept_links_the_identity_as_suggested(world):
    suggestion = _suggest(world)
    old_customer = suggestion.identity.customer_id

    response = session_client(world.agent).post(f"/api/v1/identity-suggestions/{suggestion.pk}/accept/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "accepted" and body["decided_by_id"] == world.agent.pk
    assert body["identity"]["customer_id"] == world.customer.pk
    assert body["identity"]["link_source"] == "suggested"
    identity = Identity.objects.get(pk=suggestion.identity_id)
    assert (identity.customer_id, identity.link_source, identity.linked_by) == (
        world.customer.pk,
        Identity.LinkSource.SUGGESTED,
        world.agent,
    )
    # Linking is not merging: the old customer keeps their case.
    assert Case.objects.filter(customer_id=old_customer).exists()


def test_dismiss_keeps_the_identity_and_a_second_decision_is_a_conflict(world):
    suggestion = _suggest(world)
    owner = suggestion.identity.customer_id
    client = session_client(world.agent)

    dismissed = client.post(f"/api/v1/identity-suggestions/{suggestion.pk}/dismiss/")
    accepted = client.post(f"/api/v1/identity-suggestions/{suggestion.pk}/accept/")

    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert Identity.objects.get(pk=suggestion.identity_id).customer_id == owner
    assert accepted.status_code == 409
    assert accepted.json() == {
        "error": {
            "code": "already_decided",
            "message": "This suggestion was already dismissed.",
            "field": None,
        }
    }


def test_accepting_for_a_customer_merged_away_is_a_conflict(world):
    suggestion = _suggest(world)
    target = factories.IdentityFactory().customer
    services.case_open(customer=target, channel=world.channel)
    services.customer_merge(source=world.customer, target=target, actor=world.supervisor)

    response = session_client(world.admin).post(f"/api/v1/identity-suggestions/{suggestion.pk}/accept/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "customer_merged"
    assert IdentitySuggestion.objects.get(pk=suggestion.pk).status == "open"


def test_another_departments_suggestion_cannot_be_decided(world):
    suggestion = _suggest(world)

    response = session_client(world.agent_b).post(f"/api/v1/identity-suggestions/{suggestion.pk}/accept/")

    assert response.status_code == 404
    assert IdentitySuggestion.objects.get(pk=suggestion.pk).status == "open"


def test_suggestions_filter_by_status_and_customer(world):
    first, second = _suggest(world, 0), _suggest(world, 1)
    customer_services.identity_suggestion_dismiss(suggestion=first, actor=world.agent)
    client = session_client(world.agent)

    open_rows = client.get("/api/v1/identity-suggestions/", {"status": "open"}).json()["results"]
    by_customer = client.get("/api/v1/identity-suggestions/", {"customer_id": world.customer.pk}).json()
    bad = client.get("/api/v1/identity-suggestions/", {"status": "maybe"})

    assert [row["id"] for row in open_rows] == [second.pk]
    assert [row["id"] for row in by_customer["results"]] == [second.pk, first.pk]  # newest first
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        ("/api/v1/identity-suggestions/", SUGGESTIONS_QUERIES),
        ("/api/v1/customers/{id}/suggestions/", CUSTOMER_SUGGESTIONS_QUERIES),
    ],
)
def test_suggestion_lists_cost_the_same_for_few_rows_as_for_many(
    world, django_assert_num_queries, path, queries
):
    url = path.format(id=world.customer.pk)
    _suggest(world, 0)
    client = token_client(world.write_key)
    assert client.get(url).status_code == 200  # the token's last-used write is not counted

    with django_assert_num_queries(queries):
        few = client.get(url, {"limit": 100})
    for n in range(1, 25):
        _suggest(world, n)
    with django_assert_num_queries(queries):
        many = client.get(url, {"limit": 100})

    assert len(few.json()["results"]) == 1
    assert len(many.json()["results"]) == 25


def test_a_new_number_is_listed_without_an_identity_and_accepting_creates_it(world):
    [suggestion] = customer_services.identity_suggestions_record(
        customer=world.customer, text="or call +44 20 7946 0123", source_message_id=world.message.pk
    )
    _suggest(world)
    client = session_client(world.agent)

    rows = client.get(f"/api/v1/customers/{world.customer.pk}/suggestions/?new_contact=true").json()[
        "results"
    ]

    assert [(r["id"], r["kind"], r["platform_id"], r["value"], r["identity"]) for r in rows] == [
        (suggestion.pk, "phone", "+442079460123", "+44 20 7946 0123", None)
    ]
    matches = client.get("/api/v1/identity-suggestions/?new_contact=false&kind=email").json()["results"]
    assert [(r["kind"], r["platform_id"]) for r in matches] == [("email", "other0@example.test")]
    response = client.post(f"/api/v1/identity-suggestions/{suggestion.pk}/accept/")
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert response.json()["identity"] is None  # it names what was suggested: nobody's then
    identity = Identity.objects.get(kind="phone", platform_id="+442079460123")
    assert (identity.customer_id, identity.link_source, identity.linked_by) == (
        world.customer.pk,
        Identity.LinkSource.SUGGESTED,
        world.agent,
    )
