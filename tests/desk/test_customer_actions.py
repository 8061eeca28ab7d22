"""The customer page's actions: suggested links (accept, dismiss), merging another customer in,
undoing a merge, the privacy link; who is offered each, what each records, and what bad input
says. Also the case page's notice of a customer's open suggestions."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from cases import services
from cases.models import Case, CaseEvent, Membership
from customers import services as customer_services
from customers.models import Customer, CustomerMerge, Identity, IdentitySuggestion
from tests import factories
from tests.desk.conftest import open_case
from tests.desk.test_case_page import CASE_PAGE_QUERIES
from tests.desk.test_customer_and_board import CUSTOMER_QUERIES

# The agent's count, plus "may the supervisor export this customer?" (a case they see).
SUPERVISOR_CUSTOMER_QUERIES = CUSTOMER_QUERIES + 1
# Admins see every customer: no memberships, no "may see one of their cases?" query.
ADMIN_CUSTOMER_QUERIES = CUSTOMER_QUERIES - 2


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def words_of(response) -> str:
    """The page's text as a reader sees it (tags dropped)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def admin(db):
    return factories.UserFactory(username="admin", email="admin@example.test", is_staff=True)


@pytest.fixture
def billing_agent(other_department):
    user = factories.UserFactory(username="billing", email="billing@example.test")
    factories.MembershipFactory(user=user, department=other_department, role=Membership.Role.AGENT)
    return user


def _suggested(channel, *, other_channel=None, value="sam.porter@example.test"):
    """Customer ``writer`` wrote ``value`` on a case of ``channel``; it is an e-mail identity of
    ``owner``, who has a case on ``other_channel`` (default: the same channel)."""
    owner = factories.CustomerFactory(name="Sam Porter")
    owned = factories.IdentityFactory(customer=owner, kind="email", platform_id=value, handle=value)
    owner_case = open_case(channel=other_channel or channel, customer=owner, subject="Old account")
    writer = factories.CustomerFactory(name="Sammy P")
    case = open_case(channel=channel, customer=writer, text=f"You can reach me at {value} too")
    message = case.messages.get()
    [suggestion] = customer_services.identity_suggestions_record(
        customer=writer, text=message.text, source_message_id=message.pk
    )
    return suggestion, case, owned, owner_case


# --- Suggestions -------------------------------------------------------------------------------------


def test_open_suggestion_shows_what_where_and_whose(client, agent, channel):
    suggestion, case, owned, _ = _suggested(channel)
    client.force_login(agent)

    body = words_of(client.get(reverse("desk:customer", args=[suggestion.customer_id])))

    assert "Possible identities" in body
    assert "Sammy P wrote sam.porter@example.test in a message on " + case.reference in body
    assert f"of Sam Porter #{owned.customer_id}" in body
    page = client.get(reverse("desk:customer", args=[suggestion.customer_id])).content.decode()
    assert reverse("desk:customer_suggestion_accept", args=[suggestion.customer_id, suggestion.pk]) in page
    assert reverse("desk:customer_suggestion_dismiss", args=[suggestion.customer_id, suggestion.pk]) in page


def test_suggestion_names_the_other_customer_only_to_who_sees_them(client, agent, channel, billing_channel):
    suggestion, _, owned, _ = _suggested(channel, other_channel=billing_channel)
    client.force_login(agent)

    body = words_of(client.get(reverse("desk:customer", args=[suggestion.customer_id])))

    assert f"another customer (#{owned.customer_id}, none of whose cases you see)" in body
    assert "Sam Porter" not in body


