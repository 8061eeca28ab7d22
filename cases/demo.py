"""The demo contact centre behind ``manage.py seed_demo``: Caseline Air's customer care.

Everything here is idempotent. Configuration (departments, escalation paths, calendars,
channels, promises, users) is found or created on its natural key and never overwritten,
so an admin's later edits survive a re-run. Customers are keyed on their first identity.
Cases are written once, through the services, and only when no demo case exists yet.

The whole seed runs in one transaction: an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import F

from connectors.models import Channel
from customers.identifiers import normalize_platform_id
from customers.models import Customer, Identity

from . import services, sla
from .models import (
    BusinessCalendar,
    Case,
    CaseEvent,
    Department,
    EscalationPath,
    Membership,
    Message,
    ServicePromise,
)

DEMO_PASSWORD = "caseline-demo"
DEMO_EMAIL_DOMAIN = "demo.caseline.test"
DEMO_SEED = 20240517
# Every demo message's external id starts with this: it is how a re-run knows the demo
# cases exist. Real platforms never use it.
DEMO_EXTERNAL_PREFIX = "demo-"
DEMO_CUSTOMERS = 300
DEMO_CASES = 300
# Conversations that go tweet -> DM -> e-mail -> call, all on one case.
DEMO_CROSS_CHANNEL = 24
# How many of those the demo agent works, so the first login shows them.
DEMO_AGENT_CROSS_CHANNEL = 6

SUPPORT_ADDRESS = f"support@{DEMO_EMAIL_DOMAIN}"
PHONE_LINE = "+442079460018"
PHONE_LINE_DISPLAY = "+44 20 7946 0018"

# --- Organisation ------------------------------------------------------------------------

DEPARTMENTS = [
    ("social-care", "Social Care", "Public and private messages on X, Facebook, Instagram and WhatsApp."),
    (
        "customer-service",
        "Customer Service",
        "The support mailbox and the phone line: bookings, baggage, assistance.",
    ),
    ("billing", "Billing", "Refunds, duplicate payments and compensation claims."),
    ("technical-support", "Technical Support", "The app, online check-in and on-board Wi-Fi."),
]

_T = EscalationPath.Trigger
# (from, to, trigger, order, priority threshold, category)
ESCALATION_PATHS = [
    ("social-care", "customer-service", _T.MANUAL, 1, "", ""),
    ("social-care", "customer-service", _T.SLA_BREACH, 1, "", ""),
    ("social-care", "technical-support", _T.MANUAL, 2, "", ""),
    ("social-care", "technical-support", _T.PRIORITY, 2, Case.Priority.URGENT, ""),
    ("social-care", "billing", _T.MANUAL, 3, "", ""),
    ("customer-service", "billing", _T.MANUAL, 1, "", ""),
    ("customer-service", "technical-support", _T.MANUAL, 2, "", ""),
    ("customer-service", "technical-support", _T.CATEGORY, 2, "", Case.Category.MAJOR),
    ("billing", "customer-service", _T.MANUAL, 1, "", ""),
    ("technical-support", "customer-service", _T.MANUAL, 1, "", ""),
]

SOCIAL_CALENDAR = "24/7 social"
OFFICE_CALENDAR = "Office hours"
# A 30-minute lunch break makes the office day exactly 480 working minutes.
OFFICE_DAY = [["09:00", "13:00"], ["13:30", "17:30"]]
CALENDARS = {
    SOCIAL_CALENDAR: {"time_zone": "UTC", "always_open": True, "weekly_hours": {}, "holiday_country": ""},
    OFFICE_CALENDAR: {
        "time_zone": "Europe/London",
        "always_open": False,
        "weekly_hours": {str(day): OFFICE_DAY for day in range(1, 6)},
        "holiday_country": "GB",
    },
}

_META_SECRETS = {"app_secret": "CASELINE_META_APP_SECRET", "verify_token": "CASELINE_META_VERIFY_TOKEN"}
# slug -> channel fields and its promise. Secrets are only ever named, never stored.
CHANNELS = {
    "caselineair-x": {
        "kind": Channel.Kind.X,
        "name": "Caseline Air on X",
        "handle": "@CaselineAir",
        "account_id": "1480000000000000001",
        "department": "social-care",
        "secret_env": {
            "consumer_key": "CASELINE_X_CONSUMER_KEY",
            "consumer_secret": "CASELINE_X_CONSUMER_SECRET",
            "access_token": "CASELINE_X_ACCESS_TOKEN",
            "access_token_secret": "CASELINE_X_ACCESS_TOKEN_SECRET",
        },
        "promise": {
            "calendar": SOCIAL_CALENDAR,
            "first_response_minutes": 60,
            "next_response_minutes": 60,
            "resolution_minutes": 24 * 60,
            "priority_overrides": {
                "urgent": {"first_response_minutes": 15, "next_response_minutes": 30},
                "high": {"first_response_minutes": 30},
            },
        },
    },
    "caselineair-facebook": {
        "kind": Channel.Kind.FACEBOOK,
        "name": "Caseline Air Facebook page",
        "handle": "CaselineAir",
        "account_id": "104000000000001",
        "department": "social-care",
        "secret_env": {**_META_SECRETS, "page_access_token": "CASELINE_FACEBOOK_PAGE_TOKEN"},
        "promise": {
            "calendar": SOCIAL_CALENDAR,
            "first_response_minutes": 120,
            "next_response_minutes": 120,
            "resolution_minutes": 48 * 60,
        },
    },
    "caselineair-instagram": {
        "kind": Channel.Kind.INSTAGRAM,
        "name": "Caseline Air on Instagram",
        "handle": "@caselineair",
        "account_id": "17841400000000001",
        "department": "social-care",
        "secret_env": {**_META_SECRETS, "access_token": "CASELINE_INSTAGRAM_ACCESS_TOKEN"},
        "promise": {
            "calendar": SOCIAL_CALENDAR,
            "first_response_minutes": 120,
            "next_response_minutes": 120,
            "resolution_minutes": 48 * 60,
        },
    },
    "caselineair-whatsapp": {
        "kind": Channel.Kind.WHATSAPP,
        "name": "Caseline Air WhatsApp",
        "handle": "+44 20 7946 0100",
        "account_id": "105000000000001",
        "department": "social-care",
        "secret_env": {**_META_SECRETS, "access_token": "CASELINE_WHATSAPP_ACCESS_TOKEN"},
        "promise": {
            "calendar": SOCIAL_CALENDAR,
            "first_response_minutes": 60,
            "next_response_minutes": 60,
            "resolution_minutes": 24 * 60,
        },
    },
    "caselineair-email": {
        "kind": Channel.Kind.EMAIL,
        "name": "Support mailbox",
        "handle": SUPPORT_ADDRESS,
        "account_id": SUPPORT_ADDRESS,
        "department": "customer-service",
        "secret_env": {
            "webhook_secret": "CASELINE_EMAIL_WEBHOOK_SECRET",
            "imap_password": "CASELINE_EMAIL_IMAP_PASSWORD",
        },
        # One working day to answer, a working week to resolve.
        "promise": {
            "calendar": OFFICE_CALENDAR,
            "first_response_minutes": 480,
            "next_response_minutes": 480,
            "resolution_minutes": 5 * 480,
        },
    },
    "caselineair-phone": {
        "kind": Channel.Kind.PHONE,
        "name": "Customer line",
        "handle": PHONE_LINE_DISPLAY,
        "account_id": PHONE_LINE,
        "department": "customer-service",
        "secret_env": {
            "account_sid": "CASELINE_TWILIO_ACCOUNT_SID",
            "auth_token": "CASELINE_TWILIO_AUTH_TOKEN",
        },
        "promise": {
            "calendar": OFFICE_CALENDAR,
            "first_response_minutes": 30,
            "next_response_minutes": 60,
            "resolution_minutes": 2 * 480,
        },
    },
}

_A, _S = Membership.Role.AGENT, Membership.Role.SUPERVISOR
# (login name, first, last, [(department, role)], is_staff)
USERS = [
    ("agent", "Alex", "Morgan", [("social-care", _A)], False),
    ("supervisor", "Sam", "Okafor", [("social-care", _S), ("customer-service", _S)], False),
    ("admin", "Jordan", "Reid", [], True),
    ("priya", "Priya", "Shah", [("social-care", _A)], False),
    ("tom", "Tom", "Gallagher", [("social-care", _A)], False),
    ("leah", "Leah", "Byrne", [("social-care", _A), ("customer-service", _A)], False),
    ("omar", "Omar", "Haddad", [("customer-service", _A)], False),
    ("grace", "Grace", "Mensah", [("customer-service", _A)], False),
    ("ewan", "Ewan", "Fraser", [("customer-service", _A)], False),
    ("nadia", "Nadia", "Kowalski", [("billing", _S)], False),
    ("ben", "Ben", "Carter", [("billing", _A)], False),
    ("ruth", "Ruth", "Adeyemi", [("billing", _A)], False),
    ("kenji", "Kenji", "Sato", [("technical-support", _S)], False),
    ("isla", "Isla", "Murray", [("technical-support", _A)], False),
    ("dev", "Dev", "Raman", [("technical-support", _A)], False),
]


def demo_email(login: str) -> str:
    return f"{login}@{DEMO_EMAIL_DOMAIN}"


DEMO_LOGINS = [demo_email("agent"), demo_email("supervisor"), demo_email("admin")]


@dataclass
class Organisation:
    """The demo's configuration rows, by natural key."""

    departments: dict[str, Department]
    calendars: dict[str, BusinessCalendar]
    channels: dict[str, Channel]  # by kind
    users: dict[str, object] = field(default_factory=dict)  # by login name

    def members(self, department_slug: str, role: str | None = None) -> list:
        return [
            self.users[login]
            for login, _first, _last, memberships, _staff in USERS
            if login in self.users
            and any(slug == department_slug and (role is None or r == role) for slug, r in memberships)
        ]


