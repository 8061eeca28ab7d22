"""Service clocks: when an answer or a resolution is due, on a channel's business calendar.

The clock rules
---------------
- **First response** is due from the first customer message, on the promise (and
  calendar) of the channel it came in on. Later messages never move it.
- **Next response**: once we have answered, a customer follow-up starts the
  next-response clock from that message, on the promise of the channel it came in on.
  Another follow-up while that clock runs re-bases it on the newest message's channel,
  still counted from the oldest unanswered message: when a conversation moves from X
  to e-mail the e-mail promise applies from then on, but the customer's wait is not
  reset.
- An outbound reply, public or private (a logged outbound call too), stops the response
  clock. An internal note does not.
- **Resolution** is due from the first customer message, on the promise of the channel
  the case began on. Waiting on the customer, monitoring, resolved and closed pause it:
  the working time left is stored, and reopening resumes it from there. Monitoring and
  waiting on the customer also stop the response clock (we owe no answer); a customer
  message after that starts one again.
- Transfers and escalations do not touch these clocks: they are the customer's.
  The time a case has spent in its current department is reported separately
  (:func:`department_clock`).
- A per-priority override on the promise tightens targets; a priority change applies
  it to the running response clock only where that makes it earlier
  (:func:`on_priority_change`): a promise made is never postponed.

The hooks (``on_inbound``, ``on_reply``, ``on_status_change``, ``on_priority_change``)
compute and do not save: the services call them inside their transactions and save the
case with the rest of the change. State *worsening* (ok -> at risk -> breached) is left
to :func:`sla_sweep`, which writes a CaseEvent for every such change; the hooks only
keep a state that still holds or clear one that no longer does.

The package, by job; this module re-exports every name as ``cases.sla.<name>`` (to
replace one in a test, patch the submodule that looks it up):

- ``calendars``: working time on a business calendar (opening hours, closed days,
  public holidays);
- ``clocks``: the clock rules: promises and targets, the hooks the services call,
  ``refresh`` and ``clock_of``;
- ``department``: the time a case has spent in its current department;
- ``sweep``: ``sla_sweep``, which marks cases at risk and breached and publishes the changes.
"""

from .calendars import (  # noqa: F401
    MAX_SEARCH_DAYS,
    _day_spans,
    _local,
    _open_intervals,
    _parse_hhmm,
    _public_holidays,
    add_working_minutes,
    is_closed_day,
    working_time_between,
)
from .clocks import (  # noqa: F401
    CLOCK_FIELDS,
    CLOCK_NAMES,
    DEFAULT_AT_RISK_RATIO,
    PAUSED_STATUSES,
    RUNNING_STATUSES,
    TARGET_FIELDS,
    _clock,
    _oldest_unanswered_at,
    _pause_resolution,
    _ratio,
    _resolution_promise,
    _response_running,
    _resume_resolution,
    _start_resolution,
    _stop_response,
    clock_of,
    on_inbound,
    on_priority_change,
    on_reply,
    on_status_change,
    promise_for,
    refresh,
    target_minutes,
)
from .department import (  # noqa: F401
    DEPARTMENT_MOVES,
    DepartmentClock,
    department_clock,
    department_entered_at,
    department_since,
)
from .sweep import (  # noqa: F401
    LIVE_EVENT_CASES,
    SWEEP_BATCH,
    SWEEP_COLUMNS,
    SweepResult,
    _clock_name,
    _mark,
    _webhook_payload,
    at_risk_candidates,
    breach_candidates,
    logger,
    publish_sla_changes,
    sla_sweep,
)