def test_accepting_links_the_identity_as_suggested_by_the_agent(client, agent, channel):
    suggestion, _, owned, owner_case = _suggested(channel)
    client.force_login(agent)

    response = client.post(
        reverse("desk:customer_suggestion_accept", args=[suggestion.customer_id, suggestion.pk])
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("desk:customer", args=[suggestion.customer_id])
    owned.refresh_from_db()
    suggestion.refresh_from_db()
    assert owned.customer_id == suggestion.customer_id
    assert (owned.link_source, owned.linked_by) == (Identity.LinkSource.SUGGESTED, agent)
    assert (suggestion.status, suggestion.decided_by) == (IdentitySuggestion.Status.ACCEPTED, agent)
    # Linking is not merging: the old owner keeps their case.
    owner_case.refresh_from_db()
    assert owner_case.customer.name == "Sam Porter"
    body = text_of(client.get(response["Location"]))
    assert "is now linked to Sammy P" in body
    assert "Possible identities" not in body
    assert "sam.porter@example.test" in body and "Suggested" in body and f"by {agent.get_full_name()}" in body


def test_accepting_with_htmx_answers_the_page_with_the_message(client, agent, channel):
    suggestion, _, _, _ = _suggested(channel)
    client.force_login(agent)

    response = client.post(
        reverse("desk:customer_suggestion_accept", args=[suggestion.customer_id, suggestion.pk]),
        HTTP_HX_REQUEST="true",
    )

    body = text_of(response)
    assert response.status_code == 200
    assert 'id="customer-body"' in response.content.decode()
    assert "is now linked to Sammy P" in body


def test_dismissing_keeps_the_identity_where_it_was(client, agent, channel):
    suggestion, _, owned, _ = _suggested(channel)
    client.force_login(agent)

    response = client.post(
        reverse("desk:customer_suggestion_dismiss", args=[suggestion.customer_id, suggestion.pk]),
        follow=True,
    )

    owned.refresh_from_db()
    suggestion.refresh_from_db()
    assert owned.customer.name == "Sam Porter"
    assert (suggestion.status, suggestion.decided_by) == (IdentitySuggestion.Status.DISMISSED, agent)
    body = text_of(response)
    assert "will not be suggested for Sammy P again" in body
    assert "Possible identities" not in body


def test_accepting_a_dismissed_suggestion_is_refused_naming_it(client, agent, channel):
    suggestion, _, owned, _ = _suggested(channel)
    customer_services.identity_suggestion_dismiss(suggestion=suggestion, actor=agent)
    client.force_login(agent)

    response = client.post(
        reverse("desk:customer_suggestion_accept", args=[suggestion.customer_id, suggestion.pk])
    )

    assert response.status_code == 409
    assert "Suggestion: This suggestion was already dismissed." in text_of(response)
    owned.refresh_from_db()
    assert owned.customer.name == "Sam Porter"


def test_suggestions_are_reached_through_their_own_customer_only(
    client, agent, billing_agent, channel, billing_channel
):
    suggestion, _, owned, _ = _suggested(channel)
    other = open_case(channel=channel).customer
    client.force_login(agent)
    wrong_customer = reverse("desk:customer_suggestion_accept", args=[other.pk, suggestion.pk])
    assert client.post(wrong_customer).status_code == 404
    client.force_login(billing_agent)
    unseen = reverse("desk:customer_suggestion_accept", args=[suggestion.customer_id, suggestion.pk])
    assert client.post(unseen).status_code == 404

    suggestion.refresh_from_db()
    assert suggestion.status == IdentitySuggestion.Status.OPEN
    assert client.get(unseen).status_code == 405


# --- Linking an identity by hand ----------------------------------------------------------------------


def test_agent_links_an_identity_by_handle_as_an_agents_link(client, agent, channel):
    customer = open_case(channel=channel).customer
    other_case = open_case(channel=channel)
    identity = factories.IdentityFactory(
        customer=other_case.customer, kind="x", platform_id="4242", handle="@dana"
    )
    client.force_login(agent)

    response = client.post(
        reverse("desk:customer_link", args=[customer.pk]), {"kind": "x", "identifier": "DANA"}
    )

    assert response.status_code == 302
    identity.refresh_from_db()
    assert (identity.customer_id, identity.link_source, identity.linked_by) == (
        customer.pk,
        Identity.LinkSource.AGENT,
        agent,
    )
    other_case.refresh_from_db()
    assert other_case.customer_id != customer.pk  # a link moves the identity, not the cases
    assert "is now linked to" in text_of(client.get(response["Location"]))


def test_linking_by_platform_id_in_any_spelling(client, agent, channel):
    customer = open_case(channel=channel).customer
    other = open_case(channel=channel).customer
    phone = factories.IdentityFactory(customer=other, kind="phone", platform_id="+12025550188")
    client.force_login(agent)

    client.post(
        reverse("desk:customer_link", args=[customer.pk]), {"kind": "phone", "identifier": "(202) 555-0188"}
    )

    phone.refresh_from_db()
    assert phone.customer_id == customer.pk


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        (
            {"kind": "x", "identifier": "@nobody"},
            "Handle, address or number: No X identity '@nobody' that you can see.",
        ),
        (
            {"kind": "x", "identifier": "@hidden"},
            "Handle, address or number: No X identity '@hidden' that you can see.",
        ),
        ({"kind": "x", "identifier": "@mine"}, "Handle, address or number: X: @mine is already"),
        ({"kind": "x", "identifier": "  "}, "Handle, address or number: This field is required."),
        ({"kind": "fax", "identifier": "@mine"}, "Platform: Select a valid choice."),
    ],
)
def test_bad_link_input_names_the_field(client, agent, channel, billing_channel, posted, error):
    customer = open_case(channel=channel).customer
    factories.IdentityFactory(customer=customer, kind="x", platform_id="1111", handle="@mine")
    hidden = open_case(channel=billing_channel).customer
    hidden_identity = factories.IdentityFactory(
        customer=hidden, kind="x", platform_id="2222", handle="@hidden"
    )
    client.force_login(agent)

    response = client.post(reverse("desk:customer_link", args=[customer.pk]), posted)

    assert response.status_code == 400
    assert error in text_of(response)
    hidden_identity.refresh_from_db()
    assert hidden_identity.customer_id == hidden.pk