@dataclass
class SeedSummary:
    created: Counter = field(default_factory=Counter)
    cases_skipped: bool = False
    totals: dict[str, int] = field(default_factory=dict)
    cross_channel_cases: list[str] = field(default_factory=list)


@transaction.atomic
def seed_organisation(summary: SeedSummary | None = None) -> Organisation:
    """Departments, escalation paths, calendars, channels and their promises (idempotent)."""
    summary = summary or SeedSummary()
    departments = {}
    for slug, name, description in DEPARTMENTS:
        departments[slug], made = Department.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description}
        )
        summary.created["departments"] += made
    for source, target, trigger, order, threshold, category in ESCALATION_PATHS:
        _, made = EscalationPath.objects.get_or_create(
            from_department=departments[source],
            to_department=departments[target],
            trigger=trigger,
            defaults={"order": order, "priority_threshold": threshold, "category": category},
        )
        summary.created["escalation paths"] += made
    calendars = {}
    for name, fields in CALENDARS.items():
        calendars[name], made = BusinessCalendar.objects.get_or_create(name=name, defaults=fields)
        summary.created["calendars"] += made
    channels = {}
    for slug, spec in CHANNELS.items():
        spec = dict(spec)
        promise = dict(spec.pop("promise"))
        spec["department"] = departments[spec["department"]]
        channel, made = Channel.objects.get_or_create(slug=slug, defaults=spec)
        summary.created["channels"] += made
        promise["calendar"] = calendars[promise["calendar"]]
        _, made = ServicePromise.objects.get_or_create(channel=channel, defaults=promise)
        summary.created["service promises"] += made
        channels.setdefault(channel.kind, channel)
    # Keep the promise (and its calendar) on each channel object: the SLA code reads them often.
    for channel in channels.values():
        channel.promise = ServicePromise.objects.select_related("calendar").get(channel=channel)
    return Organisation(departments=departments, calendars=calendars, channels=channels)


