"""The demo's organisation: departments, escalation paths, calendars, channels and
their promises, and the people who work there."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from connectors.models import Channel

from ..models import (
    BusinessCalendar,
    Case,
    Department,
    EscalationPath,
    Membership,
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
