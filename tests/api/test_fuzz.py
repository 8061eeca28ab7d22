"""schemathesis against the live schema (/api/schema/), as an agent and as a supervisor.

A bounded number of examples per operation; every response must be a non-5xx that the
schema documents (status, content type, body). Path ids are drawn partly from the test
world, so detail endpoints and actions are reached and not only their 404s.

The operations are driven one by one with Hypothesis: schemathesis' lazy pytest loader
does not run on pytest 9.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cases.models import BusinessCalendar, CannedReply, EscalationPath, Incident, Membership
from connectors import api_tokens

EXAMPLES_PER_OPERATION = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def _keep_test_connection():
    """Requests reach Django's WSGI handler directly, not through the test client, so the
    handler's end-of-request hook would close the test's database connection: unhook it,
    as the test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_settings(settings, _keep_test_connection):
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    # The fuzzer sends far more than an integration would; its requests are not rate-limited.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_token": "100000/min", "api_token_write": "100000/min"},
    }


@pytest.fixture
def fuzz_world(world, fuzz_settings):
    """Ids that exist, and tokens for an agent and a supervisor."""
    BusinessCalendar.objects.create(name="Office", time_zone="Europe/London")
    canned = CannedReply.objects.create(title="Sorry", body="Sorry {customer_name}")
    now = timezone.now()
    incident = Incident.objects.create(
        channel=world.channel, window_start=now, window_end=now, mention_count=30, baseline=1.0
    )
    incident.cases.add(world.case)
    ids = {
        canned.pk,
        incident.pk,
        world.case.pk,
        world.other_case.pk,
        world.customer.pk,
        world.identity.pk,
        world.message.pk,
        world.event.pk,
        world.department.pk,
        world.other_department.pk,
        world.channel.pk,
        *EscalationPath.objects.values_list("pk", flat=True),
        *Membership.objects.values_list("pk", flat=True),
    }
    _, supervisor_key = api_tokens.api_token_create(user=world.supervisor, name="fuzz")
    return {"ids": sorted(ids), "agent": world.write_key, "supervisor": supervisor_key}


def _schema(known_ids: list[int]):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    known = st.sampled_from(known_ids)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        if not path_parameters or "id" not in path_parameters:
            return st.just(path_parameters)
        return st.one_of(st.just(path_parameters), known.map(lambda pk: {**path_parameters, "id": pk}))

    return schema


def test_no_server_errors_and_every_response_matches_the_schema(schema_settings, fuzz_world):
    schema = _schema(fuzz_world["ids"])
    headers = [{"Authorization": f"Token {fuzz_world[role]}"} for role in ("agent", "supervisor")]
    failures, operations, started = [], 0, time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(hooks=schema.hooks))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            for header in headers:
                case.call_and_validate(headers=header, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, report them all
            failures.append(f"{operation.label}: {exc}")
    elapsed = time.monotonic() - started
    assert operations >= 80, "every operation of the schema is exercised"
    assert not failures, "\n\n".join(failures)
    # A figure, not a check: the run's time depends on the machine's load.
    print(
        f"schemathesis: {operations} operations x {EXAMPLES_PER_OPERATION} examples x 2 roles in {elapsed:.0f} s"
    )
