"""The company's own addresses and numbers: never a customer's contact details.

Customers write the support address and the hotline's number in their messages ("I called
+44 20 7946 0000 twice already", "I wrote to help@brand.example"); those are ours, so they
are not suggested as the customer's (``customers.services.identity_suggestions_record``).
Ours are every channel's own id where it is an address or a number (an e-mail channel's
support address, a phone or WhatsApp channel's number, written as its account id or its
handle) and ``DEFAULT_FROM_EMAIL``.

Read once per ``OWN_CONTACTS_CACHE_SECONDS`` per process, and only when a text holds an
address or number at all; a channel saved or deleted in this process drops the cache at once.
"""

from __future__ import annotations

import time
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models.signals import post_delete, post_save

from customers.identifiers import PHONE_KINDS, normalize_email, normalize_phone

from .models import Channel

OWN_CONTACTS_CACHE_SECONDS = 60.0
_cached: tuple[float, frozenset[tuple[str, str]]] | None = None


def _values(kind: str, raw: str) -> set[tuple[str, str]]:
    """``raw`` as the (kind, canonical id) pairs a customer's text would give, if it is one."""
    raw = (raw or "").strip()
    if not raw:
        return set()
    try:
        if kind == Channel.Kind.EMAIL:
            return {("email", normalize_email(parseaddr(raw)[1] or raw))}
        if kind in (Channel.Kind.PHONE, Channel.Kind.WHATSAPP):
            number = normalize_phone(raw, international=kind == Channel.Kind.WHATSAPP)
            return {(phone_kind, number) for phone_kind in PHONE_KINDS}
    except ValidationError:
        return set()  # a WhatsApp phone-number id or a display name: not a number
    return set()


def own_contact_values() -> frozenset[tuple[str, str]]:
    """Every (kind, canonical id) that is the company's own, as ``contact_values`` keys them."""
    global _cached
    now = time.monotonic()
    if _cached is not None and _cached[0] > now:
        return _cached[1]
    found = _values(Channel.Kind.EMAIL, settings.DEFAULT_FROM_EMAIL)
    kinds = (Channel.Kind.EMAIL, Channel.Kind.PHONE, Channel.Kind.WHATSAPP)
    for kind, account_id, handle in Channel.objects.filter(kind__in=kinds).values_list(
        "kind", "account_id", "handle"
    ):
        found |= _values(kind, account_id) | _values(kind, handle)
    _cached = (now + OWN_CONTACTS_CACHE_SECONDS, frozenset(found))
    return _cached[1]


def forget(**kwargs) -> None:
    """Drop the cache (a channel changed; the tests between cases)."""
    global _cached
    _cached = None


post_save.connect(forget, sender=Channel, dispatch_uid="own-contacts-save")
post_delete.connect(forget, sender=Channel, dispatch_uid="own-contacts-delete")
