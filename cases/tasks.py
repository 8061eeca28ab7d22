"""Celery tasks of the cases app: thin wrappers around services, scheduled in cases/schedule.py."""

from __future__ import annotations

from celery import shared_task

from . import sla, triage


@shared_task(ignore_result=True)
def sla_sweep() -> dict:
    result = sla.sla_sweep()
    return {
        "at_risk": result.at_risk,
        "breached": result.breached,
        **result.ladder,
        "department_over_target": result.department_over_target,
    }


@shared_task(ignore_result=True)
def surge_detect() -> int:
    return len(triage.surge_detect())


@shared_task(ignore_result=True)
def monitoring_autoclose() -> int:
    return triage.monitoring_autoclose()


@shared_task(ignore_result=True)
def known_customers_sweep() -> int:
    from . import urgent

    return len(urgent.known_customers_sweep())


@shared_task(ignore_result=True)
def channel_health_sweep() -> dict:
    from . import health

    return health.channel_health_sweep().as_dict()


# Named into the reports queue: a long first count must not hold up the SLA sweeps.
@shared_task(name="cases.reports.topics_refresh", ignore_result=True)
def topics_refresh() -> dict:
    from .topics import services as topics

    return topics.topics_refresh().as_dict()


@shared_task(ignore_result=True)
def csat_survey_send(case_id: int) -> bool:
    from .csat import services as csat

    return csat.survey_send(case_id=case_id) is not None
