"""Service promises, breach ladders and business calendars, as admins change them in the desk.

Writes are the ``*_save`` / ``*_create`` services below: each runs in one transaction on a
locked row, checks the row against the model's own rules (``full_clean``) and the rules
written here, and leaves one entry per changed row in the configuration audit trail
(django-auditlog, ``config/audit.py``) naming the admin, with each changed field's before
and after. Nothing is written, and nothing recorded, when nothing changed.

A changed promise or calendar applies to clocks that start after it: a running clock's due
time was fixed when it started (``cases/sla.py``), so no case moves when an admin saves.

Reads for the settings pages are here too (they have no other caller), as is the text form
of weekly hours ("09:00-12:30, 13:30-17:30" per weekday) that the forms parse and print.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import holidays as holidays_lib
from auditlog.context import auditlog_value, set_actor
from auditlog.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q

from connectors.models import Channel

from . import sla
from .errors import ServiceError
from .models import BusinessCalendar, Case, Department, EscalationPath, ServicePromise

WEEKDAYS = {
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
}
TARGETS = {
    "first_response_minutes": "First response",
    "next_response_minutes": "Next response",
    "resolution_minutes": "Resolution",
}
LADDER_STEPS = {
    "warn_after_minutes": "Warn the assignee",
    "notify_after_minutes": "Notify supervisors",
    "escalate_after_minutes": "Escalate",
}
# The bounds the API keeps too (cases.api.serializers): a target of more than a million
# working minutes is a typing mistake, and so is a ladder step of more than ten weeks.
MAX_TARGET_MINUTES = 10**6
MAX_LADDER_MINUTES = 100_000
# The model keeps the share strictly between 0 and 1 with two decimals.
MIN_AT_RISK, MAX_AT_RISK = Decimal("0.01"), Decimal("0.99")
AUDIT_ENTRIES_SHOWN = 15


# --- Weekly hours, closed days, time zones, holiday countries -------------------------------------

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})$")


def _minutes(hours: str, minutes: str) -> int | None:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        return None
    return h * 60 + m


def _hhmm(total: int) -> str:
    return f"{total // 60:02d}:{total % 60:02d}"


def parse_day_hours(text: str) -> list[list[str]]:
    """One day's open hours from "09:00-12:30, 13:30-17:30" as ``[["09:00", "12:30"], ...]``.

    Empty is closed. A span whose end is earlier than its start runs past midnight
    ("22:00-06:00"), as ``cases.sla`` reads it; "24:00" ends the day. Raises ValueError
    with a message for people.
    """
    spans: list[tuple[int, int]] = []
    for part in (p.strip() for p in re.split(r"[,;]", text or "")):
        if not part:
            continue
        match = _SPAN.match(part)
        if match is None:
            raise ValueError(f"“{part}” is not a span like 09:00-17:30.")
        start, end = _minutes(*match.group(1, 2)), _minutes(*match.group(3, 4))
        if start is None or end is None:
            raise ValueError(f"“{part}”: times run from 00:00 to 24:00.")
        if start == 24 * 60:
            raise ValueError(f"“{part}”: a span cannot start at 24:00 (write 00:00 on the next day).")
        if start == end:
            raise ValueError(f"“{part}” starts and ends at the same time.")
        spans.append((start, end if end > start else end + 24 * 60))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ValueError(f"Spans overlap around {_hhmm(start % (24 * 60))}: make them one span.")
    return [[_hhmm(start), _hhmm(end if end <= 24 * 60 else end - 24 * 60)] for start, end in spans]


def format_day_hours(spans: Iterable[Iterable[str]]) -> str:
    return ", ".join(f"{start}-{end}" for start, end in spans or [])


def check_weekly_hours(value: Any) -> dict[str, list[list[str]]]:
    """Stored weekly hours checked and normalised (the services' guard; the forms parse text)."""
    if not isinstance(value, dict):
        raise ValueError("Weekly hours map ISO weekdays (1 is Monday) to lists of spans.")
    checked = {}
    for day, spans in value.items():
        if str(day) not in WEEKDAYS:
            raise ValueError(f"“{day}” is not an ISO weekday (1 is Monday, 7 is Sunday).")
        if not isinstance(spans, list) or not all(
            isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(t, str) for t in span)
            for span in spans
        ):
            raise ValueError(f"{WEEKDAYS[str(day)]}: write spans as pairs of times.")
        parsed = parse_day_hours(format_day_hours(spans))
        if parsed:
            checked[str(day)] = parsed
    return dict(sorted(checked.items()))


def parse_closed_dates(text: str) -> list[str]:
    """Dates written as YYYY-MM-DD, separated by commas, spaces or lines; sorted, each once."""
    days, bad = set(), []
    for item in re.split(r"[\s,;]+", text or ""):
        if not item:
            continue
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", item):
                raise ValueError
            days.add(date.fromisoformat(item))
        except ValueError:
            bad.append(item)
    if bad:
        raise ValueError(f"Not dates written as YYYY-MM-DD: {', '.join(bad)}.")
    return [day.isoformat() for day in sorted(days)]


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def check_time_zone(value: str) -> str:
    value = (value or "").strip()
    if value not in time_zones():
        raise ValueError(f"“{value}” is not an IANA time zone such as Europe/London or America/New_York.")
    return value


