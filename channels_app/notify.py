"""Desktop notifications: which live events are news for one user, and what the notice says.

Decided by the user's socket from the event and the rows the process read for it (one read
per event and process, see :mod:`channels_app.rows`), so a notice costs no query of its own:

- ``assigned``: a case was assigned to the user by someone else (``case.changed`` with
  ``change == "assigned"``; the service names the actor);
- ``at_risk``: a case the user is assigned turned at risk (``sla.changed``);
- ``reply``: a customer wrote on a case the user is assigned or follows (``message.added``
  inbound). Followed cases are those the socket read when it connected; it joins the case
  groups of those outside the user's departments, whose news reaches no other group of theirs.

The page shows the notice through the browser's Notification API when the user allowed it
(``static/js/comforts.js``); the user's preferences (``cases.preferences``) say which kinds.
"""

from __future__ import annotations

import time
from collections import OrderedDict

# Live event types that can bring a notice of each kind.
EVENT_KINDS = {"case.changed": "assigned", "sla.changed": "at_risk", "message.added": "reply"}
# The same notice (kind and case) is not repeated within this many seconds: the sweep tells the
# department and the assignee apart, and both reach the assignee's socket.
REPEAT_SECONDS = 600.0


def may_notify(kind: str, wanted) -> bool:
    """Whether events of type ``kind`` can bring a notice the user wants (no rows needed to say)."""
    return EVENT_KINDS.get(kind) in wanted


def _case_url(reference: str) -> str:
    return f"/desk/cases/{reference}/"


def _notice(kind: str, reference: str, title: str, body: str) -> dict:
    return {
        "kind": kind,
        "reference": reference,
        "title": title,
        "body": body,
        "url": _case_url(reference),
        "tag": f"{kind}:{reference}",
    }


def _about(row) -> str:
    case = row.case
    customer = getattr(case.customer, "name", "") if case.customer_id else ""
    subject = case.subject or "(no subject)"
    return f"{subject} — {customer}" if customer else subject


def notices(*, kind: str, event: dict, rows: dict, user_id: int, wanted, followed) -> list[dict]:
    """The notices ``event`` brings the user ``user_id`` (``wanted``: the kinds they want on)."""
    news = EVENT_KINDS.get(kind)
    if news not in wanted:
        return []
    if news == "assigned":
        if (
            event.get("change") != "assigned"
            or event.get("assignee_id") != user_id
            or event.get("actor_id") in (user_id, None)
        ):
            return []
        row = rows.get(event.get("case_id"))
        if row is None or row.case.assignee_id != user_id:
            return []  # reassigned again since: the news is stale
        return [_notice(news, row.case.reference, f"{row.case.reference} is assigned to you", _about(row))]
    if news == "at_risk":
        if event.get("sla_state") != "at_risk":
            return []
        out = []
        for item in event.get("cases") or []:
            row = rows.get(item.get("case_id"))
            if row is not None and row.case.assignee_id == user_id:
                reference = row.case.reference
                out.append(
                    _notice(news, reference, f"{reference} is at risk of breaking its promise", _about(row))
                )
        return out
    if event.get("direction") != "in":
        return []
    row = rows.get(event.get("case_id"))
    if row is None or not (row.case.assignee_id == user_id or row.case.pk in followed):
        return []
    reference = row.case.reference
    return [_notice(news, reference, f"{reference}: the customer replied", _about(row))]


def pushes(*, kind: str, event: dict, rows: dict, user_id: int, prefs: dict, followed, recent) -> list[dict]:
    """The ``notify`` pushes for one socket: its user's notices not sent lately (``recent``)."""
    now = time.monotonic()
    out = []
    for notice in notices(
        kind=kind, event=event, rows=rows, user_id=user_id, wanted=prefs["notify"], followed=followed
    ):
        # Each reply is news of its own; an assignment or a risk, once in a while per case.
        key = notice["tag"] + (f":{event.get('message_id')}" if kind == "message.added" else "")
        if recent.fresh(key, now):
            out.append({"type": "notify", **notice, "sound": prefs["sound"]})
    return out


class Recent:
    """Notices already sent on one socket, by tag, so the same news is shown once."""

    def __init__(self, size: int = 128):
        self.size = size
        self.seen: OrderedDict[str, float] = OrderedDict()

    def fresh(self, tag: str, now: float) -> bool:
        at = self.seen.get(tag)
        if at is not None and now - at < REPEAT_SECONDS:
            return False
        self.seen[tag] = now
        self.seen.move_to_end(tag)
        while len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return True
