"""Read-only pages from a real streaming replica; writes, and a writer's next reads, on the primary.

The replica is a hot standby of the local cluster (tests/scale/conftest.py). Pausing its
WAL replay makes lag on demand: a case written on the primary then exists there and not
on the replica, so which database served a page shows in the page itself.
"""

from __future__ import annotations

import logging
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases import services
from cases.models import Case
from config import db_router
from config.replica import PIN_COOKIE

pytestmark = [
    pytest.mark.scale,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def queue_html(client: Client) -> str:
    response = client.get(reverse("desk:queue"), {"view": "department"})
    assert response.status_code == 200
    return response.content.decode()


def test_a_listed_page_reads_from_the_replica_and_an_unlisted_one_from_the_primary(replica, case, agent):
    reader = signed_in(agent)
    replica.wait_caught_up()

    with (
        CaptureQueriesContext(connections["replica"]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        html = queue_html(reader)
    assert case.reference in html
    assert any("cases_case" in q["sql"] for q in on_replica.captured_queries)
    assert not any("cases_case" in q["sql"] for q in on_primary.captured_queries)
    # the connection the page used is the standby's
    with connections["replica"].cursor() as cursor:
        cursor.execute("select pg_is_in_recovery()")
        assert cursor.fetchone()[0] is True

    # the API's reads too
    with CaptureQueriesContext(connections["replica"]) as api_on_replica:
        assert reader.get("/api/v1/cases/").status_code == 200
    assert any("cases_case" in q["sql"] for q in api_on_replica.captured_queries)

    # the case page is not listed: the primary serves it
    with CaptureQueriesContext(connections["replica"]) as page_on_replica:
        assert reader.get(reverse("desk:case", args=[case.reference])).status_code == 200
    assert page_on_replica.captured_queries == []


def test_under_lag_a_reader_sees_the_replica_and_the_writer_reads_its_own_write(
    replica, case, agent, other_agent, customer, channel, settings
):
    settings.CASELINE_REPLICA_PIN_SECONDS = 1.5
    writer, reader = signed_in(agent), signed_in(other_agent)
    replica.wait_caught_up()
    replica.pause()
    try:
        # given a case written on the primary while the replica does not replay
        lagging = services.case_open(customer=customer, channel=channel, subject="Written during the lag")
        time.sleep(0.2)
        lag = replica.sql("select extract(epoch from now() - pg_last_xact_replay_timestamp())")[0]
        assert lag > 0.1

        # a reader who wrote nothing is served by the replica: the case is not there yet
        html = queue_html(reader)
        assert case.reference in html
        assert lagging.reference not in html

        # outside a request (Celery tasks, consumers) reads go to the primary
        assert db_router.ReplicaRouter().db_for_read(Case) == "default"
        assert Case.objects.filter(pk=lagging.pk).exists()

        # the writer claims it (a POST: pinned to the primary) and then sees it on the queue
        response = writer.post(reverse("desk:case_claim", args=[lagging.reference]))
        assert response.status_code in (200, 302)
        assert PIN_COOKIE in response.cookies
        assert lagging.reference in queue_html(writer)
        assert lagging.reference not in queue_html(reader)

        # once the pin has expired the writer reads the (still lagging) replica again
        time.sleep(settings.CASELINE_REPLICA_PIN_SECONDS + 0.1)
        assert lagging.reference not in queue_html(writer)
    finally:
        replica.resume()

    # replay resumed: the replica catches up and the reader sees the case
    caught_up_in = replica.wait_caught_up()
    assert caught_up_in < 10
    assert lagging.reference in queue_html(reader)


def test_a_write_through_the_orm_in_a_get_pins_the_client(replica, agent, case):
    client = signed_in(agent)
    # A GET that writes: the router records it, and the response pins the client.
    state_token = db_router.begin_request()
    try:
        state = db_router.current_state()
        state.read_replica = True
        assert db_router.ReplicaRouter().db_for_read(Case) == "replica"
        Case.objects.filter(pk=case.pk).update(subject="Renamed")
        assert state.wrote
        assert db_router.ReplicaRouter().db_for_read(Case) == "default"
    finally:
        db_router.end_request(state_token)
    # and a GET that does not write sets no pin
    response = client.get(reverse("desk:queue"))
    assert response.status_code == 200
    assert PIN_COOKIE not in response.cookies


def test_the_replica_going_away_costs_a_warning_not_an_error(replica, case, agent, caplog):
    reader = signed_in(agent)
    replica.wait_caught_up()
    assert case.reference in queue_html(reader)
    replica.stop("immediate")
    try:
        with caplog.at_level(logging.WARNING, logger="caseline.replica"):
            started = time.monotonic()
            html = queue_html(reader)
            first = time.monotonic() - started
        assert case.reference in html
        assert first < 8
        assert any("Replica unreachable" in r.getMessage() for r in caplog.records)

        # while it stays away the primary answers at once, without trying it again
        caplog.clear()
        with CaptureQueriesContext(connections["default"]) as on_primary:
            started = time.monotonic()
            assert case.reference in queue_html(reader)
        assert time.monotonic() - started < 2
        assert any("cases_case" in q["sql"] for q in on_primary.captured_queries)
        assert not caplog.records
    finally:
        replica.start()
        db_router.reset_replica_backoff()


async def test_under_asgi_the_replica_serves_the_reader_and_the_writer_stays_pinned(
    replica, case, agent, other_agent, customer, channel
):
    # The ASGI handler (daphne, uvicorn) runs the view in another thread than the middleware.
    writer, reader = AsyncClient(), AsyncClient()
    await writer.aforce_login(agent)
    await reader.aforce_login(other_agent)
    replica.wait_caught_up()
    replica.pause()
    try:
        lagging = await sync_to_async(services.case_open)(
            customer=customer, channel=channel, subject="Written during the lag"
        )
        response = await reader.get(reverse("desk:queue"), {"view": "department"})
        assert response.status_code == 200
        assert case.reference in response.content.decode()
        assert lagging.reference not in response.content.decode()

        claimed = await writer.post(reverse("desk:case_claim", args=[lagging.reference]))
        assert PIN_COOKIE in claimed.cookies
        response = await writer.get(reverse("desk:queue"), {"view": "department"})
        assert lagging.reference in response.content.decode()
    finally:
        replica.resume()
