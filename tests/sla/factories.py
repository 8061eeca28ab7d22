"""Factories for calendars, promises and paths used by the SLA and escalation tests."""

from __future__ import annotations

import factory

from cases.models import BusinessCalendar, EscalationPath
from tests.factories import DepartmentFactory

OFFICE_HOURS = {str(day): [["09:00", "17:00"]] for day in range(1, 6)}


class BusinessCalendarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessCalendar

    name = factory.Sequence(lambda n: f"Calendar {n}")
    time_zone = "Europe/London"
    weekly_hours = factory.LazyFunction(lambda: {k: [list(s) for s in v] for k, v in OFFICE_HOURS.items()})
    holiday_country = ""
    extra_closed_dates = factory.LazyFunction(list)


class EscalationPathFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EscalationPath

    from_department = factory.SubFactory(DepartmentFactory)
    to_department = factory.SubFactory(DepartmentFactory)
    trigger = EscalationPath.Trigger.MANUAL
    order = 1
