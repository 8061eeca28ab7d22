"""Canonical forms of platform identifiers, so one person is one Identity row.

E-mail addresses are lower-cased; phone numbers (and WhatsApp ids, which are phone
numbers without the plus) become E.164 through the ``phonenumbers`` package.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

PHONE_KINDS = frozenset({"phone", "whatsapp"})


def normalize_phone(raw: str, *, region: str | None = None, international: bool = False) -> str:
    """Return ``raw`` in E.164 form or raise ``ValidationError`` naming the problem.

    ``international`` says the digits already start with the country code even without
    a plus (WhatsApp ids); otherwise a number without one is read in ``region``.
    """
    value = (raw or "").strip()
    if value.startswith("whatsapp:"):  # Twilio's WhatsApp addressing
        value = value.removeprefix("whatsapp:")
    if international and value[:1].isdigit():
        value = "+" + value
    return _e164(raw, value, region or settings.DEFAULT_PHONE_REGION)


# Every message's author id is read several times on its way in (the batch's author lock,
# its look-up, the identity row), and phonenumbers' parser is slow: results are remembered.
@lru_cache(maxsize=4096)
def _e164(raw: str, value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"'{raw}' is not a phone number ({exc}).", code="invalid_phone") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(f"'{raw}' is not a possible phone number.", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def normalize_email(raw: str) -> str:
    value = (raw or "").strip().lower()
    try:
        validate_email(value)
    except ValidationError as exc:
        raise ValidationError(f"'{raw}' is not an e-mail address.", code="invalid_email") from exc
    return value


def normalize_platform_id(kind: str, raw: str) -> str:
    """The canonical platform id of an identity of ``kind``; raises ``ValidationError``."""
    if kind == "email":
        return normalize_email(raw)
    if kind in PHONE_KINDS:
        return normalize_phone(raw, international=kind == "whatsapp")
    value = (raw or "").strip()
    if not value:
        raise ValidationError("A platform id is required.", code="required")
    return value
