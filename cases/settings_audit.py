"""The configuration audit trail as people read it: each entry of a promise, ladder or
calendar as one row (who, when, what was created, changed or deleted), its fields labelled
in the forms' words and its values in their text form (minutes, weekly hours, named rows).
"""

from __future__ import annotations

from . import promise_settings as ps
from . import selectors

# --- The audit trail, as people read it ----------------------------------------------------------

CHANGE_LABELS = {
    "calendar": "Calendar",
    "channel": "Channel",
    "first_response_minutes": "First response target",
    "next_response_minutes": "Next response target",
    "resolution_minutes": "Resolution target",
    "at_risk_ratio": "At-risk share",
    "priority_overrides": "Priority overrides",
    "name": "Name",
    "time_zone": "Time zone",
    "always_open": "Always open",
    "weekly_hours": "Weekly hours",
    "holiday_country": "Public holidays of",
    "extra_closed_dates": "Extra closed days",
    "warn_after_minutes": "Warn the assignee after",
    "notify_after_minutes": "Notify supervisors after",
    "escalate_after_minutes": "Escalate after",
    "to_department": "Escalate to",
    "from_department": "From department",
    "order": "Order",
    "trigger": "Trigger",
    "is_active": "Active",
    "handling_target_minutes": "Handling target",
}
ORDER = {field: n for n, field in enumerate(CHANGE_LABELS)}
ACTIONS = {0: "created", 1: "changed", 2: "deleted", 3: "accessed"}


def _value_text(field: str, value, names: dict) -> str:
    if value is None or value == "":
        return "skipped" if field in ps.LADDER_STEPS else ("24/7" if field == "calendar" else "—")
    if field in ("calendar", "to_department", "from_department", "channel"):
        return names.get((field, str(value)), f"#{value}")
    if field == "weekly_hours" and isinstance(value, dict):
        days = [f"{ps.WEEKDAYS[d][:3]} {ps.format_day_hours(s)}" for d, s in sorted(value.items()) if s]
        return "; ".join(days) or "closed every day"
    if field == "priority_overrides" and isinstance(value, dict):
        parts = [
            f"{priority}: " + ", ".join(f"{ps.TARGETS.get(n, n).lower()} {m}" for n, m in targets.items())
            for priority, targets in value.items()
            if targets
        ]
        return "; ".join(parts) or "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field in ps.TARGETS or field in ps.LADDER_STEPS or field == "handling_target_minutes":
        return f"{value} min"
    return str(value)


def _hours_changes(before: dict, after: dict) -> list[dict]:
    """A change of weekly hours, day by day: only the days that changed."""
    return [
        {
            "label": f"{ps.WEEKDAYS[day]} hours",
            "before": ps.format_day_hours(before.get(day) or []) or "closed",
            "after": ps.format_day_hours(after.get(day) or []) or "closed",
        }
        for day in ps.WEEKDAYS
        if (before.get(day) or []) != (after.get(day) or [])
    ]


def audit_rows(entries, *, names: dict) -> list[dict]:
    """Who, when, what, and each changed field's before and after, for the template."""
    rows = []
    for entry in entries:
        changes = []
        recorded = entry.changes or {}
        # Fields people set, in the forms' order (not the id, nor reverse relations).
        for field, pair in sorted(
            ((f, p) for f, p in recorded.items() if f in CHANGE_LABELS), key=lambda item: ORDER[item[0]]
        ):
            before, after = (pair + [None, None])[:2] if isinstance(pair, list) else (None, pair)
            if field == "weekly_hours" and isinstance(before, dict) and isinstance(after, dict):
                changes.extend(_hours_changes(before, after))
                continue
            changes.append(
                {
                    "label": CHANGE_LABELS[field],
                    "before": _value_text(field, before, names),
                    "after": _value_text(field, after, names),
                }
            )
        rows.append(
            {
                "when": entry.timestamp,
                "who": selectors.user_name(entry.actor) if entry.actor else (entry.actor_email or "System"),
                "what": entry.object_repr,
                "action": ACTIONS.get(entry.action, "changed"),
                "changes": changes,
                "created": entry.action == 0,
            }
        )
    return rows


def _names(*, calendars=(), departments=(), channels=()) -> dict:
    names = {("calendar", str(c.pk)): c.name for c in calendars}
    for department in departments:
        names[("to_department", str(department.pk))] = department.name
        names[("from_department", str(department.pk))] = department.name
    names |= {("channel", str(ch.pk)): ch.name for ch in channels}
    return names
