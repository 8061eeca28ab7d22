"""Customers: link suggestions from what customers write, merge and unmerge, and the import rule."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cases import ingest, services, suggestion_services
from cases.errors import ServiceError
from cases.models import Case, CaseEvent
from connectors.base import InboundMessage
from customers import services as customer_services
from customers.errors import CustomerRefused
from customers.models import Customer, CustomerMerge, Identity, IdentitySuggestion
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def dm(external_id: str, text: str, *, author: str = "5150", at: datetime = T0) -> InboundMessage:
    return InboundMessage(
        platform="x", external_id=external_id, author_id=author, kind="dm", sent_at=at, text=text
    )


@pytest.fixture
def rosa_by_mail(db):
    """Rosa wrote to us by e-mail and phone before; she is her own customer there."""
    rosa = factories.CustomerFactory(name="Rosa D")
    mail = factories.IdentityFactory(customer=rosa, kind="email", platform_id="rosa@example.test")
    phone = factories.IdentityFactory(customer=rosa, kind="phone", platform_id="+14155550199")
    return rosa, mail, phone


# --- suggestions ---------------------------------------------------------------------------------


def test_an_address_of_another_customer_in_a_message_is_suggested_never_merged(channel, rosa_by_mail):
    rosa, mail, _ = rosa_by_mail

    message = ingest.ingest(channel=channel, inbound=dm("d1", "it's me, write to ROSA@example.test please"))

    suggestion = IdentitySuggestion.objects.get()
    assert suggestion.customer == message.identity.customer != rosa
    assert suggestion.identity == mail and suggestion.value == "ROSA@example.test"
    assert suggestion.source_message_id == message.pk and suggestion.status == "open"
    assert mail.customer == rosa and Customer.objects.filter(merged_into__isnull=False).count() == 0
    assert Identity.objects.get(pk=mail.pk).customer == rosa


def test_a_phone_number_matches_phone_and_whatsapp_identities(channel, rosa_by_mail):
    rosa, _, phone = rosa_by_mail
    whatsapp = factories.IdentityFactory(customer=rosa, kind="whatsapp", platform_id="14155550199")

    ingest.ingest(channel=channel, inbound=dm("d1", "call me on (415) 555-0199 after six"))

    assert set(IdentitySuggestion.objects.values_list("identity", flat=True)) == {phone.pk, whatsapp.pk}


def test_own_identities_suggest_nothing_and_cost_no_query_without_a_value(
    channel, rosa_by_mail, django_assert_num_queries
):
    rosa, _, _ = rosa_by_mail
    first = ingest.ingest(channel=channel, inbound=dm("d1", "hello"))
    factories.IdentityFactory(customer=first.identity.customer, kind="email", platform_id="me@example.test")

    ingest.ingest(channel=channel, inbound=dm("d2", "write to ME@example.test please"))

    assert not IdentitySuggestion.objects.exists()
    phone = rosa.identities.get(kind="phone")
    with django_assert_num_queries(0):
        assert customer_services.identity_suggestions_record(customer=rosa, text="no contact here") == []
        # A call's text names the caller's own number: nothing to look up.
        assert (
            customer_services.identity_suggestions_record(
                customer=rosa, text=f"Call from {phone.platform_id}", author=phone
            )
            == []
        )
    # Her own address and number, written: one look-up, nothing to write.
    with django_assert_num_queries(1):
        assert (
            customer_services.identity_suggestions_record(
                customer=rosa, text="rosa@example.test, (415) 555-0199"
            )
            == []
        )


def test_unknown_values_are_suggested_as_new_contact_details(channel, django_assert_num_queries):
    # when a customer writes an address and a number that are nobody's
    message = ingest.ingest(
        channel=channel, inbound=dm("d1", "Reach me at Dana.Work@Example.test or call +44 20 7946 0123")
    )

    # then each is suggested once, naming what was written and no identity; the number as a phone only
    rows = {(s.kind, s.platform_id): s for s in IdentitySuggestion.objects.all()}
    assert set(rows) == {("email", "dana.work@example.test"), ("phone", "+442079460123")}
    phone = rows[("phone", "+442079460123")]
    assert phone.identity is None and phone.value == "+44 20 7946 0123" and phone.status == "open"
    assert phone.customer == message.identity.customer and phone.source_message_id == message.pk
    assert rows[("email", "dana.work@example.test")].value == "Dana.Work@Example.test"
    assert not Identity.objects.filter(platform_id__in=["+442079460123", "dana.work@example.test"]).exists()
    # Written again: nothing new. Costs one look-up and one insert that adds nothing (and the
    # read of the open ones when the caller wants them back).
    customer = message.identity.customer
    text = "again: +44 20 7946 0123"
    with django_assert_num_queries(2):
        customer_services.identity_suggestions_record(customer=customer, text=text, returning=False)
    with django_assert_num_queries(3):
        [again] = customer_services.identity_suggestions_record(customer=customer, text=text)
    assert again == phone and IdentitySuggestion.objects.count() == 2


def test_our_own_support_address_and_hotline_are_never_suggested(channel, department, settings):
    settings.DEFAULT_FROM_EMAIL = "Brand Care <care@brand.example>"
    factories.ChannelFactory(
        kind="email", slug="mailbox", department=department, account_id="Help@Brand.example"
    )
    factories.ChannelFactory(
        kind="phone", slug="hotline", department=department, account_id="+44 20 7946 0000"
    )

    message = ingest.ingest(
        channel=channel,
        inbound=dm(
            "d1",
            "I wrote to help@brand.example and care@brand.example and called +44 20 7946 0000 twice;"
            " reach me at dana@example.test",
        ),
    )

    # only the customer's own address is news; ours are not offered as hers
    suggested = set(IdentitySuggestion.objects.values_list("kind", "platform_id"))
    assert suggested == {("email", "dana@example.test")}
    assert IdentitySuggestion.objects.get().customer == message.identity.customer

    # a channel added later is ours at once (the cache is dropped when a channel is saved)
    factories.ChannelFactory(
        kind="email", slug="billing-box", department=department, account_id="bills@brand.example"
    )
    ingest.ingest(channel=channel, inbound=dm("d2", "or bills@brand.example, or dana.two@example.test"))
    suggested = set(IdentitySuggestion.objects.values_list("platform_id", flat=True))
    assert suggested == {"dana@example.test", "dana.two@example.test"}


def test_a_number_that_is_someones_whatsapp_is_not_also_suggested_as_a_new_phone(channel, rosa_by_mail):
    rosa, _, phone = rosa_by_mail
    phone.delete()
    whatsapp = factories.IdentityFactory(customer=rosa, kind="whatsapp", platform_id="14155550199")

    ingest.ingest(channel=channel, inbound=dm("d1", "call me on (415) 555-0199 after six"))

    [suggestion] = IdentitySuggestion.objects.all()
    assert suggestion.identity == whatsapp and suggestion.kind == "whatsapp"


def test_a_dismissed_suggestion_is_not_made_again(channel, rosa_by_mail, agent):
    ingest.ingest(channel=channel, inbound=dm("d1", "rosa@example.test"))
    suggestion = IdentitySuggestion.objects.get()

    customer_services.identity_suggestion_dismiss(suggestion=suggestion, actor=agent)
    ingest.ingest(channel=channel, inbound=dm("d2", "again: rosa@example.test", at=T0 + timedelta(hours=1)))

    suggestion.refresh_from_db()
    assert IdentitySuggestion.objects.count() == 1
    assert suggestion.status == "dismissed" and suggestion.decided_by == agent
    with pytest.raises(CustomerRefused) as refused:
        customer_services.identity_suggestion_accept(suggestion=suggestion, actor=agent)
    assert refused.value.field == "suggestion"


def test_accepting_links_the_identity_as_suggested(channel, rosa_by_mail, agent):
    rosa, mail, phone = rosa_by_mail
    message = ingest.ingest(channel=channel, inbound=dm("d1", "rosa@example.test"))

    identity = customer_services.identity_suggestion_accept(
        suggestion=IdentitySuggestion.objects.get(), actor=agent
    )

    assert identity == mail and identity.customer == message.identity.customer
    assert identity.link_source == Identity.LinkSource.SUGGESTED and identity.linked_by == agent
    assert IdentitySuggestion.objects.get().status == "accepted"
    # Linking is not merging: Rosa's other identity and customer stay.
    phone.refresh_from_db()
    assert phone.customer == rosa and Customer.objects.get(pk=rosa.pk).merged_into is None


def test_accepting_a_new_number_creates_it_and_a_later_call_lands_on_the_open_case(
    channel, department, agent, django_capture_on_commit_callbacks
):
    phone_line = factories.ChannelFactory(
        kind="phone", slug="line", department=department, account_id="+15005550006"
    )
    first = ingest.ingest(channel=channel, inbound=dm("d1", "call me on +44 20 7946 0123 any time"))
    customer = first.identity.customer
    suggestion = IdentitySuggestion.objects.get()

    # when the agent accepts it (the desk and the API accept through cases.suggestion_services)
    with django_capture_on_commit_callbacks(execute=True):
        identity = suggestion_services.suggestion_accept(suggestion=suggestion, actor=agent)

    # then the number is the customer's phone, with its provenance
    assert (identity.kind, identity.platform_id, identity.customer) == ("phone", "+442079460123", customer)
    assert identity.link_source == Identity.LinkSource.SUGGESTED and identity.linked_by == agent
    assert identity.linked_at is not None
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.decided_by, suggestion.identity) == ("accepted", agent, None)
    # and a call from it threads to the customer's open case, through ingest
    call = ingest.ingest(
        channel=phone_line,
        inbound=InboundMessage(
            platform="phone",
            external_id="CA1",
            author_id="+442079460123",
            kind="call",
            sent_at=T0 + timedelta(minutes=5),
            text="Call from +442079460123",
        ),
    )
    assert call.case_id == first.case_id and call.identity == identity
    assert Customer.objects.count() == 1 and Case.objects.count() == 1


def test_accepting_a_new_address_lets_an_email_from_it_thread_to_the_open_case(channel, department, agent):
    mailbox = factories.ChannelFactory(
        kind="email", slug="mailbox", department=department, account_id="help@brand.test"
    )
    first = ingest.ingest(channel=channel, inbound=dm("d1", "my work mail is dana.work@example.test"))
    identity = suggestion_services.suggestion_accept(suggestion=IdentitySuggestion.objects.get(), actor=agent)

    mail = ingest.ingest(
        channel=mailbox,
        inbound=InboundMessage(
            platform="email",
            external_id="m1@example.test",
            author_id="Dana.Work@example.test",
            kind="email",
            sent_at=T0 + timedelta(minutes=5),
            subject="About my order",
            text="Hello again",
        ),
    )

    assert identity.kind == "email" and mail.identity == identity and mail.case_id == first.case_id


def test_a_dismissed_new_contact_is_not_suggested_again(channel, agent):
    ingest.ingest(channel=channel, inbound=dm("d1", "call me on +44 20 7946 0123"))
    suggestion = IdentitySuggestion.objects.get()

    customer_services.identity_suggestion_dismiss(suggestion=suggestion, actor=agent)
    ingest.ingest(
        channel=channel, inbound=dm("d2", "+44 (0)20 7946 0123, as I said", at=T0 + timedelta(hours=1))
    )

    suggestion.refresh_from_db()
    assert IdentitySuggestion.objects.count() == 1 and suggestion.status == "dismissed"
    assert not Identity.objects.filter(platform_id="+442079460123").exists()
    with pytest.raises(CustomerRefused) as refused:
        customer_services.identity_suggestion_accept(suggestion=suggestion, actor=agent)
    assert refused.value.field == "suggestion"


def test_a_new_number_that_became_someones_since_is_linked_on_accept(channel, agent):
    ingest.ingest(channel=channel, inbound=dm("d1", "call me on +44 20 7946 0123"))
    suggestion = IdentitySuggestion.objects.get()
    # Someone calls from the number before the agent decides: a customer of its own.
    caller = factories.CustomerFactory(name="Caller")
    theirs = factories.IdentityFactory(customer=caller, kind="phone", platform_id="+442079460123")

    identity = customer_services.identity_suggestion_accept(suggestion=suggestion, actor=agent)

    assert identity == theirs and identity.customer == suggestion.customer
    assert identity.link_source == Identity.LinkSource.SUGGESTED and identity.linked_by == agent
    assert Identity.objects.filter(platform_id="+442079460123").count() == 1
    assert Customer.objects.get(pk=caller.pk).merged_into is None


def test_a_new_contact_is_not_created_on_a_customer_merged_away(channel, agent):
    first = ingest.ingest(channel=channel, inbound=dm("d1", "call me on +44 20 7946 0123"))
    services.customer_merge(source=first.identity.customer, target=factories.CustomerFactory(), actor=agent)

    with pytest.raises(CustomerRefused) as refused:
        customer_services.identity_suggestion_accept(suggestion=IdentitySuggestion.objects.get(), actor=agent)

    assert refused.value.field == "customer"
    assert not Identity.objects.filter(platform_id="+442079460123").exists()
    assert IdentitySuggestion.objects.get().status == "open"


# --- merge and unmerge ----------------------------------------------------------------------


def test_unmerge_restores_identities_links_cases_and_the_target(channel, agent):
    a = ingest.ingest(channel=channel, inbound=dm("t1", "one", author="1"))
    b = ingest.ingest(channel=channel, inbound=dm("t2", "two", author="2"))
    source, target = b.identity.customer, a.identity.customer
    source.tier = Customer.Tier.VIP
    source.save()
    extra = factories.IdentityFactory(customer=source, kind="email", platform_id="two@example.test")
    Identity.objects.filter(pk=extra.pk).update(link_source=Identity.LinkSource.SUGGESTED)

    services.customer_merge(source=source, target=target, actor=agent)

    merge = CustomerMerge.objects.get()
    assert merge.case_ids == [b.case_id] and {r["id"] for r in merge.identities} == {b.identity_id, extra.pk}
    target.refresh_from_db()
    assert target.tier == Customer.Tier.VIP
    # The target opens a case of its own after the merge: it stays with the target.
    services.case_set_status(case=a.case, status="closed", actor=None)
    later_case = services.case_open(customer=target, channel=channel)

    restored = services.customer_unmerge(source=source, actor=agent, reason="Two different people.")

    assert restored == source
    source.refresh_from_db()
    target.refresh_from_db()
    assert source.merged_into is None and target.tier == Customer.Tier.STANDARD
    assert set(source.identities.values_list("pk", flat=True)) == {b.identity_id, extra.pk}
    assert Identity.objects.get(pk=extra.pk).link_source == Identity.LinkSource.SUGGESTED
    assert Case.objects.get(pk=b.case_id).customer == source
    assert Case.objects.get(pk=a.case_id).customer == target and later_case.customer == target
    undo = CaseEvent.objects.filter(case_id=b.case_id, kind="merged").order_by("id").last()
    assert undo.before == {"customer": target.pk} and undo.after["customer"] == source.pk
    assert "Two different people." in undo.reason and undo.actor == agent
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == agent
    # Undone once; the customer can be merged again later.
    with pytest.raises(ServiceError) as refused:
        services.customer_unmerge(source=source, actor=agent)
    assert refused.value.field == "source"
    services.customer_merge(source=source, target=target, actor=agent)
    assert CustomerMerge.objects.filter(undone_at__isnull=True).count() == 1


def test_an_identity_linked_elsewhere_after_the_merge_stays_there(channel, agent):
    a = ingest.ingest(channel=channel, inbound=dm("t1", "one", author="1"))
    b = ingest.ingest(channel=channel, inbound=dm("t2", "two", author="2"))
    source, target = b.identity.customer, a.identity.customer
    services.customer_merge(source=source, target=target, actor=agent)
    third = factories.CustomerFactory()
    customer_services.identity_link(identity=b.identity, customer=third, actor=agent, source="agent")

    services.customer_unmerge(source=source, actor=agent)

    assert Identity.objects.get(pk=b.identity_id).customer == third


def test_unmerge_waits_for_a_later_merge_of_the_target_to_be_undone(agent):
    a, b, c = (factories.CustomerFactory() for _ in range(3))
    services.customer_merge(source=a, target=b, actor=agent)
    services.customer_merge(source=b, target=c, actor=agent)

    with pytest.raises(ServiceError) as refused:
        services.customer_unmerge(source=a, actor=agent)

    assert refused.value.field == "source"
    services.customer_unmerge(source=b, actor=agent)
    services.customer_unmerge(source=a, actor=agent)
    assert not Customer.objects.filter(merged_into__isnull=False).exists()


# --- the import rule -------------------------------------------------------------------------


def test_customers_import_nothing_from_cases_connectors_or_channels():
    upward = {"cases", "connectors", "channels_app"}
    found = []
    for path in (Path(__file__).resolve().parent.parent / "customers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.name}: {name}" for name in names if name.split(".")[0] in upward]
    assert found == []
