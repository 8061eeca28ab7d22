"""What the privacy jobs share: their constants, and who counts as one person (a customer
and the customers merged into it) with the raw bodies that carried their messages."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import quote, quote_plus

from django.db import connection
from django.db.models import Q

from connectors.models import InboundEvent
from customers.identifiers import PHONE_KINDS
from customers.models import Customer, Identity

from ..errors import ServiceError

EXPORT_FORMAT = "caseline-customer-export"
EXPORT_VERSION = 1
# What erased free text becomes; names become the customer's pseudonym.
ERASED = "[erased]"
ERASED_HEADER = "x-caseline-erased"
# Shorter strings are not searched for in raw bodies or other customers' audit trail:
# "4242" or "Al" would match far too much that is not theirs.
MIN_RAW_TOKEN = 6
MIN_TEXT_TOKEN = 3
# Rows per DELETE when purging raw events: short statements, short locks.
PURGE_BATCH = 5000
# A pending erasure request older than this had its task lost: the sweep runs it.
ERASURE_SWEEP_AFTER = timedelta(minutes=5)
META_KINDS = (Identity.Kind.FACEBOOK, Identity.Kind.INSTAGRAM)


class ErasureConflict(ServiceError):
    status = 409


def customer_group(customer: Customer) -> list[Customer]:
    """``customer`` and every customer merged into it, directly or along a chain: one person."""
    group = [customer]
    frontier = [customer.pk]
    seen = {customer.pk}
    while frontier:
        found = [c for c in Customer.objects.filter(merged_into_id__in=frontier) if c.pk not in seen]
        seen.update(c.pk for c in found)
        group += found
        frontier = [c.pk for c in found]
    return group


def group_messages_q(customer_ids: list[int], identity_ids: list[int]) -> Q:
    """Messages on the person's cases, and those they wrote on anyone else's."""
    return Q(case__customer_id__in=customer_ids) | Q(identity_id__in=identity_ids)


def group_suggestions_q(customer_ids: list[int], identities: list[Identity]) -> Q:
    """Identity suggestions made for the person, of their identities, and those naming one of
    their addresses or numbers as a new contact detail (written by someone else before it was
    theirs: such a suggestion names no identity)."""
    match = Q(customer_id__in=customer_ids) | Q(identity_id__in=[i.pk for i in identities])
    emails = sorted({i.platform_id for i in identities if i.kind == Identity.Kind.EMAIL})
    numbers = sorted({i.platform_id for i in identities if i.kind in PHONE_KINDS})
    if emails:
        match |= Q(kind=Identity.Kind.EMAIL, platform_id__in=emails)
    if numbers:
        match |= Q(kind__in=sorted(PHONE_KINDS), platform_id__in=numbers)
    return match


def raw_needles(identities: list[Identity], external_ids: list[str]) -> list[bytes]:
    """Byte strings whose presence in a raw body marks it as this person's: their platform
    ids and the ids of the messages they wrote, as written in JSON, forms and mail."""
    tokens: set[str] = set()
    for identity in identities:
        tokens.add(identity.platform_id)
        tokens.add(identity.platform_id.lstrip("+"))  # WhatsApp writes E.164 without the plus
    tokens.update(external_ids)
    needles: set[bytes] = set()
    for token in tokens:
        if len(token) < MIN_RAW_TOKEN:
            continue
        for variant in (token, quote_plus(token), quote(token, safe=""), json.dumps(token)[1:-1]):
            needles.add(variant.encode("utf-8"))
    return sorted(needles)


def is_digest(value: str) -> bool:
    return bool(re.fullmatch(r"(sha256:)?[0-9a-f]{64}", value))


def raw_events(needles: list[bytes]):
    """InboundEvents whose raw body contains any of ``needles`` (a scan done by the database)."""
    if not needles:
        return InboundEvent.objects.none()
    clause = "position(%s in body) > 0" if connection.vendor == "postgresql" else "instr(body, %s) > 0"
    where = " OR ".join([clause] * len(needles))
    return InboundEvent.objects.extra(where=[f"({where})"], params=needles)  # noqa: S610 - fixed SQL, bound values