@transaction.atomic
def seed_users(org: Organisation, summary: SeedSummary | None = None) -> dict:
    """About fifteen agents, supervisors and an admin, each able to log in by e-mail."""
    from allauth.account.models import EmailAddress

    summary = summary or SeedSummary()
    user_model = get_user_model()
    # One hash for every demo login: hashing is deliberately slow, and these share a password.
    password_hash = None
    for login, first, last, memberships, staff in USERS:
        email = demo_email(login)
        user = user_model.objects.filter(email__iexact=email).first()
        if user is None:
            password_hash = password_hash or make_password(DEMO_PASSWORD)
            user = user_model.objects.create(
                username=email,
                email=email,
                first_name=first,
                last_name=last,
                is_staff=staff,
                is_superuser=staff,
                password=password_hash,
            )
            summary.created["users"] += 1
        _, made = EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        summary.created["e-mail addresses"] += made
        for slug, role in memberships:
            _, made = Membership.objects.get_or_create(
                user=user, department=org.departments[slug], defaults={"role": role}
            )
            summary.created["memberships"] += made
        org.users[login] = user
    return org.users


# --- Customers -----------------------------------------------------------------------------

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


# --- Conversations -----------------------------------------------------------------------------

AIRPORTS = ["London Heathrow", "Manchester", "Edinburgh", "Glasgow", "Belfast", "Dublin", "Amsterdam",
            "Paris CDG", "Barcelona", "Faro", "Malaga", "Rome", "Lisbon", "Berlin", "Bristol"]  # fmt: skip


@dataclass(frozen=True)
class Topic:
    """What a conversation is about, in the words each channel uses."""

    key: str
    subject: str
    category: str
    priority: str
    post: str  # a public post or comment (<= 280 characters)
    private: str  # a DM / WhatsApp message
    email: str
    call: str  # the agent's summary of an inbound call
    follow_up: str
    reply: str
    resolution: str
    note: str
    # Where the case goes when Social Care or Customer Service hands it over, and why.
    transfer_to: str = ""
    transfer_reason: str = ""


