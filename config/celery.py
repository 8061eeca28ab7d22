"""The Celery app: configured from Django settings (``CELERY_*``), tasks autodiscovered."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("caseline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The outbox keeps its send task beside its retry policy.
app.autodiscover_tasks(related_name="outbound")


@worker_process_init.connect
def _one_connection_per_worker_process(**_kwargs) -> None:
    """A forked worker runs one task at a time: it keeps one persistent connection of its own
    rather than the web processes' connection pool (whose threads do not survive a fork)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database.get("OPTIONS", {}).pop("pool", None):
        database["CONN_MAX_AGE"] = settings.DB_CONN_MAX_AGE
