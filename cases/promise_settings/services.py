"""The writes: ``promise_save``, ``ladder_save``, ``ladder_create`` and ``calendar_save``, each in
one transaction on a locked row, checked against the model's rules and the shared ones, and
recorded in the configuration audit trail under the admin (``_audited``); nothing is written
when nothing changed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from decimal import Decimal

from auditlog.context import auditlog_value, set_actor
from django.core.exceptions import ValidationError
from django.db import transaction

from connectors.models import Channel

from ..errors import ServiceError
from ..models import BusinessCalendar, Department, EscalationPath, ServicePromise
from .hours import check_holiday_country, check_time_zone, check_weekly_hours, parse_closed_dates
from .rules import TARGETS, ladder_problems, override_problems, ratio_problem, target_problem

# --- Audit actor --------------------------------------------------------------------------------


def _audited(actor, work):
    """Run ``work`` so the audit entries it causes name ``actor``.

    The actor is set in a copy of the context, so nothing outside ``work`` sees it; the
    remote address the request's ``config.audit.ConfigAuditMiddleware`` noted is kept. (The
    middleware's own actor is not relied on: a service also runs in shells, tasks and tests,
    and auditlog leaves a finished request's values in the context.)
    """
    current = auditlog_value.get(None) or {}

    def run():
        with set_actor(actor, remote_addr=current.get("remote_addr"), remote_port=current.get("remote_port")):
            return work()

    return contextvars.copy_context().run(run)


def _full_clean(instance, *, exclude: Iterable[str] = ()) -> None:
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ServiceError(" ".join(messages), field=None if field == "__all__" else field) from exc


def _changed(instance, values: dict) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed = True
    return changed


# --- Services -----------------------------------------------------------------------------------


def promise_save(
    *,
    channel: Channel,
    actor,
    calendar: BusinessCalendar | None,
    first_response_minutes: int,
    next_response_minutes: int,
    resolution_minutes: int,
    at_risk_ratio: Decimal,
    priority_overrides: dict,
) -> ServicePromise:
    """Create or change ``channel``'s service promise.

    Guarantees: the promise row is locked while it changes; a value the rules refuse raises
    ServiceError naming the field, and nothing is written; one audit entry (create or
    update) names ``actor`` with each changed field, none when nothing changed. Running
    clocks keep their due times.
    """
    values = {
        "calendar_id": calendar.pk if calendar is not None else None,
        "first_response_minutes": first_response_minutes,
        "next_response_minutes": next_response_minutes,
        "resolution_minutes": resolution_minutes,
        "at_risk_ratio": Decimal(at_risk_ratio),
        "priority_overrides": {p: dict(t) for p, t in (priority_overrides or {}).items() if t},
    }
    for name, label in TARGETS.items():
        if problem := target_problem(label, values[name]):
            raise ServiceError(problem, field=name)
    if problem := ratio_problem(values["at_risk_ratio"]):
        raise ServiceError(problem, field="at_risk_ratio")
    values["at_risk_ratio"] = values["at_risk_ratio"].quantize(Decimal("0.01"))  # as stored: 0.80, not 0.8
    if problems := override_problems({n: values[n] for n in TARGETS}, values["priority_overrides"]):
        key, problem = next(iter(problems.items()))
        raise ServiceError(problem, field=f"priority_overrides.{key}")

    def work() -> ServicePromise:
        with transaction.atomic():
            promise = ServicePromise.objects.select_for_update().filter(channel=channel).first()
            if promise is None:
                promise = ServicePromise(channel=channel, **values)
                _full_clean(promise)
                promise.save()
                return promise
            if _changed(promise, values):
                _full_clean(promise, exclude=["channel"])
                promise.save()
            return promise

    return _audited(actor, work)


def ladder_save(
    *,
    path: EscalationPath,
    actor,
    warn_after_minutes: int | None,
    notify_after_minutes: int | None,
    escalate_after_minutes: int | None,
) -> EscalationPath:
    """Change the minutes of one breach-ladder step set (an ``sla_breach`` escalation path).

    Guarantees as :func:`promise_save`: locked row, ServiceError naming the field for a
    refused value, one audit entry naming ``actor`` when something changed. The next SLA
    sweep climbs the ladder with the new minutes.
    """
    steps = {
        "warn_after_minutes": warn_after_minutes,
        "notify_after_minutes": notify_after_minutes,
        "escalate_after_minutes": escalate_after_minutes,
    }
    if path.trigger != EscalationPath.Trigger.SLA_BREACH:
        raise ServiceError("Only a “service promise breached” path has a breach ladder.", field="trigger")
    if problems := ladder_problems(steps):
        field, problem = next(iter(problems.items()))
        raise ServiceError(problem, field=field)

    def work() -> EscalationPath:
        with transaction.atomic():
            locked = EscalationPath.objects.select_for_update().get(pk=path.pk)
            if _changed(locked, steps):
                _full_clean(locked)
                locked.save()
            return locked

    return _audited(actor, work)


def ladder_create(
    *,
    department: Department,
    to_department: Department,
    actor,
    warn_after_minutes: int | None,
    notify_after_minutes: int | None,
    escalate_after_minutes: int | None,
) -> EscalationPath:
    """Give ``department`` a breach ladder: an ``sla_breach`` path to ``to_department``.

    Its order follows the department's existing ``sla_breach`` paths (the lowest applies,
    ``cases.escalation._ladder_paths``). Refused (ServiceError on ``to_department``) for the
    department itself or a department it already has such a path to. One audit entry.
    """
    steps = {
        "warn_after_minutes": warn_after_minutes,
        "notify_after_minutes": notify_after_minutes,
        "escalate_after_minutes": escalate_after_minutes,
    }
    if problems := ladder_problems(steps):
        field, problem = next(iter(problems.items()))
        raise ServiceError(problem, field=field)
    if to_department.pk == department.pk:
        raise ServiceError("A breach escalates to another department.", field="to_department")

    def work() -> EscalationPath:
        with transaction.atomic():
            existing = list(
                EscalationPath.objects.select_for_update()
                .filter(from_department=department, trigger=EscalationPath.Trigger.SLA_BREACH)
                .values_list("to_department_id", "order")
            )
            if any(to_id == to_department.pk for to_id, _ in existing):
                raise ServiceError(
                    f"{department.name} already escalates breaches to {to_department.name}.",
                    field="to_department",
                )
            path = EscalationPath(
                from_department=department,
                to_department=to_department,
                trigger=EscalationPath.Trigger.SLA_BREACH,
                order=max((order for _, order in existing), default=0) + 1,
                **steps,
            )
            _full_clean(path)
            path.save()
            return path

    return _audited(actor, work)


def calendar_save(
    *,
    calendar: BusinessCalendar | None,
    actor,
    name: str,
    time_zone: str,
    always_open: bool,
    weekly_hours: dict,
    holiday_country: str,
    extra_closed_dates: list[str],
) -> BusinessCalendar:
    """Create a business calendar (``calendar`` None) or change one.

    Guarantees as :func:`promise_save`. Weekly hours are stored normalised (spans sorted,
    closed days left out), closed dates sorted and each once. Every promise on the calendar
    counts its clocks on the new hours from the next clock that starts.
    """
    try:
        values = {
            "name": (name or "").strip(),
            "time_zone": check_time_zone(time_zone),
            "always_open": bool(always_open),
            "weekly_hours": check_weekly_hours(weekly_hours),
            "holiday_country": check_holiday_country(holiday_country),
            "extra_closed_dates": parse_closed_dates(" ".join(map(str, extra_closed_dates or []))),
        }
    except ValueError as exc:
        raise ServiceError(str(exc)) from exc
    if not values["always_open"] and not values["weekly_hours"]:
        raise ServiceError(
            "A calendar that is not always open needs open hours on at least one day.", field="weekly_hours"
        )

    def work() -> BusinessCalendar:
        with transaction.atomic():
            if calendar is None:
                created = BusinessCalendar(**values)
                _full_clean(created)
                created.save()
                return created
            locked = BusinessCalendar.objects.select_for_update().get(pk=calendar.pk)
            if _changed(locked, values):
                _full_clean(locked)
                locked.save()
            return locked

    return _audited(actor, work)
