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

The package, by job; this module re-exports every name as ``cases.promise_settings.<name>``
(to replace one in a test, patch the submodule that uses it):

- ``services``: the writes, and the audit actor they record (``_audited``);
- ``selectors``: the reads for the settings pages;
- ``rules``: names, bounds and the problems forms and services share;
- ``hours``: weekly hours, closed dates, time zones and holiday countries;
- ``preview``: the due-time preview.
"""

from .hours import (  # noqa: F401
    _SPAN,
    _hhmm,
    _holiday_countries,
    _minutes,
    check_holiday_country,
    check_time_zone,
    check_weekly_hours,
    format_day_hours,
    parse_closed_dates,
    parse_day_hours,
    time_zones,
    upcoming_closed_days,
)
from .preview import (  # noqa: F401
    ClockPreview,
    DuePreview,
    display_zone,
    due_preview,
)
from .rules import (  # noqa: F401
    AUDIT_ENTRIES_SHOWN,
    LADDER_STEPS,
    MAX_AT_RISK,
    MAX_LADDER_MINUTES,
    MAX_TARGET_MINUTES,
    MIN_AT_RISK,
    TARGETS,
    WEEKDAYS,
    ladder_problems,
    override_problems,
    ratio_problem,
    target_problem,
)
from .selectors import (  # noqa: F401
    applying_path,
    calendar_users,
    calendars,
    channel_for_settings,
    channels_with_promises,
    every_settings_entry,
    recent_audit_entries,
)
from .services import (  # noqa: F401
    _audited,
    _changed,
    _full_clean,
    calendar_save,
    ladder_create,
    ladder_save,
    promise_save,
)