@lru_cache(maxsize=1)
def _holiday_countries() -> dict[str, dict[str, str]]:
    """Country code -> {upper-cased subdivision: its spelling in the holidays package}."""
    return {
        code.upper(): {subdiv.upper(): subdiv for subdiv in subdivisions}
        for code, subdivisions in holidays_lib.list_supported_countries().items()
    }


def check_holiday_country(value: str) -> str:
    """A country code the ``holidays`` package knows ("GB"), optionally with a subdivision ("US-NY")."""
    value = (value or "").strip()
    if not value:
        return ""
    code, _, subdiv = value.partition("-")
    subdivisions = _holiday_countries().get(code.upper())
    if subdivisions is None:
        raise ValueError(f"“{code}” is not a country code the holidays calendar knows (e.g. GB, US, DE).")
    if not subdiv:
        return code.upper()
    if subdiv.upper() not in subdivisions:
        known = ", ".join(sorted(subdivisions.values())[:12]) or "none"
        more = "…" if len(subdivisions) > 12 else ""
        raise ValueError(f"“{subdiv}” is not a subdivision of {code.upper()} (known: {known}{more}).")
    return f"{code.upper()}-{subdivisions[subdiv.upper()]}"


def upcoming_closed_days(
    calendar: BusinessCalendar, *, start: date, count: int = 6
) -> list[tuple[date, str]]:
    """The next public holidays and extra closed days of ``calendar`` from ``start``, with names."""
    found: dict[date, str] = {}
    for item in calendar.extra_closed_dates or []:
        day = date.fromisoformat(item)
        if day >= start:
            found[day] = "Closed (extra day)"
    if calendar.holiday_country:
        code, _, subdiv = calendar.holiday_country.partition("-")
        try:
            country = holidays_lib.country_holidays(
                code, subdiv=subdiv or None, years=[start.year, start.year + 1]
            )
        except NotImplementedError:  # a code saved before it was checked here: list no holidays
            country = {}
        for day, name in country.items():
            if day >= start:
                found.setdefault(day, name)
    return sorted(found.items())[:count]


# --- Rules the forms and the services share ----------------------------------------------------


def ratio_problem(value: Decimal | None) -> str | None:
    if value is None:
        return "At-risk share is required, e.g. 0.75."
    if not (MIN_AT_RISK <= value <= MAX_AT_RISK) or value != value.quantize(Decimal("0.01")):
        return "At-risk share must be between 0.01 and 0.99, with at most two decimals (0.75 is 75%)."
    return None


def target_problem(label: str, value: int | None) -> str | None:
    if value is None:
        return f"{label} target is required, in working minutes."
    if not 1 <= value <= MAX_TARGET_MINUTES:
        return f"{label} target must be between 1 and {MAX_TARGET_MINUTES:,} working minutes."
    return None


def override_problems(targets: dict[str, int], overrides: dict) -> dict[str, str]:
    """Problems with per-priority overrides, keyed ``"<priority>.<target field>"``.

    An override tightens its target (the model says so, and ``sla.on_priority_change``
    only ever pulls a clock in): it is at least a minute and at most the channel's own target.
    """
    problems = {}
    if not isinstance(overrides, dict):
        return {"": "Priority overrides map priorities to targets."}
    for priority, chosen in overrides.items():
        if priority not in Case.Priority.values or not isinstance(chosen, dict):
            problems[f"{priority}."] = f"“{priority}” is not a priority ({', '.join(Case.Priority.values)})."
            continue
        for name, minutes in chosen.items():
            key = f"{priority}.{name}"
            if name not in TARGETS:
                problems[key] = f"“{name}” is not a target ({', '.join(TARGETS)})."
            elif not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
                problems[key] = f"{priority.capitalize()} {TARGETS[name].lower()}: at least 1 working minute."
            elif targets.get(name) is not None and minutes > targets[name]:
                problems[key] = (
                    f"{priority.capitalize()} {TARGETS[name].lower()}: an override tightens the target, "
                    f"so at most {targets[name]} minutes."
                )
    return problems


def ladder_problems(steps: dict[str, int | None]) -> dict[str, str]:
    """Problems with a breach ladder's minutes: each empty (skipped) or 0 to the bound, in order."""
    problems = {}
    for name, label in LADDER_STEPS.items():
        value = steps.get(name)
        if value is not None and not 0 <= value <= MAX_LADDER_MINUTES:
            problems[name] = (
                f"{label}: between 0 and {MAX_LADDER_MINUTES:,} minutes after the breach, or empty."
            )
    if problems:
        return problems
    previous: tuple[str, int] | None = None
    for name, label in LADDER_STEPS.items():
        value = steps.get(name)
        if value is None:
            continue
        if previous is not None and value < previous[1]:
            problems[name] = (
                f"{label} comes at or after “{LADDER_STEPS[previous[0]].lower()}” ({previous[1]} minutes): "
                "the steps run in order."
            )
        previous = (name, value)
    return problems


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


