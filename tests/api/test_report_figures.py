"""The report charts' figures on the API: the rows the desk's page draws, as JSON or CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from cases.reports import figures

from .conftest import session_client, token_client
from .test_resources import answered  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def test_a_figure_as_json_holds_the_rows_of_the_desks_csv(world, answered):  # noqa: F811
    client = session_client(world.admin)
    response = client.get("/api/v1/reports/figures/first-response/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["figure"] == "first-response" and body["columns"] == ["bucket", "cases"]
    assert body["end"] == timezone.localdate().isoformat()
    by_bucket = {row["bucket"]: row["cases"] for row in body["rows"]}
    assert by_bucket["15-30m"] == 0 and sum(by_bucket.values()) == 1  # answered after ten minutes
    assert [b for b, _ in figures.BUCKETS] == list(by_bucket)

    desk = client.get("/desk/reports/first-response.csv")
    desk_rows = list(csv.reader(io.StringIO(b"".join(desk.streaming_content).decode())))
    assert desk_rows[1:] == [[row["bucket"], str(row["cases"])] for row in body["rows"]]


def test_a_figure_as_csv(world, answered):  # noqa: F811
    response = session_client(world.admin).get("/api/v1/reports/figures/backlog/", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="backlog-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["day", "opened", "resolved_or_closed", "backlog", "breaches"]
    assert sum(int(row["opened"]) for row in rows) == 2  # both cases of the world, opened today


def test_a_supervisor_reports_on_their_departments_only(world, answered):  # noqa: F811
    client = session_client(world.supervisor)
    mine = client.get("/api/v1/reports/figures/backlog/").json()
    assert sum(row["opened"] for row in mine["rows"]) == 1  # Billing's case is not theirs
    one = client.get("/api/v1/reports/figures/backlog/", {"department": world.department.pk}).json()
    assert one["rows"] == mine["rows"]

    refused = client.get("/api/v1/reports/figures/backlog/", {"department": world.other_department.pk})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "department"
    assert session_client(world.agent).get("/api/v1/reports/figures/backlog/").status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "end"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "end"),
        ({"end": "tomorrow"}, "end"),
        ({"department": "billing"}, "department"),
    ],
)
def test_a_bad_query_is_a_json_400_naming_the_field(world, params, field):
    response = session_client(world.admin).get("/api/v1/reports/figures/volume/", {**params, "format": "csv"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["field"] == field


def test_an_unknown_figure_is_a_404_naming_the_figures(world):
    response = session_client(world.admin).get("/api/v1/reports/figures/sentiment/")
    assert response.status_code == 404
    assert "department-clock" in response.json()["error"]["message"]


@pytest.mark.parametrize("figure", list(figures.FIGURES))
def test_each_figure_costs_a_fixed_number_of_queries(world, answered, figure, django_assert_num_queries):  # noqa: F811
    from .factories import open_cases

    client = token_client(world.write_key)
    world.agent.memberships.update(role="supervisor")
    assert client.get(f"/api/v1/reports/figures/{figure}/").status_code == 200  # the token's first use
    # token + user, memberships, then the figure's statements (backlog: totals and four series;
    # the department clock: the stays and the departments' targets)
    expected = {"backlog": 7, "department-clock": 4}.get(figure, 3)
    with django_assert_num_queries(expected):
        few = client.get(f"/api/v1/reports/figures/{figure}/")
    open_cases(count=8, channel=world.other_channel, department=world.department)
    with django_assert_num_queries(expected):
        many = client.get(f"/api/v1/reports/figures/{figure}/")
    assert few.status_code == many.status_code == 200
