"""The Celery app: configured from Django settings (``CELERY_*``), tasks autodiscovered.

Queues per job. With ``CASELINE_CELERY_QUEUES`` on (production), each task goes to the
queue of its job, named after the default queue (``CELERY_QUEUE``, "caseline"):

    caseline.ingest    webhooks and mail taken in: parse, thread, triage (the busiest)
    caseline.outbound  replies to the platforms, satisfaction surveys, integrator webhook deliveries
    caseline.sweeps    beat's periodic jobs: SLA sweep, surges, auto-close, retention,
                       re-queueing lost sends and deliveries
    caseline.reports   report and export jobs (none run as tasks yet)
    caseline           everything else (privacy erasure requests)

so each is given its own workers (``celery -A config worker -Q caseline.ingest``, see
docs/deploy.md) and a flood of webhooks never delays a reply. A worker started without
``-Q`` consumes all five. Off (the default, ``make run``, the tests): every task goes to
the default queue, and one worker consumes everything.
"""

import fnmatch
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("caseline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The outbox keeps its send task beside its retry policy.
app.autodiscover_tasks(related_name="outbound")


# Task name patterns to jobs, first match wins; a task matching none goes to the default queue.
JOB_ROUTES: tuple[tuple[str, str], ...] = (
    # Inbound deliveries (webhooks, mail, monitoring alerts), one by one and in batches.
    ("connectors.process_*", "ingest"),
    ("connectors.poll_imap", "ingest"),
    ("connectors.send_message", "outbound"),
    ("connectors.deliver_webhook", "outbound"),
    ("connectors.requeue_stalled_sends", "sweeps"),
    ("connectors.redeliver_webhooks", "sweeps"),
    # A satisfaction survey is a message to a customer, sent like a reply.
    ("cases.tasks.csat_survey_send", "outbound"),
    # The cases app's other tasks are beat's sweeps (SLA, surges, auto-close, health, ...).
    ("cases.tasks.*", "sweeps"),
    ("cases.privacy.retention_sweep", "sweeps"),
    ("*.reports.*", "reports"),
)
JOBS = ("ingest", "outbound", "sweeps", "reports")
# Tasks that go to the default queue on purpose (rare, and nothing else waits behind them).
DEFAULT_QUEUE_TASKS = frozenset({"cases.privacy.run_erasure_request"})


def queue_name(job: str | None) -> str:
    from django.conf import settings

    default = settings.CELERY_TASK_DEFAULT_QUEUE
    return f"{default}.{job}" if job else default


def job_for(task_name: str) -> str | None:
    for pattern, job in JOB_ROUTES:
        if fnmatch.fnmatchcase(task_name, pattern):
            return job
    return None


def route_task(name, args, kwargs, options, task=None, **_kw):
    """``task_routes`` entry: the job's queue when queues per job are on, else Celery decides."""
    from django.conf import settings

    if not settings.CASELINE_CELERY_QUEUES:
        return None
    return {"queue": queue_name(job_for(name))}


@worker_process_init.connect
def _one_connection_per_worker_process(**_kwargs) -> None:
    """A forked worker runs one task at a time: it keeps one persistent connection of its own
    rather than the web processes' connection pool (whose threads do not survive a fork)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database.get("OPTIONS", {}).pop("pool", None):
        database["CONN_MAX_AGE"] = settings.DB_CONN_MAX_AGE