def test_a_merged_away_customer_offers_no_links(client, supervisor, channel):
    target, source_case = _two_customers(channel)
    services.customer_merge(source=source_case.customer, target=target, actor=supervisor)
    client.force_login(supervisor)

    body = client.get(reverse("desk:customer", args=[source_case.customer_id])).content.decode()

    assert reverse("desk:customer_link", args=[source_case.customer_id]) not in body
    assert reverse("desk:customer_merge", args=[source_case.customer_id]) not in body


# --- Merge and unmerge ---------------------------------------------------------------------------------


def _two_customers(channel):
    target = open_case(channel=channel, subject="Router").customer
    source_case = open_case(channel=channel, subject="Also router")
    return target, source_case


def test_merge_form_is_for_supervisors_and_admins(client, agent, supervisor, admin, channel):
    target, _ = _two_customers(channel)
    url = reverse("desk:customer", args=[target.pk])
    merge_url = reverse("desk:customer_merge", args=[target.pk])

    client.force_login(agent)
    assert merge_url not in client.get(url).content.decode()
    for user in (supervisor, admin):
        client.force_login(user)
        body = text_of(client.get(url))
        assert merge_url in body and "Merge another customer into this one" in body


def test_an_agent_cannot_merge(client, agent, channel):
    target, source_case = _two_customers(channel)
    client.force_login(agent)

    response = client.post(
        reverse("desk:customer_merge", args=[target.pk]), {"source": source_case.customer_id, "confirm": "1"}
    )

    assert response.status_code == 403
    assert "Only supervisors and admins merge customers." in text_of(response)
    assert Customer.objects.get(pk=source_case.customer_id).merged_into_id is None