TOPICS = [
    Topic(
        key="delay",
        subject="Compensation for delayed {flight}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.HIGH,
        post="@CaselineAir {flight} {origin} to {dest} delayed {hours} hours and nobody at the gate knows "
        "anything. Who do I talk to about compensation?",
        private="Hi, booking {booking}. Our flight {flight} on {date} landed {hours} hours late and I'd like "
        "to claim the compensation we're owed.",
        email="Hello,\n\nMy flight {flight} from {origin} to {dest} on {date} arrived {hours} hours late "
        "(booking {booking}). I believe I'm entitled to compensation under UK261. I've attached the "
        "boarding passes.\n\nKind regards,\n{name}",
        call="Customer rang about the compensation claim for {flight}; wants to know when it will be paid.",
        follow_up="Any update on my claim? It's been a few days now.",
        reply="Thanks {first}, I've logged a compensation claim for booking {booking}. Billing will confirm "
        "the amount within 5 working days.",
        resolution="Good news {first}: compensation of £{amount} for {flight} has been approved and will "
        "reach your card in 3-5 working days.",
        note="Only the first 40 minutes were ATC; the rest was a crew shortage, so the claim is eligible.",
        transfer_to="billing",
        transfer_reason="Compensation claim: Billing pays UK261 claims.",
    ),
    Topic(
        key="bag",
        subject="Bag {bagtag} missing after {flight}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.HIGH,
        post="@CaselineAir landed in {dest} on {flight} two hours ago and my suitcase never came out. "
        "Baggage desk is closed. Brilliant.",
        private="My bag didn't arrive on {flight} ({origin} to {dest}). Tag number {bagtag}. It has my "
        "medication in it.",
        email="Hello,\n\nMy checked bag (tag {bagtag}) did not arrive with me on {flight} on {date}. I filed a "
        "report at the airport. Where is it, and when will it be delivered? I need it urgently.\n\n"
        "Thanks,\n{name}",
        call="Caller asked for a delivery slot for bag {bagtag}; address confirmed.",
        follow_up="Still no sign of the bag. The tracker hasn't changed since yesterday.",
        reply="Thanks {first}. Bag {bagtag} has been found in {origin} and is booked on the next flight to "
        "{dest}.",
        resolution="Your bag {bagtag} is out for delivery today between 14:00 and 18:00. Sorry again for "
        "the wait.",
        note="Tracing shows the bag was short-shipped at {origin}; courier booked for delivery.",
        transfer_to="customer-service",
        transfer_reason="Baggage tracing and delivery are handled by Customer Service.",
    ),
    Topic(
        key="double-charge",
        subject="Charged twice for booking {booking}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir you've charged my card twice for the same booking. £{amount} twice. Sort it out "
        "please.",
        private="Booking {booking} was charged twice on {date}, £{amount} each time. Please refund the "
        "duplicate.",
        email="Hello,\n\nMy card was charged twice (£{amount} each) for booking {booking} on {date}. Please "
        "refund the second payment. A screenshot of my statement is attached.\n\n{name}",
        call="Customer called about the duplicate charge on {booking}; payment references checked.",
        follow_up="The second payment is still showing on my statement.",
        reply="I can see both payments for {booking}, {first}. I've asked Billing to refund the duplicate "
        "£{amount}.",
        resolution="The duplicate payment of £{amount} has been refunded; it can take up to 5 working days "
        "to show on your statement.",
        note="Payment gateway timed out and the retry captured a second time.",
        transfer_to="billing",
        transfer_reason="Duplicate card payment: Billing issues the refund.",
    ),
    Topic(
        key="checkin",
        subject="Online check-in fails for {booking}",
        category=Case.Category.MINOR,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir your app keeps saying 'Something went wrong' when I try to check in for {flight} "
        "tomorrow.",
        private="I'm on iOS, app version 7.{minor}. Check-in for booking {booking} fails at the passport "
        "step every time.",
        email="Hi,\n\nI can't check in online for {flight} (booking {booking}). The app and the website both "
        "fail after I scan my passport.\n\n{name}",
        call="Caller couldn't check in online; talked through web check-in as a workaround.",
        follow_up="Tried again this morning, same error.",
        reply="Thanks {first}. We know about a passport-scan problem in app 7.{minor}; web check-in works "
        "in the meantime.",
        resolution="A fix is live in app version 7.{minor_next}, and your boarding pass for {flight} is in "
        "the app now.",
        note="Reproduced with passports expiring after 2030. Bug CL-{bug} raised.",
        transfer_to="technical-support",
        transfer_reason="App fault reproduced: needs Technical Support.",
    ),
    Topic(
        key="wifi",
        subject="Wi-Fi refund for {flight}",
        category=Case.Category.MINOR,
        priority=Case.Priority.LOW,
        post="@CaselineAir paid £{wifi} for Wi-Fi on {flight} and it didn't connect once the whole flight.",
        private="Paid £{wifi} for the Wi-Fi pass on {flight}, never got online. Can I have a refund?",
        email="Hello,\n\nI bought a Wi-Fi pass (£{wifi}) on {flight} on {date} and it never connected. I'd like "
        "a refund.\n\n{name}",
        call="Customer asked for a refund of the on-board Wi-Fi pass on {flight}.",
        follow_up="Just checking you got my message about the Wi-Fi?",
        reply="Sorry {first}, the Wi-Fi on that aircraft had a fault on {date}. I've asked for a refund.",
        resolution="We've refunded the £{wifi} Wi-Fi pass for {flight}.",
        note="Satcom unit on that tail was reported faulty by the crew.",
        transfer_to="technical-support",
        transfer_reason="On-board connectivity fault: Technical Support logs it with the provider.",
    ),
    Topic(
        key="seats",
        subject="Seats together on {flight}",
        category=Case.Category.QUESTION,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir can I change seats on {flight} without paying again? Travelling with a toddler "
        "and we've been split up.",
        private="Booking {booking}: we've been split up on {flight}. Any way to sit together? Our son is 2.",
        email="Hello,\n\nOn booking {booking} my family has been seated apart on {flight}. Our son is two. "
        "Can you seat us together?\n\n{name}",
        call="Caller wanted seats together on {flight}; family of three.",
        follow_up="Online check-in opens tomorrow, will the seats be sorted by then?",
        reply="Of course, {first}. Leave it with me and I'll sort seats on {flight} for the three of you.",
        resolution="Done, {first}: you're in seats 14A-14C on {flight}.",
        note="Family seating rule applies; no seat fee.",
    ),
    Topic(
        key="refund",
        subject="Refund for cancelled {flight}",
        category=Case.Category.MAJOR,
        priority=Case.Priority.HIGH,
        post="@CaselineAir still waiting on my refund for the cancelled {flight}. Six weeks now. Every "
        "phone call ends with 'it's in progress'.",
        private="Booking {booking}, {flight} was cancelled on {date}. I requested a refund of £{amount} and "
        "have heard nothing.",
        email="Hello,\n\n{flight} on {date} was cancelled and I requested a full refund (£{amount}, booking "
        "{booking}) six weeks ago. Please tell me when it will be paid.\n\n{name}",
        call="Customer chasing the refund for cancelled {flight}; upset about the wait.",
        follow_up="Another week and still nothing.",
        reply="I'm sorry {first}, that's far too long. I've escalated the refund for {booking} to Billing.",
        resolution="Your refund of £{amount} for {flight} was issued today to the original card.",
        note="Refund stuck in the manual queue: card had expired. Paying by bank transfer instead.",
        transfer_to="billing",
        transfer_reason="Refund stuck in payments: Billing owns refunds.",
    ),
    Topic(
        key="assistance",
        subject="Assistance for {flight}",
        category=Case.Category.QUESTION,
        priority=Case.Priority.NORMAL,
        post="@CaselineAir my dad uses a wheelchair, how do I book assistance for {flight}?",
        private="Hi, I'd like to book wheelchair assistance for my father on {flight} ({booking}).",
        email="Hello,\n\nPlease arrange wheelchair assistance at {origin} and {dest} for my father on {flight} "
        "(booking {booking}).\n\nThank you,\n{name}",
        call="Caller booked wheelchair assistance for a family member on {flight}.",
        follow_up="Do we need to arrive earlier than usual?",
        reply="Thanks {first}, I've added assistance at {origin} and {dest} to booking {booking}.",
        resolution="Assistance is confirmed for {flight}; please arrive 2 hours before departure and go to "
        "the assistance desk.",
        note="WCHC code added to booking.",
    ),
    Topic(
        key="points",
        subject="Missing points for {flight}",
        category=Case.Category.MINOR,
        priority=Case.Priority.LOW,
        post="@CaselineAir my points for {flight} never showed up on my account.",
        private="My Caseline Club points for {flight} ({booking}) are missing.",
        email="Hello,\n\nThe points for {flight} on {date} (booking {booking}) are missing from my Caseline "
        "Club account.\n\n{name}",
        call="Customer asked about missing loyalty points for {flight}.",
        follow_up="Still not showing in the app.",
        reply="Thanks {first}, I've asked the loyalty team to add the points for {flight}.",
        resolution="We've added {points} points to your account for {flight}.",
        note="Membership number was missing from the booking.",
    ),
    Topic(
        key="allowance",
        subject="Cabin bag allowance",
        category=Case.Category.QUESTION,
        priority=Case.Priority.LOW,
        post="@CaselineAir is a 10kg cabin bag ok on a Basic fare?",
        private="Quick question: is a 10kg cabin bag included on Basic fares?",
        email="Hello,\n\nWhat cabin bag allowance do I have on a Basic fare for {flight}?\n\n{name}",
        call="Caller asked about the cabin bag allowance on Basic fares.",
        follow_up="And can I add one later, after booking?",
        reply="Hi {first}, Basic includes one small bag under the seat; a 10kg cabin bag can be added in "
        "Manage booking.",
        resolution="Yes, you can add a cabin bag in Manage booking up to 2 hours before departure.",
        note="Standard answer; no action needed.",
    ),
]
PRAISE = [
    "Huge thanks to the crew on @CaselineAir {flight} today. Calm, kind and funny. Made a long day so much "
    "better.",
    "Shout out to the lady at the @CaselineAir desk in {origin} who rebooked us in two minutes flat.",
    "First time flying @CaselineAir and honestly impressed. On time, friendly, decent coffee.",
]
RANTS = [
    "Why is the queue at the @CaselineAir bag drop in {origin} always this long. Every single time.",
    "@CaselineAir the sandwiches on {flight} cost more than my train to the airport.",
    "Delayed again. @CaselineAir must stand for 'Can't Ever Leave On time'.",
]
PRAISE_REPLY = "That's lovely to hear, {first}! We'll pass your thanks on. ^{sig}"
RANT_REPLY = (
    "Sorry {first}, that's not the experience we want for you. We'll share this with the team. ^{sig}"
)
PUBLIC_TO_DM = (
    "Hi {first}, sorry to hear this. Please send us a DM with your booking reference and we'll look into "
    "it. Your case is {ref}. ^{sig}"
)
DM_TO_EMAIL = (
    "Thanks {first}. Could you e-mail the documents to " + SUPPORT_ADDRESS + " with [#{ref}] in the "
    "subject? Everything stays on one case that way."
)
EMAIL_REPLY = (
    "Dear {first},\n\n{reply}\n\nIf it's easier, call us on "
    + PHONE_LINE_DISPLAY
    + " and quote {ref}.\n\nKind regards,\n{agent}\nCaseline Air customer care"
)
CALL_QUOTE = " Customer quoted case {ref}."
FOLLOW_UP_EMAIL = "Hello again,\n\nFollowing our phone call, here are the documents you asked for. "