# --- The preview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockPreview:
    name: str
    label: str
    minutes: int
    due: datetime
    at_risk: datetime


@dataclass(frozen=True)
class DuePreview:
    arrival: datetime
    zone: str
    clocks: list[ClockPreview]

    @property
    def first(self) -> ClockPreview:
        return self.clocks[0]


def display_zone(calendar: BusinessCalendar | None, default: str) -> ZoneInfo:
    """Times of a promise are shown in its calendar's zone (24/7: the desk's display zone)."""
    return ZoneInfo(calendar.time_zone if calendar is not None and not calendar.always_open else default)


def due_preview(
    *, promise: ServicePromise, arrival: datetime, priority: str = Case.Priority.NORMAL
) -> DuePreview:
    """When each clock of ``promise`` started by a message arriving at ``arrival`` is due.

    Computed by the clock code itself (``cases.sla``: the target with its priority
    override, counted in working minutes on the calendar), so the preview is what a case
    would get. ``promise`` may be unsaved (the form's values). Raises ValueError when the
    calendar has no open hours within ``sla.MAX_SEARCH_DAYS``.
    """
    clocks = []
    for name, label in (
        ("first_response_due_at", "First response"),
        ("next_response_due_at", "Next response"),
        ("resolution_due_at", "Resolution"),
    ):
        due, risk = sla._clock(promise, name, arrival, priority)
        clocks.append(
            ClockPreview(
                name=sla.CLOCK_NAMES[name],
                label=label,
                minutes=sla.target_minutes(promise, name, priority),
                due=due.astimezone(arrival.tzinfo),
                at_risk=risk.astimezone(arrival.tzinfo),
            )
        )
    return DuePreview(arrival=arrival, zone=str(arrival.tzinfo), clocks=clocks)


# --- Reads for the settings pages -----------------------------------------------------------------


def channels_with_promises() -> list[Channel]:
    return list(
        Channel.objects.select_related("department", "promise", "promise__calendar").order_by("kind", "name")
    )


def calendars() -> list[BusinessCalendar]:
    return list(BusinessCalendar.objects.order_by("name"))


def calendar_users(calendar: BusinessCalendar) -> list[Channel]:
    """Channels whose promise counts on ``calendar``."""
    return list(Channel.objects.filter(promise__calendar=calendar).order_by("kind", "name"))


def channel_for_settings(channel_id: int) -> Channel | None:
    """A channel with its department, promise, calendar and its department's breach ladder rows."""
    ladder = EscalationPath.objects.filter(trigger=EscalationPath.Trigger.SLA_BREACH).select_related(
        "to_department"
    )
    return (
        Channel.objects.select_related("department", "promise", "promise__calendar")
        .prefetch_related(
            Prefetch(
                "department__paths_out", queryset=ladder.order_by("order", "id"), to_attr="breach_paths"
            ),
            Prefetch(
                "department__channels", queryset=Channel.objects.order_by("name"), to_attr="all_channels"
            ),
        )
        .filter(pk=channel_id)
        .first()
    )


def applying_path(paths: list[EscalationPath]) -> EscalationPath | None:
    """The path whose ladder the sweep climbs: the active one of lowest order to an active
    department (the rule of ``cases.escalation._ladder_paths``)."""
    return next((p for p in paths if p.is_active and p.to_department.is_active), None)


def recent_audit_entries(
    objects: Iterable[tuple[type, int]], *, limit: int = AUDIT_ENTRIES_SHOWN
) -> list[LogEntry]:
    """The newest audit entries of the given (model, pk) pairs, with their actors, in one query."""
    by_model: dict[type, set[int]] = {}
    for model, pk in objects:
        by_model.setdefault(model, set()).add(pk)
    if not by_model:
        return []
    which = Q()
    for model, pks in by_model.items():
        which |= Q(
            content_type__app_label=model._meta.app_label,
            content_type__model=model._meta.model_name,
            object_id__in=sorted(pks),
        )
    return list(
        LogEntry.objects.filter(which)
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-id")[:limit]
    )


def every_settings_entry(*, limit: int = AUDIT_ENTRIES_SHOWN) -> list[LogEntry]:
    """The newest audit entries of every promise, breach ladder and calendar."""
    kinds = Q()
    for model in (ServicePromise, BusinessCalendar):
        kinds |= Q(content_type__app_label=model._meta.app_label, content_type__model=model._meta.model_name)
    return list(
        LogEntry.objects.filter(kinds)
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-id")[:limit]
    )
