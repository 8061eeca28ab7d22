"""Erasure and export cover suggested contact details of both kinds: those made for the person,
those of their identities, and those someone else was made of their address or number while it
was nobody's (which name no identity)."""

from __future__ import annotations

from cases import privacy, services
from customers import services as customer_services
from customers.models import IdentitySuggestion
from tests import factories


def test_erasure_deletes_new_contact_suggestions_for_them_and_naming_them(channel, admin_user):
    dana = factories.CustomerFactory(name="Dana Erase")
    factories.IdentityFactory(customer=dana, kind="x", platform_id="77001")
    services.case_open(customer=dana, channel=channel)
    # Dana wrote a number that is nobody's: a new-contact suggestion made for her.
    customer_services.identity_suggestions_record(customer=dana, text="call me: +44 20 7946 0123")
    # Someone else wrote Dana's work address before it was hers; then it became hers.
    sam = factories.CustomerFactory(name="Sam Keep")
    customer_services.identity_suggestions_record(
        customer=sam, text="ask dana.work@example.test, or +1 415 555 0111"
    )
    factories.IdentityFactory(customer=dana, kind="email", platform_id="dana.work@example.test")
    # Her WhatsApp number, written by Sam as a phone number while it was nobody's.
    customer_services.identity_suggestions_record(customer=sam, text="her number is +44 20 7946 0999")
    factories.IdentityFactory(customer=dana, kind="whatsapp", platform_id="442079460999")
    assert IdentitySuggestion.objects.filter(identity__isnull=True).count() == 4

    exported = privacy.customer_export(customer=dana)["identity_suggestions"]
    assert {(s["kind"], s["platform_id"], s["identity_id"]) for s in exported} == {
        ("phone", "+442079460123", None),
        ("email", "dana.work@example.test", None),
        ("phone", "+442079460999", None),
    }

    privacy.customer_erase(customer=dana, actor=admin_user)

    # Only Sam's suggestion of a number that is nobody's is left.
    assert list(IdentitySuggestion.objects.values_list("customer_id", "kind", "platform_id")) == [
        (sam.pk, "phone", "+14155550111")
    ]