def topic_facts(rng: random.Random, customer: Customer, now: datetime) -> dict:
    """Flight numbers, airports, amounts... to fill a topic's texts for one conversation."""
    origin, dest = rng.sample(AIRPORTS, 2)
    return {
        "flight": f"CL{rng.randint(100, 989)}",
        "origin": origin,
        "dest": dest,
        "booking": "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)),
        "bagtag": f"LHRCL{rng.randint(10000, 99999)}",
        "hours": rng.randint(3, 9),
        "amount": rng.choice([79, 129, 220, 260, 350, 520]),
        "wifi": rng.choice([6, 9, 15]),
        "points": rng.choice([750, 1200, 2400]),
        "minor": (minor := rng.randint(2, 8)),
        "minor_next": minor + 1,
        "bug": rng.randint(1000, 9999),
        "date": (now - timedelta(days=rng.randint(1, 20))).strftime("%d %B"),
        "name": customer.name,
        "first": customer.name.split(" ")[0] if customer.name else "there",
    }


@dataclass
class _Step:
    """One thing that happens to a case, ``gap`` minutes after the previous one."""

    gap: float
    run: Callable[[_Story, datetime], None]


class _Story:
    """Plays a planned conversation through the services, at past times that end before now."""

    def __init__(
        self, *, org: Organisation, customer: Customer, identities: dict, rng, counter, topic, facts
    ):
        self.org = org
        self.customer = customer
        self.identities = identities  # by kind
        self.rng = rng
        self.counter = counter
        self.topic = topic
        self.facts = facts
        self.case: Case | None = None
        self.times: list[datetime] = []  # one per service call that writes a CaseEvent
        self.resolved_at: datetime | None = None
        self.notes: list[tuple[Message, datetime]] = []  # note_add stamps now; the story has its own time
        self.last_inbound: Message | None = None
        self.thread_key = ""

    def text(self, template: str, agent=None) -> str:
        values = dict(self.facts)
        values["ref"] = self.case.reference if self.case else ""
        if agent is not None:
            values["sig"] = f"{agent.first_name[:1]}{agent.last_name[:1]}"
            values["agent"] = agent.get_full_name()
        else:
            values.setdefault("sig", "CA")
            values.setdefault("agent", "The Caseline Air team")
        return template.format(**values)

    def external_id(self, kind: str) -> str:
        self.counter["external"] += 1
        return f"{DEMO_EXTERNAL_PREFIX}{kind}-{self.counter['external']:06d}"

    # Each action below is one service call.
    def open(self, at, *, kind: str, priority: str | None = None):
        channel = self.org.channels[kind]
        priority = priority or self.topic.priority
        if self.customer.tier == Customer.Tier.VIP and priority in (Case.Priority.LOW, Case.Priority.NORMAL):
            priority = Case.Priority.HIGH
        self.case = services.case_open(
            customer=self.customer,
            channel=channel,
            subject=self.text(self.topic.subject),
            priority=priority,
            category=self.topic.category,
        )
        self.times.append(at)

    def inbound(self, at, *, channel_kind, kind, template, identity_kind=None, is_public=False, **extra):
        identity = self.identities.get(identity_kind or channel_kind)
        text = self.text(template)
        if channel_kind == Channel.Kind.EMAIL:
            extra.setdefault("subject", f"{self.text(self.topic.subject)} [#{self.case.reference}]")
            if not self.thread_key:
                self.thread_key = f"<{self.external_id('thread')}@{CUSTOMER_EMAIL_DOMAINS[0]}>"
            extra.setdefault("thread_key", self.thread_key)
        self.last_inbound = services.message_add(
            case=self.case,
            direction=Message.Direction.IN,
            kind=kind,
            text=text,
            channel=self.org.channels[channel_kind],
            identity=identity,
            is_public=is_public,
            external_id=self.external_id(channel_kind),
            sent_at=at,
            **extra,
        )
        self.times.append(at)

    def reply(self, at, *, agent, channel_kind, kind, template, is_public=False, **extra):
        text = self.text(template, agent)
        if channel_kind == Channel.Kind.EMAIL:
            extra.setdefault("subject", f"Re: {self.text(self.topic.subject)} [#{self.case.reference}]")
            extra.setdefault("thread_key", self.thread_key)
        answered = (
            self.last_inbound
            if self.last_inbound and self.last_inbound.channel.kind == channel_kind
            else None
        )
        services.message_add(
            case=self.case,
            direction=Message.Direction.OUT,
            kind=kind,
            text=text,
            channel=self.org.channels[channel_kind],
            identity=self.identities.get(channel_kind),
            author=agent,
            is_public=is_public,
            external_id=self.external_id(channel_kind),
            reply_to=answered,
            in_reply_to_external_id=answered.external_id if answered else "",
            delivery_state=Message.Delivery.DELIVERED,
            sent_at=at,
            **extra,
        )
        self.times.append(at)

    def note(self, at, *, agent, template):
        message = services.note_add(case=self.case, author=agent, text=self.text(template, agent))
        self.notes.append((message, at))
        self.times.append(at)

    def claim(self, at, *, agent):
        services.case_claim(case=self.case, actor=agent)
        self.case.refresh_from_db()
        self.times.append(at)

    def transfer(self, at, *, to, actor, reason, note=""):
        services.case_transfer(
            case=self.case, to_department=self.org.departments[to], actor=actor, reason=reason, note=note
        )
        self.case.refresh_from_db()
        self.times.append(at)

    def status(self, at, *, status, actor, reason=""):
        services.case_set_status(case=self.case, status=status, actor=actor, reason=reason)
        self.case.refresh_from_db()
        if status in (Case.Status.RESOLVED, Case.Status.CLOSED):
            self.resolved_at = at
        self.times.append(at)


