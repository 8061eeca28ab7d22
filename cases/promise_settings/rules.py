"""The rules the settings forms and services share: the weekdays, promise targets and ladder
steps by name, the bounds a target, a ladder step and the at-risk share are kept within,
and the problems (``ratio_problem``, ``target_problem``, ``override_problems``,
``ladder_problems``) a form shows by its field and a service refuses.
"""

from __future__ import annotations

from decimal import Decimal

from ..models import Case

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