def test_supervisor_merges_by_number_and_the_cases_record_it(client, supervisor, channel):
    target, source_case = _two_customers(channel)
    source = source_case.customer
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:customer_merge", args=[target.pk]), {"source": f"#{source.pk}", "confirm": "on"}
    )

    assert response.status_code == 302
    source.refresh_from_db()
    source_case.refresh_from_db()
    assert source.merged_into_id == target.pk
    assert source_case.customer_id == target.pk
    event = CaseEvent.objects.get(case=source_case, kind=CaseEvent.Kind.MERGED)
    assert event.actor == supervisor and event.after["customer"] == target.pk
    assert CustomerMerge.objects.get(source=source).actor == supervisor
    body = text_of(client.get(response["Location"]))
    assert f"(#{source.pk}) was merged into" in body
    assert "Merged into this customer" in body and source_case.reference in body


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"source": "abc", "confirm": "1"}, "Customer number: Enter a customer number, such as 123."),
        ({"source": "", "confirm": "1"}, "Customer number: This field is required."),
        ({"source": "SOURCE"}, "Confirm: Tick the box to confirm: their identities and cases move here."),
        ({"source": "TARGET", "confirm": "1"}, "Customer number: That is this customer;"),
        (
            {"source": "999999", "confirm": "1"},
            "Customer number: There is no customer #999999 that you can see.",
        ),
        ({"source": "HIDDEN", "confirm": "1"}, "that you can see."),
        ({"source": "9" * 20, "confirm": "1"}, f"Customer number: There is no customer #{'9' * 20}."),
    ],
)
def test_bad_merge_input_names_the_field(client, supervisor, channel, billing_channel, posted, error):
    target, source_case = _two_customers(channel)
    hidden = open_case(channel=billing_channel).customer
    numbers = {"SOURCE": source_case.customer_id, "TARGET": target.pk, "HIDDEN": hidden.pk}
    data = {key: str(numbers.get(value, value)) for key, value in posted.items()}
    client.force_login(supervisor)

    response = client.post(reverse("desk:customer_merge", args=[target.pk]), data)

    assert response.status_code == 400
    assert error in text_of(response)
    assert not Customer.objects.filter(merged_into__isnull=False).exists()
    if data.get("source"):  # what was typed stays in the form
        assert f'value="{data["source"]}"' in response.content.decode()


def test_merging_a_customer_already_merged_is_refused_naming_it(client, supervisor, channel):
    target, source_case = _two_customers(channel)
    third = open_case(channel=channel).customer
    services.customer_merge(source=source_case.customer, target=third, actor=supervisor)
    client.force_login(supervisor)

    response = client.post(
        reverse("desk:customer_merge", args=[target.pk]), {"source": source_case.customer_id, "confirm": "1"}
    )

    assert response.status_code == 400
    assert "Customer number: " in text_of(response) and "was already merged." in text_of(response)


def test_merged_away_customer_shows_unmerge_to_supervisors_only(client, agent, supervisor, channel):
    target, source_case = _two_customers(channel)
    source = source_case.customer
    services.customer_merge(source=source, target=target, actor=supervisor)
    url = reverse("desk:customer", args=[source.pk])
    unmerge_url = reverse("desk:customer_unmerge", args=[source.pk])

    client.force_login(agent)
    response = client.get(url)
    assert response.status_code == 200  # they see the customer it went into, so this page too
    assert "This customer was merged into" in text_of(response)
    assert unmerge_url not in response.content.decode()
    assert client.post(unmerge_url, {"reason": "Two people"}).status_code == 403
    assert Customer.objects.get(pk=source.pk).merged_into_id == target.pk

    client.force_login(supervisor)
    body = text_of(client.get(url))
    assert unmerge_url in body and f"by {supervisor.get_full_name()}" in body


def test_unmerge_needs_a_reason_and_records_it(client, supervisor, channel):
    target, source_case = _two_customers(channel)
    source = source_case.customer
    services.customer_merge(source=source, target=target, actor=supervisor)
    client.force_login(supervisor)
    url = reverse("desk:customer_unmerge", args=[source.pk])

    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 400
    assert "Reason: Say why; it stays on the case's record." in text_of(refused)

    done = client.post(url, {"reason": "Two people with one name"})

    assert done.status_code == 302 and done["Location"] == reverse("desk:customer", args=[source.pk])
    source.refresh_from_db()
    source_case.refresh_from_db()
    assert source.merged_into_id is None and source_case.customer_id == source.pk
    undo = CaseEvent.objects.filter(case=source_case, kind=CaseEvent.Kind.MERGED).latest("id")
    assert undo.actor == supervisor and "Two people with one name" in undo.reason
    assert CustomerMerge.objects.get(source=source).undone_by == supervisor
    assert "is a customer of their own again" in text_of(client.get(done["Location"]))


