"""Periodic tasks of the cases app, for Celery beat.

Import-light on purpose (no models): ``config/settings.py`` merges it into
``CELERY_BEAT_SCHEDULE``.
"""

CASES_BEAT_SCHEDULE = {
    # Mark cases at risk / breached and climb breach ladders. A sweep not started within
    # its minute is dropped: the next one covers the same ground.
    "cases-sla-sweep": {
        "task": "cases.tasks.sla_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Look for surges of mentions per channel.
    "cases-surge-detect": {
        "task": "cases.tasks.surge_detect",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Close monitored cases that have been quiet for the configured number of days.
    "cases-monitoring-autoclose": {
        "task": "cases.tasks.monitoring_autoclose",
        "schedule": 60.0 * 60,
        "options": {"expires": 60 * 30},
    },
    # Purge raw inbound events past INBOUND_EVENT_RETENTION_DAYS, and run erasure requests
    # (Meta's data-deletion callback) whose own task was lost.
    "privacy-retention-sweep": {
        "task": "cases.privacy.retention_sweep",
        "schedule": 60.0 * 60,
        "options": {"expires": 60 * 30},
    },
}
