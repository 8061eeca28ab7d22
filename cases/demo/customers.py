"""The demo's customers: one person each, with the identities they write from."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from django.db import transaction

from customers.identifiers import normalize_platform_id
from customers.models import Customer, Identity

from .organisation import DEMO_CROSS_CHANNEL, DEMO_CUSTOMERS, DEMO_SEED, SeedSummary

# Relative frequency of the platform a customer first reached us on.
FIRST_KIND_WEIGHTS = {"x": 35, "facebook": 15, "instagram": 12, "whatsapp": 13, "email": 15, "phone": 10}
CUSTOMER_EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]


@dataclass
class CustomerSpec:
    name: str
    tier: str
    identities: list[dict]  # the first one is the customer's natural key
    notes: str = ""


def _follower_count(rng: random.Random, vip: bool) -> int:
    return int(rng.lognormvariate(9.5 if vip else 5.0, 1.4))


def _identity_spec(rng, kind, source, *, i, name, handle, phone, email, vip) -> dict:
    ident = {"kind": kind, "display_name": name, "link_source": source, "verified": False}
    if kind == "x":
        ident.update(
            platform_id=str(1_300_000_000_000_000_000 + i * 7919),
            handle=f"@{handle}",
            follower_count=_follower_count(rng, vip),
            verified=vip and rng.random() < 0.5,
        )
    elif kind == "facebook":
        ident.update(platform_id=str(6_100_000_000_000_000 + i * 31), handle=name)
    elif kind == "instagram":
        ident.update(
            platform_id=str(17_841_500_000_000_000 + i * 37),
            handle=f"@{handle.lower()}",
            follower_count=_follower_count(rng, vip),
        )
    elif kind == "email":
        ident.update(platform_id=email, handle=email)
    else:  # phone and WhatsApp: the same number
        ident.update(platform_id=phone, handle=phone)
    return ident


def customer_specs(
    count: int = DEMO_CUSTOMERS, *, cross_channel: int = DEMO_CROSS_CHANNEL
) -> list[CustomerSpec]:
    """The demo's customers, the same on every run (seeded Faker, seeded random).

    The first ``cross_channel`` customers have X, e-mail and phone identities: they are
    the people whose conversations move across channels.
    """
    from faker import Faker

    fake = Faker("en_GB")
    fake.seed_instance(DEMO_SEED)
    rng = random.Random(DEMO_SEED)
    kinds = list(FIRST_KIND_WEIGHTS)
    weights = list(FIRST_KIND_WEIGHTS.values())
    specs = []
    for i in range(count):
        first, last = fake.first_name(), fake.last_name()
        name = f"{first} {last}"
        vip = rng.random() < 0.06
        slug = re.sub(r"[^a-z.]", "", f"{first}.{last}".lower())
        handle = re.sub(r"[^A-Za-z0-9]", "", f"{first}{last}")[:13] + str(rng.randint(1, 99))
        phone = f"+4477009{i:05d}"  # Ofcom's drama range: never a real subscriber
        email = f"{slug}{i}@{CUSTOMER_EMAIL_DOMAINS[i % 3]}"

        person = {"i": i, "name": name, "handle": handle, "phone": phone, "email": email, "vip": vip}

        def make(kind, source="verified", person=person):
            return _identity_spec(rng, kind, source, **person)

        if i < cross_channel:
            identities = [make("x"), make("email", "verified"), make("phone", "agent")]
        else:
            first_kind = rng.choices(kinds, weights)[0]
            identities = [make(first_kind)]
            if first_kind != "email" and rng.random() < 0.3:
                identities.append(make("email", rng.choice(["verified", "agent", "suggested"])))
            if first_kind not in ("phone", "whatsapp") and rng.random() < 0.12:
                identities.append(make(rng.choice(["phone", "whatsapp"]), rng.choice(["agent", "suggested"])))
        tier = Customer.Tier.VIP if vip else Customer.Tier.STANDARD
        notes = "Caseline Club Gold member." if vip else ""
        specs.append(CustomerSpec(name=name, tier=tier, identities=identities, notes=notes))
    return specs


@transaction.atomic
def seed_customers(specs: list[CustomerSpec], summary: SeedSummary | None = None) -> list[Customer]:
    """Create the customers and identities that are missing; return one customer per spec."""
    summary = summary or SeedSummary()
    for spec in specs:
        for ident in spec.identities:
            ident["platform_id"] = normalize_platform_id(ident["kind"], ident["platform_id"])
    wanted = {(i["kind"], i["platform_id"]) for spec in specs for i in spec.identities}
    existing = {
        (ident.kind, ident.platform_id): ident
        for ident in Identity.objects.filter(platform_id__in={pid for _, pid in wanted})
        if (ident.kind, ident.platform_id) in wanted
    }
    customers = []
    for spec in specs:
        key = (spec.identities[0]["kind"], spec.identities[0]["platform_id"])
        if key in existing:
            customer = existing[key].customer
        else:
            customer = Customer.objects.create(name=spec.name, tier=spec.tier, notes=spec.notes)
            summary.created["customers"] += 1
        customers.append(customer)
    new_identities = []
    for spec, customer in zip(specs, customers, strict=True):
        for ident in spec.identities:
            key = (ident["kind"], ident["platform_id"])
            if key in existing:
                continue
            # bulk_create skips Identity.save(): the platform id was normalised above.
            row = Identity(customer=customer, **ident)
            new_identities.append(row)
            existing[key] = row
    Identity.objects.bulk_create(new_identities)
    summary.created["identities"] += len(new_identities)
    return customers