def test_unmerging_a_customer_that_is_not_merged_names_it(client, supervisor, channel):
    target, _ = _two_customers(channel)
    client.force_login(supervisor)

    response = client.post(reverse("desk:customer_unmerge", args=[target.pk]), {"reason": "Oops"})

    assert response.status_code == 400
    assert "Customer number: " in text_of(response) and "is not merged into another customer." in text_of(
        response
    )


# --- Privacy link ----------------------------------------------------------------------------------------


def test_privacy_link_for_supervisors_and_admins(client, agent, supervisor, admin, channel):
    customer = open_case(channel=channel).customer
    url = reverse("desk:customer", args=[customer.pk])
    privacy = reverse("privacy:customer", args=[customer.pk])

    client.force_login(agent)
    assert privacy not in client.get(url).content.decode()
    for user in (supervisor, admin):
        client.force_login(user)
        assert f'href="{privacy}"' in client.get(url).content.decode()


# --- Query counts --------------------------------------------------------------------------------------


def _busy_customer(channel, supervisor, count: int) -> Customer:
    """A customer with ``count`` identities, open suggestions, cases and customers merged in."""
    customer = factories.CustomerFactory(name="Busy")
    for n in range(count):
        open_case(
            channel=channel,
            customer=customer,
            text=f"write to me at other{n}@example.test or new{n}@example.test",
        )
        other = open_case(channel=channel).customer
        factories.IdentityFactory(customer=other, kind="email", platform_id=f"other{n}@example.test")
        factories.IdentityFactory(customer=customer, kind="facebook", platform_id=f"fb-busy-{n}")
        merged = open_case(channel=channel).customer
        services.customer_merge(source=merged, target=customer, actor=supervisor)
    for message in Case.objects.filter(customer=customer).values_list("messages__pk", "messages__text"):
        customer_services.identity_suggestions_record(
            customer=customer, text=message[1], source_message_id=message[0]
        )
    return customer


@pytest.mark.parametrize("count", [2, 12])
@pytest.mark.parametrize(
    ("role", "queries"),
    [
        ("agent", CUSTOMER_QUERIES),
        ("supervisor", SUPERVISOR_CUSTOMER_QUERIES),
        ("admin", ADMIN_CUSTOMER_QUERIES),
    ],
)
def test_customer_page_query_count_is_fixed(
    client, agent, supervisor, admin, channel, django_assert_num_queries, count, role, queries
):
    customer = _busy_customer(channel, supervisor, count)
    client.force_login({"agent": agent, "supervisor": supervisor, "admin": admin}[role])

    with django_assert_num_queries(queries):
        response = client.get(reverse("desk:customer", args=[customer.pk]))

    body = response.content.decode()
    # Each message gave two: another customer's address, and one that is nobody's.
    assert body.count('class="suggestion"') == 2 * count
    assert body.count("It is nobody's on file") == count
    assert len(re.findall(r'<tr data-case="', body)) == 2 * count  # their own and the merged ones
    assert len(re.findall(r'id="unmerge-reason-\d+"', body)) == (0 if role == "agent" else count)


# --- The case page's notice ------------------------------------------------------------------------------


def test_case_page_notes_open_suggestions_within_its_queries(
    client, agent, channel, django_assert_num_queries
):
    suggestion, case, _, _ = _suggested(channel)
    client.force_login(agent)
    url = reverse("desk:case", args=[case.reference])

    # The panel lists the customer's open suggestions: one query more, only when there are some.
    with django_assert_num_queries(CASE_PAGE_QUERIES + 1):
        body = words_of(client.get(url))

    assert "This customer wrote sam.porter@example.test , which is another customer's e-mail address." in body
    assert "Review the suggested link" in body and "Sam Porter" not in body
    customer_services.identity_suggestion_dismiss(suggestion=suggestion, actor=agent)
    with django_assert_num_queries(CASE_PAGE_QUERIES):
        assert "Review the suggested link" not in text_of(client.get(url))
