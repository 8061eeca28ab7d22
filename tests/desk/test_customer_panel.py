"""The case page's customer panel and suggested contact details: a number or address the
customer wrote that is nobody's is offered as "Add … as this customer's phone?", added or
dismissed from the case, with the panel answered out of band and its queries pinned."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from customers import services as customer_services
from customers.models import Identity, IdentitySuggestion
from tests import factories
from tests.desk.conftest import open_case
from tests.desk.test_case_page import CASE_PAGE_QUERIES

NUMBER = "+44 20 7946 0123"
E164 = "+442079460123"


def words_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def _new_number(channel, *, text=f"Call me on {NUMBER} after six"):
    """Customer Sammy wrote a number that is nobody's: one suggestion of a new phone."""
    case = open_case(channel=channel, customer=factories.CustomerFactory(name="Sammy P"), text=text)
    message = case.messages.get()
    [suggestion] = customer_services.identity_suggestions_record(
        customer=case.customer, text=message.text, source_message_id=message.pk
    )
    return suggestion, case


def test_the_panel_asks_to_add_a_new_number_within_its_queries(
    client, agent, channel, django_assert_num_queries
):
    suggestion, case = _new_number(channel)
    client.force_login(agent)

    with django_assert_num_queries(CASE_PAGE_QUERIES + 1):
        response = client.get(reverse("desk:case", args=[case.reference]))

    body = words_of(response)
    assert f"Add {NUMBER} as this customer's phone?" in body
    assert "another customer's" not in body
    page = response.content.decode()
    assert reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]) in page
    assert reverse("desk:case_suggestion_dismiss", args=[case.reference, suggestion.pk]) in page


def test_the_panel_lists_the_newest_three_and_points_to_the_rest(
    client, agent, channel, django_assert_num_queries
):
    text = "Mine: a1@example.test a2@example.test a3@example.test a4@example.test a5@example.test"
    case = open_case(channel=channel, text=text)
    customer_services.identity_suggestions_record(customer=case.customer, text=text)
    client.force_login(agent)

    with django_assert_num_queries(CASE_PAGE_QUERIES + 1):
        page = client.get(reverse("desk:case", args=[case.reference])).content.decode()

    assert len(re.findall(r'id="panel-suggestion-\d+"', page)) == 3
    assert "More suggestions on the customer page" in page


def test_adding_from_the_case_creates_the_phone_and_answers_the_panel(client, agent, channel):
    suggestion, case = _new_number(channel)
    client.force_login(agent)

    response = client.post(
        reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    identity = Identity.objects.get(kind="phone", platform_id=E164)
    assert identity.customer == case.customer
    assert (identity.link_source, identity.linked_by) == (Identity.LinkSource.SUGGESTED, agent)
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.decided_by) == ("accepted", agent)
    page = response.content.decode()
    panel = page[page.index('id="customer-panel"') :]
    assert (
        'hx-swap-oob="true"' in page[page.index('<aside class="card side-card" id="customer-panel"') :][:200]
    )
    assert E164 in panel and "Suggested" in panel and "as this customer's phone?" not in panel
    assert f"{NUMBER} is now Sammy P's phone (suggested, confirmed by you)." in words_of(response)


def test_without_htmx_adding_redirects_to_the_case(client, agent, channel):
    suggestion, case = _new_number(channel)
    client.force_login(agent)

    response = client.post(reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]))

    assert response.status_code == 302 and response["Location"] == reverse("desk:case", args=[case.reference])
    assert Identity.objects.filter(kind="phone", platform_id=E164, customer=case.customer).exists()


def test_not_theirs_dismisses_it_for_good(client, agent, channel):
    suggestion, case = _new_number(channel)
    client.force_login(agent)

    response = client.post(
        reverse("desk:case_suggestion_dismiss", args=[case.reference, suggestion.pk]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    suggestion.refresh_from_db()
    assert suggestion.status == "dismissed" and not Identity.objects.filter(platform_id=E164).exists()
    assert "as this customer's phone?" not in words_of(response)
    assert customer_services.identity_suggestions_record(customer=case.customer, text=NUMBER) == []
    # Deciding again is a conflict that names the suggestion.
    again = client.post(
        reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]), HTTP_HX_REQUEST="true"
    )
    assert again.status_code == 409
    assert "Suggestion: This suggestion was already dismissed." in words_of(again)


def test_a_suggestion_of_another_customer_cannot_be_decided_from_this_case(client, agent, channel):
    suggestion, _ = _new_number(channel)
    other = open_case(channel=channel)
    client.force_login(agent)

    response = client.post(reverse("desk:case_suggestion_accept", args=[other.reference, suggestion.pk]))

    assert response.status_code == 404
    assert IdentitySuggestion.objects.get(pk=suggestion.pk).status == "open"


def test_an_agent_who_cannot_see_the_case_cannot_decide(client, outsider, channel):
    suggestion, case = _new_number(channel)
    client.force_login(outsider)

    response = client.post(reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]))

    assert response.status_code == 404
    assert not Identity.objects.filter(platform_id=E164).exists()


def test_a_follower_without_a_role_sees_the_question_but_no_buttons(client, channel):
    suggestion, case = _new_number(channel)
    follower = factories.UserFactory(username="follower", email="follower@example.test")
    case.followers.add(follower)
    client.force_login(follower)

    response = client.get(reverse("desk:case", args=[case.reference]))

    assert f"Add {NUMBER} as this customer's phone?" in words_of(response)
    assert reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]) not in (
        response.content.decode()
    )
    refused = client.post(
        reverse("desk:case_suggestion_accept", args=[case.reference, suggestion.pk]), HTTP_HX_REQUEST="true"
    )
    assert refused.status_code == 403
    assert "Only members of a department decide suggested contact details." in words_of(refused)
    assert IdentitySuggestion.objects.get(pk=suggestion.pk).status == "open"


def test_the_customer_page_words_a_new_contact_as_an_addition(client, agent, channel):
    suggestion, _ = _new_number(channel)
    client.force_login(agent)

    body = words_of(client.get(reverse("desk:customer", args=[suggestion.customer_id])))

    assert f"Sammy P wrote {NUMBER} in a message on" in body
    assert f"It is nobody's on file: add {E164} as this customer's phone?" in body
    assert "Add it to Sammy P" in body and "Not theirs" in body
    assert "Linking moves only this identity" not in body


@pytest.mark.parametrize("count", [1, 3])
def test_the_case_page_costs_the_same_with_both_kinds(
    client, agent, channel, django_assert_num_queries, count
):
    case = open_case(channel=channel)
    for n in range(count):
        factories.IdentityFactory(kind="email", platform_id=f"taken{n}@example.test")
        customer_services.identity_suggestions_record(
            customer=case.customer, text=f"taken{n}@example.test and +44 20 7946 01{n:02d}"
        )
    client.force_login(agent)

    with django_assert_num_queries(CASE_PAGE_QUERIES + 1):
        client.get(reverse("desk:case", args=[case.reference]))
