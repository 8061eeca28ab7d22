"""Builders for API tests: cases and messages made through the services, in bulk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cases import services
from cases.models import Case
from tests import factories


def open_cases(*, count: int, channel, department=None, start: datetime | None = None) -> list[Case]:
    """``count`` cases, each opened by one customer post ``i`` minutes after ``start``."""
    start = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    cases = []
    for i in range(count):
        identity = factories.IdentityFactory()
        case = services.case_open(customer=identity.customer, channel=channel, department=department)
        services.message_add(
            case=case,
            direction="in",
            kind="dm",
            text=f"Help number {i}",
            channel=channel,
            identity=identity,
            external_id=f"bulk-{channel.pk}-{i}-{identity.pk}",
            sent_at=start + timedelta(minutes=i),
        )
        case.refresh_from_db()
        cases.append(case)
    return cases
