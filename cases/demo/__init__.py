"""The demo contact centre behind ``manage.py seed_demo``: Caseline Air's customer care.

Everything here is idempotent. Configuration (departments, escalation paths, calendars,
channels, promises, users) is found or created on its natural key and never overwritten,
so an admin's later edits survive a re-run. Customers are keyed on their first identity.
Cases are written once, through the services, and only when no demo case exists yet.

The whole seed runs in one transaction: an interrupted run leaves nothing behind.

Its parts: `organisation` (departments, paths, calendars, channels, people), `customers`,
`topics` (what customers write about and the replies), `stories` (the conversations,
played through the services).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from connectors.models import Channel
from customers.models import Customer, Identity

from ..models import Case, CaseEvent, Department, Message
from .customers import FIRST_KIND_WEIGHTS, customer_specs, seed_customers
from .organisation import (
    DEMO_CASES,
    DEMO_CROSS_CHANNEL,
    DEMO_CUSTOMERS,
    DEMO_EMAIL_DOMAIN,
    DEMO_EXTERNAL_PREFIX,
    DEMO_LOGINS,
    DEMO_PASSWORD,
    Organisation,
    SeedSummary,
    demo_email,
    seed_organisation,
    seed_users,
)
from .stories import seed_cases
from .topics import TOPICS, topic_facts

__all__ = [
    "DEMO_CASES",
    "DEMO_CUSTOMERS",
    "DEMO_EMAIL_DOMAIN",
    "DEMO_LOGINS",
    "DEMO_PASSWORD",
    "FIRST_KIND_WEIGHTS",
    "Organisation",
    "SeedSummary",
    "TOPICS",
    "demo_cases_exist",
    "demo_email",
    "seed_demo",
    "seed_organisation",
    "topic_facts",
]


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