def _plan(story: _Story, flow: str, *, agent, colleague, supervisor, receiver) -> list[_Step]:
    """The steps of one conversation of the given shape."""
    t = story.topic
    rng = story.rng
    social = story.facts["social_kind"]
    public_kind = Message.Kind.POST if social == "x" else Message.Kind.COMMENT
    private_kind = Message.Kind.DM
    minutes = lambda low, high: rng.uniform(low, high)  # noqa: E731

    def inbound(channel_kind, kind, template, **kw):
        return lambda s, at: s.inbound(at, channel_kind=channel_kind, kind=kind, template=template, **kw)

    def reply(channel_kind, kind, template, who=None, **kw):
        return lambda s, at: s.reply(
            at, agent=who or agent, channel_kind=channel_kind, kind=kind, template=template, **kw
        )

    steps: list[_Step] = []
    if flow == "cross_channel":
        if receiver == "keep":
            # Still being worked: the whole conversation fits in the last half day, so
            # its promises are running rather than long broken.
            minutes = lambda low, high: rng.uniform(low, high) / 4  # noqa: E731
        steps += [
            _Step(0, lambda s, at: s.open(at, kind="x")),
            _Step(0.1, inbound("x", Message.Kind.POST, t.post, is_public=True)),
            _Step(minutes(2, 40), lambda s, at: s.claim(at, agent=agent)),
            _Step(minutes(1, 10), reply("x", Message.Kind.POST, PUBLIC_TO_DM, is_public=True)),
            _Step(minutes(5, 90), inbound("x", Message.Kind.DM, t.private)),
            _Step(minutes(3, 40), reply("x", Message.Kind.DM, DM_TO_EMAIL)),
            _Step(minutes(60, 600), inbound("email", Message.Kind.EMAIL, t.email)),
            _Step(
                minutes(30, 300), reply("email", Message.Kind.EMAIL, EMAIL_REPLY.replace("{reply}", t.reply))
            ),
            _Step(
                minutes(120, 1500),
                inbound("phone", Message.Kind.CALL, t.call + CALL_QUOTE, call_duration=rng.randint(95, 1100)),
            ),
            _Step(minutes(1, 15), lambda s, at: s.note(at, agent=agent, template=t.note)),
        ]
        if receiver is None:  # the agent keeps it, answering by e-mail after the call
            steps.append(_Step(minutes(10, 120), reply("email", Message.Kind.EMAIL, t.resolution)))
            if rng.random() < 0.6:
                steps.append(
                    _Step(minutes(1, 5), lambda s, at: s.status(at, status=Case.Status.RESOLVED, actor=agent))
                )
        elif receiver == "keep":  # the customer sends what was asked for on the call
            steps.append(
                _Step(minutes(10, 200), inbound("email", Message.Kind.EMAIL, FOLLOW_UP_EMAIL + t.follow_up))
            )
        else:
            steps.append(
                _Step(
                    minutes(5, 60),
                    lambda s, at: s.transfer(
                        at,
                        to="customer-service",
                        actor=supervisor,
                        reason="Customer moved to e-mail and phone; Customer Service owns it from here.",
                        note="Spoke to the customer by phone; details in the e-mail thread.",
                    ),
                )
            )
        return steps

    opener_kind = story.facts["opener_kind"]
    opener_channel = story.facts["opener_channel"]
    opener_public = opener_kind in (Message.Kind.POST, Message.Kind.COMMENT)
    first_text = {Message.Kind.EMAIL: t.email, Message.Kind.CALL: t.call}.get(
        opener_kind, t.post if opener_public else t.private
    )
    steps += [
        _Step(0, lambda s, at: s.open(at, kind=opener_channel)),
        _Step(0.1, inbound(opener_channel, opener_kind, first_text, is_public=opener_public,
                           **({"call_duration": rng.randint(60, 900)} if opener_kind == Message.Kind.CALL else {}))),
    ]  # fmt: skip
    answer_kind = opener_kind if opener_kind != Message.Kind.CALL else Message.Kind.CALL
    follow_kind = private_kind if opener_public else opener_kind
    reply_extra = {"call_duration": rng.randint(60, 600)} if answer_kind == Message.Kind.CALL else {}

    if flow == "unanswered":
        if rng.random() < 0.4:
            steps.append(_Step(minutes(5, 60), inbound(opener_channel, follow_kind, t.follow_up)))
        return steps
    if flow == "monitoring":
        if rng.random() < 0.5:
            steps.append(
                _Step(minutes(5, 50), reply(opener_channel, answer_kind, story.facts["monitor_reply"],
                                            is_public=opener_public))
            )  # fmt: skip
        steps.append(
            _Step(minutes(1, 5), lambda s, at: s.status(
                at, status=Case.Status.MONITORING, actor=agent, reason="Venting; no answer owed."))
        )  # fmt: skip
        return steps

    steps.append(_Step(minutes(2, 30), lambda s, at: s.claim(at, agent=agent)))
    if opener_public:
        steps.append(_Step(minutes(1, 20), reply(opener_channel, public_kind, PUBLIC_TO_DM, is_public=True)))
        steps.append(_Step(minutes(5, 120), inbound(opener_channel, private_kind, t.private)))
    steps.append(_Step(minutes(3, 60), reply(opener_channel, follow_kind, t.reply, **reply_extra)))

    if flow == "awaiting":
        steps.append(_Step(minutes(30, 900), inbound(opener_channel, follow_kind, t.follow_up)))
    elif flow == "waiting":
        steps.append(
            _Step(minutes(1, 5), lambda s, at: s.status(
                at, status=Case.Status.WAITING_ON_CUSTOMER, actor=agent, reason="Asked for the booking details."))
        )  # fmt: skip
    elif flow == "resolved":
        if rng.random() < 0.5:
            steps.append(_Step(minutes(30, 900), inbound(opener_channel, follow_kind, t.follow_up)))
        if rng.random() < 0.3:
            steps.append(_Step(minutes(1, 20), lambda s, at: s.note(at, agent=agent, template=t.note)))
        steps.append(_Step(minutes(5, 300), reply(opener_channel, follow_kind, t.resolution, **reply_extra)))
        steps.append(
            _Step(minutes(1, 10), lambda s, at: s.status(at, status=Case.Status.RESOLVED, actor=agent))
        )
    elif flow == "transferred":
        steps.append(_Step(minutes(2, 30), lambda s, at: s.note(at, agent=agent, template=t.note)))
        steps.append(
            _Step(minutes(2, 60), lambda s, at: s.transfer(
                at, to=t.transfer_to, actor=supervisor, reason=t.transfer_reason,
                note=s.text("Customer told to expect an update from us. " + t.note)))
        )  # fmt: skip
        if colleague is not None and rng.random() < 0.8:
            steps.append(_Step(minutes(10, 600), lambda s, at: s.claim(at, agent=colleague)))
            steps.append(
                _Step(
                    minutes(10, 900),
                    reply(opener_channel, follow_kind, t.resolution, who=colleague, **reply_extra),
                )
            )
            if rng.random() < 0.6:
                steps.append(
                    _Step(
                        minutes(1, 30),
                        lambda s, at: s.status(at, status=Case.Status.RESOLVED, actor=colleague),
                    )
                )
    return steps


