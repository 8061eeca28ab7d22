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
    # Floods of messages from VIP / verified / high-reach customers, per department's rule.
    "cases-known-customers-sweep": {
        "task": "cases.tasks.known_customers_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Channels gone quiet, failing signatures or failing sends raise (and clear) health alerts.
    "cases-channel-health-sweep": {
        "task": "cases.tasks.channel_health_sweep",
        "schedule": 5 * 60.0,
        "options": {"expires": 4 * 60},
    },
    # Count the phrases of new customer messages for the topics page (incremental).
    "cases-topics-refresh": {
        "task": "cases.reports.topics_refresh",
        "schedule": 15 * 60.0,
        "options": {"expires": 14 * 60},
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
