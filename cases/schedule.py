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
}