# Shapes of the non-cross-channel conversations and how often each occurs.
FLOWS = {"resolved": 30, "awaiting": 14, "waiting": 8, "unanswered": 16, "monitoring": 8, "transferred": 14}
OPENERS = {  # channel kind -> (message kind, weight)
    "x": [(Message.Kind.POST, 3), (Message.Kind.DM, 1)],
    "facebook": [(Message.Kind.COMMENT, 2), (Message.Kind.DM, 1)],
    "instagram": [(Message.Kind.COMMENT, 2), (Message.Kind.DM, 1)],
    "whatsapp": [(Message.Kind.DM, 1)],
    "email": [(Message.Kind.EMAIL, 1)],
    "phone": [(Message.Kind.CALL, 1)],
}


def _play(story: _Story, steps: list[_Step], *, end_at: datetime) -> None:
    """Run ``steps`` so that the last one happens at ``end_at``."""
    total = sum(step.gap for step in steps)
    at = end_at - timedelta(minutes=total)
    for step in steps:
        at += timedelta(minutes=step.gap)
        step.run(story, at)


def seed_cases(org: Organisation, customers: list[Customer], *, count: int = DEMO_CASES,
               cross_channel: int = DEMO_CROSS_CHANNEL, summary: SeedSummary | None = None) -> list[Case]:  # fmt: skip
    """A few hundred conversations, written through the services, backdated over the last week."""
    summary = summary or SeedSummary()
    rng = random.Random(DEMO_SEED + 1)
    now = datetime.now(UTC)
    counter: Counter = Counter()
    identities_by_customer: dict[int, dict] = {}
    for ident in Identity.objects.filter(customer__in=customers).order_by("id"):
        identities_by_customer.setdefault(ident.customer_id, {}).setdefault(ident.kind, ident)
    supervisor = org.users["supervisor"]
    demo_agent = org.users["agent"]
    sc_agents = org.members("social-care", Membership.Role.AGENT)
    flows, flow_weights = list(FLOWS), list(FLOWS.values())
    stories: list[_Story] = []

    for index in range(count):
        if index < cross_channel:
            customer = customers[index]
            flow = "cross_channel"
        else:
            customer = customers[cross_channel + rng.randrange(len(customers) - cross_channel)]
            flow = rng.choices(flows, flow_weights)[0]
        identities = identities_by_customer[customer.pk]
        first_kind = next(iter(identities))
        topic = rng.choice(TOPICS)
        facts = topic_facts(rng, customer, now)
        opener_channel = first_kind
        opener_kind = rng.choices(*zip(*OPENERS[opener_channel], strict=True))[0]
        if flow == "monitoring":
            opener_channel = "x" if "x" in identities else first_kind
            if opener_channel not in ("x", "facebook", "instagram"):
                flow = "unanswered"
            else:
                opener_kind = Message.Kind.POST if opener_channel == "x" else Message.Kind.COMMENT
                praise = rng.random() < 0.5
                topic = dataclasses.replace(
                    topic,
                    subject="Kind words about {flight}" if praise else "Public complaint from {origin}",
                    category=Case.Category.PRAISE if praise else Case.Category.RANT,
                    priority=Case.Priority.LOW,
                    post=rng.choice(PRAISE if praise else RANTS),
                )
                facts["monitor_reply"] = PRAISE_REPLY if praise else RANT_REPLY
        if flow == "transferred" and not topic.transfer_to:
            flow = "resolved"
        facts.update(social_kind=opener_channel, opener_channel=opener_channel, opener_kind=opener_kind)

        department = org.channels[opener_channel].department.slug
        pool = org.members(department, Membership.Role.AGENT)
        colleague = None
        receiver = None
        if flow == "cross_channel":
            # The demo agent works the first few, open and waiting for them; others are
            # finished by colleagues or handed to Customer Service.
            if index < DEMO_AGENT_CROSS_CHANNEL:
                agent, receiver = demo_agent, "keep"
            else:
                agent = rng.choice([a for a in sc_agents if a != demo_agent])
                receiver = None if rng.random() < 0.6 else "customer-service"
        else:
            agent = demo_agent if department == "social-care" and rng.random() < 0.08 else rng.choice(pool)
            if flow == "transferred":
                target_pool = org.members(topic.transfer_to, Membership.Role.AGENT)
                if topic.transfer_to == department:
                    flow = "resolved"
                else:
                    colleague = rng.choice(target_pool) if target_pool else None

        story = _Story(org=org, customer=customer, identities=identities, rng=rng, counter=counter,
                       topic=topic, facts=facts)  # fmt: skip
        steps = _plan(story, flow, agent=agent, colleague=colleague, supervisor=supervisor, receiver=receiver)
        if receiver == "keep":
            end_at = now - timedelta(minutes=rng.uniform(2, 60))
        elif flow in ("unanswered", "awaiting"):
            # Mostly recent, so most promises are on track, some at risk, a few broken.
            end_at = now - timedelta(
                minutes=rng.choice(
                    [rng.uniform(2, 40)] * 13 + [rng.uniform(40, 600)] * 6 + [rng.uniform(600, 3000)]
                )
            )
        else:
            end_at = now - timedelta(minutes=rng.uniform(30, 6 * 24 * 60))
        _play(story, steps, end_at=end_at)
        stories.append(story)
        summary.created["cases"] += 1
        if flow == "cross_channel":
            summary.cross_channel_cases.append(story.case.reference)

    _backdate(stories)
    # The hooks only keep or clear SLA states; worsening is the sweep's job. Run it once so
    # the first look at the demo shows which promises are already at risk or broken.
    sla.sla_sweep()
    return [story.case for story in stories]


