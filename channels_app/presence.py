"""The synchronous half of the desk socket: reads and renders it runs in a worker thread.

Everything here is called through ``database_sync_to_async`` from
:mod:`channels_app.consumers` (or is pure and cheap). It reads through
``cases.selectors`` and writes only through ``cases.drafts``' services.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.template.loader import render_to_string

from cases import drafts, forms, permissions, selectors
from cases.customer_panel import panel_for_push as customer_panel_context

# The render context of pushed partials: no request, so no CSRF token; their forms post with
# htmx, which sends the page's token as a header (base.html).
PUSH_CONTEXT: dict = {}


def queue_subscription(
    *, user, content: dict, max_rows: int, check_stale: bool = True
) -> tuple[selectors.QueueWindow | None, set[int], bool]:
    """Check what a queue page says it shows, with the page's own form rules.

    Returns the window (None when the page's filters are not the user's to see), the
    rows it shows that are the user's work (others are forgotten, so a page cannot ask
    about cases it was never shown), and whether anything changed since the page was
    rendered (always False without ``check_stale``: a replaying page is sent what changed).
    """
    data = {
        name: str(content.get(name) or "")
        for name in ("view", "kind", "priority", "status", "department", "q", "after")
    }
    form = forms.QueueFilterForm(data, departments=selectors.queue_departments(user=user))
    if not form.is_valid() or not form.cleaned_data.get("view"):
        return None, set(), False
    cleaned = form.cleaned_data
    until = None
    if content.get("until"):
        try:
            until = selectors.QueueCursor.decode(str(content["until"]))
        except ValueError:
            return None, set(), False
    window = selectors.QueueWindow(
        view=cleaned["view"],
        channel_kind=cleaned.get("kind") or "",
        priority=cleaned.get("priority") or "",
        status=cleaned.get("status") or "",
        department_id=cleaned.get("department"),
        q=(cleaned.get("q") or "").strip(),
        after=cleaned.get("after"),
        until=until,
    )
    rows = [pk for pk in content.get("rows") or [] if isinstance(pk, int)][:max_rows]
    shown = selectors.work_case_ids(user=user, case_ids=rows)
    if not check_stale:
        return window, shown, False
    seq = content.get("seq")
    stale = not isinstance(seq, int) or selectors.queue_changed_since(user=user, seq=seq)
    return window, shown, stale


def typing(*, user, case_id: int, tab: str, typing: bool, has_draft: bool) -> None:
    case = selectors.live_case(case_id=case_id)
    if case is None or not permissions.can_view_case(user, case):
        return
    drafts.case_typing(case=case, tab=tab, user=user, typing=typing, has_draft=has_draft)


def case_view(*, user, case_id: int) -> dict | None:
    """The watched case's action panel and hand-over banner for ``user``, or None when they may no
    longer see the case."""
    case = selectors.live_case(case_id=case_id)
    if case is None or not permissions.can_view_case(user, case):
        return None
    context = {**PUSH_CONTEXT, **selectors.case_actions_context(user=user, case=case), "user": user}
    return {
        "actions": render_to_string("cases/partials/case_actions.html", context),
        # The hand-over banner at the top of the case: its Accept / Hand back are this user's to see.
        "handoff": render_to_string("cases/handoff/banner_region.html", context),
        "can_take_over": context["can_take_over"],
    }


def customer_panel(*, user, reference: str) -> str | None:
    """The watched case's customer panel for ``user``, or None when they may no longer see the case."""
    context = customer_panel_context(user=user, reference=reference)
    if context is None:
        return None
    return render_to_string("cases/partials/customer_panel.html", {**PUSH_CONTEXT, **context, "user": user})


def _items(event: dict, visible: dict) -> list[dict]:
    refs = []
    for pk, row in visible.items():
        refs.append({"case_id": pk, "reference": row.case.reference})
    order = [item.get("case_id") for item in event.get("cases") or []] or [event.get("case_id")]
    refs.sort(key=lambda item: order.index(item["case_id"]) if item["case_id"] in order else len(order))
    return refs


def _alert(
    *, level: str, title: str, text: str = "", items: list[dict] | None = None, shown: int = 8
) -> dict:
    items = items or []
    return {
        "level": level,
        "title": title,
        "text": text,
        "cases": items[:shown],
        "more": max(0, len(items) - shown),
        "at": datetime.now(UTC),
    }


# Events that raise an alert for supervisors (agents: only AGENT_ALERTS, about their cases).
SUPERVISOR_ALERTS = frozenset({"sla.breach_alert", "sla.changed", "case.escalated", "case.handed_back"})
# Events that raise an alert for anyone who sees the cases: a broken promise to answer first, and
# cases past their department's handling target (sent to the department's group).
AGENT_ALERTS = frozenset({"sla.warning", "department.over_target"})


def alert_for(*, kind: str, event: dict, visible: dict, user, supervisor: bool) -> dict | None:
    """The alert an event raises for this user, listing only cases they may see; None for none."""
    if not visible or (kind not in AGENT_ALERTS and not (supervisor and kind in SUPERVISOR_ALERTS)):
        return None  # most events raise no alert: decided before any work, once per socket
    items = _items(event, visible)
    if kind == "sla.warning":
        return _alert(level="warn", title="Past its service promise", text="Answer these first:", items=items)
    if kind == "department.over_target":
        department = next(iter(visible.values())).case.department
        count = len(items)
        return _alert(
            level="warn",
            title=f"{count} case{'s' if count != 1 else ''} over {department}'s handling target",
            text=f"With the department longer than {event.get('target_minutes')} minutes:",
            items=items,
        )
    if not supervisor:
        return None
    if kind == "sla.breach_alert":
        return _alert(
            level="bad", title="Breached and waiting", text="Promises broken a while ago:", items=items
        )
    if kind == "sla.changed" and event.get("sla_state") == "breached":
        count = len(items)
        return _alert(
            level="bad",
            title=f"{count} case{'s' if count != 1 else ''} just broke the service promise",
            items=items,
        )
    if kind == "case.escalated":
        department = next(iter(visible.values())).case.department
        return _alert(
            level="info", title=f"Escalated to {department}", text=event.get("reason", ""), items=items
        )
    if kind == "case.handed_back":
        return _alert(level="info", title="Handed back", text=event.get("reason", ""), items=items)
    return None


def incident_alert(*, event: dict, incident: dict) -> dict:
    baseline = event.get("baseline") or 0
    return _alert(
        level="bad",
        title=f"Surge on {incident['channel__name']}",
        text=f"{incident['title'] or str(event.get('mention_count')) + ' messages'} "
        f"(usually about {baseline:.1f} per window).",
    )
