import pytest
from django.core.exceptions import ValidationError

from customers.identifiers import normalize_platform_id
from tests import factories


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "  Dana.Smith@Example.COM ", "dana.smith@example.com"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "(415) 555-2671", "+14155552671"),  # read in DEFAULT_PHONE_REGION (US)
        ("whatsapp", "16505551234", "+16505551234"),  # wa_id: country code, no plus
        ("whatsapp", "3545551234", "+3545551234"),  # a 10-digit Icelandic wa_id stays Icelandic
        ("whatsapp", "whatsapp:+447700900123", "+447700900123"),
        ("x", " 12345 ", "12345"),
    ],
)
def test_platform_ids_are_canonical(kind, raw, expected):
    assert normalize_platform_id(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "says"),
    [
        ("email", "not-an-address", "'not-an-address' is not an e-mail address"),
        ("phone", "12", "'12' is not"),
        ("x", "  ", "A platform id is required"),
    ],
)
def test_bad_ids_say_what_is_wrong(kind, raw, says):
    with pytest.raises(ValidationError) as exc:
        normalize_platform_id(kind, raw)
    assert says in str(exc.value)


def test_identity_rows_store_canonical_ids_so_one_person_is_one_row(db):
    identity = factories.IdentityFactory(kind="email", platform_id="Dana@Example.com")

    assert identity.platform_id == "dana@example.com"
    with pytest.raises(Exception, match="identity_unique_kind_platform_id"):
        factories.IdentityFactory(kind="email", platform_id="DANA@example.COM")