def _backdate(stories: list[_Story]) -> None:
    """Give the demo's history the times the conversations happened at.

    The services stamp ``now`` on the rows they create; a demo that just "happened"
    in one second looks wrong in every report and timeline, so the audit rows, the
    cases' creation and resolution times and the messages' storage times are set to
    the story's times here, in bulk.
    """
    cases, events, notes = [], [], []
    event_ids = {}
    for row in (
        CaseEvent.objects.filter(case__in=[s.case.pk for s in stories]).order_by("id").values("id", "case_id")
    ):
        event_ids.setdefault(row["case_id"], []).append(row["id"])
    for story in stories:
        ids = event_ids.get(story.case.pk, [])
        if len(ids) == len(story.times):
            events += [CaseEvent(pk=pk, created_at=at) for pk, at in zip(ids, story.times, strict=True)]
        story.case.created_at = story.times[0]
        if story.resolved_at:
            story.case.resolved_at = story.resolved_at
        cases.append(story.case)
        for message, at in story.notes:
            message.sent_at = at
            notes.append(message)
    Case.objects.bulk_update(cases, ["created_at", "resolved_at"], batch_size=500)
    CaseEvent.objects.bulk_update(events, ["created_at"], batch_size=500)
    Message.objects.bulk_update(notes, ["sent_at"], batch_size=500)
    Message.objects.filter(case__in=[c.pk for c in cases]).update(created_at=F("sent_at"))


def demo_cases_exist() -> bool:
    return Message.objects.filter(external_id__startswith=DEMO_EXTERNAL_PREFIX).exists()


@transaction.atomic
def seed_demo(*, customers: int = DEMO_CUSTOMERS, cases: int = DEMO_CASES) -> SeedSummary:
    """Build (or complete) the demo contact centre; running it again changes nothing.

    There are always at least the cross-channel conversations and their customers, plus one.
    """
    customers = max(customers, DEMO_CROSS_CHANNEL + 1)
    cases = max(cases, DEMO_CROSS_CHANNEL)
    summary = SeedSummary()
    org = seed_organisation(summary)
    seed_users(org, summary)
    people = seed_customers(customer_specs(customers), summary)
    if demo_cases_exist():
        summary.cases_skipped = True
    else:
        seed_cases(org, people, count=cases, summary=summary)
    summary.totals = {
        "departments": Department.objects.count(),
        "channels": Channel.objects.count(),
        "users": get_user_model().objects.count(),
        "customers": Customer.objects.count(),
        "identities": Identity.objects.count(),
        "cases": Case.objects.count(),
        "messages": Message.objects.count(),
        "case events": CaseEvent.objects.count(),
    }
    return summary
