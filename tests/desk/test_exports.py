"""CSV exports of the desk's lists (cases/exports.py): the queue under its filters and the user's
visibility, the customers a search finds, the incidents list; streamed, formula-like cells
defused, a fixed number of statements whatever the length of the list."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncRequestFactory
from django.urls import reverse
from django.utils import timezone

from cases import exports, queue_views, selectors, services
from cases.models import Incident
from tests import factories
from tests.desk.conftest import open_case

pytestmark = pytest.mark.django_db

# session, user, memberships, departments (the filter form's choices), the rows (one statement)
QUEUE_EXPORT_QUERIES = 5
# session, user, the customers with a visible case, their identities (one per chunk of rows);
# the visibility rule's memberships
CUSTOMERS_EXPORT_QUERIES = 5
# session, user, memberships, the incidents with channel, closer and case count
INCIDENTS_EXPORT_QUERIES = 4


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.streaming  # a StreamingHttpResponse: never built whole in memory
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def as_dicts(rows: list[list[str]]) -> list[dict]:
    header, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


# --- The helper ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1 555", "'+1 555"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("plain = fine", "plain = fine"),
        (-5, -5),  # numbers are numbers
        (None, ""),
    ],
)
def test_formula_like_text_is_defused(value, cell):
    assert exports.safe_cell(value) == cell


def test_nothing_is_read_before_the_download_starts(desk, channels, django_assert_num_queries):
    open_case(channel=channels["x"])
    with django_assert_num_queries(4):  # session, user, memberships, departments: no rows yet
        response = desk.get(reverse("desk:queue_export"), {"view": "department"})
    with django_assert_num_queries(1):  # the rows, as the body is read
        rows = b"".join(response.streaming_content)
    assert rows.count(b"\n") == 2


def test_under_asgi_the_file_is_an_asynchronous_stream(agent, channels):
    """Daphne serves the desk: a synchronous iterator would be read into a list before sending."""
    made = [open_case(channel=channels["x"], subject=f"Case {n}") for n in range(3)]
    request = AsyncRequestFactory().get(reverse("desk:queue_export"), {"view": "department"})
    request.user = agent

    response = queue_views.queue_export(request)

    assert response.streaming and response.is_async

    async def body() -> bytes:
        return b"".join([piece async for piece in response.streaming_content])

    rows = as_dicts(list(csv.reader(io.StringIO(async_to_sync(body)().decode()))))
    assert sorted(row["reference"] for row in rows) == sorted(case.reference for case in made)


# --- The queue ----------------------------------------------------------------------------------------


def test_the_queue_export_lists_the_filtered_queue(desk, agent, channels):
    vip = factories.CustomerFactory(name="=cmd|' /C calc'!A0", tier="vip")
    urgent = open_case(
        channel=channels["email"], customer=vip, kind="email", priority="urgent", subject="@everyone look"
    )
    open_case(channel=channels["x"], priority="urgent", subject="Urgent on X")
    open_case(channel=channels["email"], kind="email", subject="Calm mail")
    services.case_claim(case=urgent, actor=agent)

    rows = read_csv(
        desk.get(reverse("desk:queue_export"), {"view": "department", "kind": "email", "priority": "urgent"})
    )

    assert rows[0] == list(exports.QUEUE_HEADER)
    (row,) = as_dicts(rows)
    assert row["reference"] == urgent.reference
    assert row["subject"] == "'@everyone look"
    assert row["customer"] == "'=cmd|' /C calc'!A0"
    assert row["channel"] == "email" and row["priority"] == "Urgent" and row["status"] == "New"
    assert row["assignee"] == selectors.user_name(agent) and row["department"] == "Social Care"
    assert row["due_at"] == timezone.localtime(urgent.due_at).isoformat()


def test_the_queue_export_has_every_page_and_ignores_the_cursor(desk, channels):
    made = [
        open_case(channel=channels["x"], subject=f"Case {n}") for n in range(selectors.QUEUE_PAGE_SIZE + 2)
    ]
    cursor = selectors.QueueCursor(due_at=made[-1].due_at, id=made[-1].pk).encode()

    rows = as_dicts(read_csv(desk.get(reverse("desk:queue_export"), {"view": "department", "after": cursor})))

    assert sorted(row["reference"] for row in rows) == sorted(case.reference for case in made)


def test_the_queue_export_shows_only_what_the_user_may_see(
    desk, channels, billing_channel, other_department, outsider
):
    ours = open_case(channel=channels["x"], subject="Ours")
    theirs = open_case(channel=billing_channel, kind="email", subject="Theirs")
    services.case_claim(case=theirs, actor=outsider)

    # Asking for the other department's queue is an invalid filter, dropped as on the page.
    rows = as_dicts(
        read_csv(
            desk.get(reverse("desk:queue_export"), {"view": "department", "department": other_department.pk})
        )
    )
    assert [row["reference"] for row in rows] == [ours.reference]
    for view in ("unassigned", "at_risk", "monitoring", "mine"):
        rows = as_dicts(read_csv(desk.get(reverse("desk:queue_export"), {"view": view})))
        assert theirs.reference not in {row["reference"] for row in rows}


def test_the_queue_page_links_its_export_with_its_filters(desk, channels):
    body = desk.get(reverse("desk:queue"), {"view": "department", "priority": "high", "after": "n_5"}).content
    assert b'href="/desk/export.csv?view=department&amp;priority=high" download>Export CSV</a>' in body


@pytest.mark.parametrize("count", [2, 25])
def test_the_queue_export_costs_the_same_for_any_length(desk, channels, django_assert_num_queries, count):
    for n in range(count):
        open_case(channel=channels[["x", "email"][n % 2]], kind=["post", "email"][n % 2], subject=f"C{n}")

    with django_assert_num_queries(QUEUE_EXPORT_QUERIES):
        rows = read_csv(desk.get(reverse("desk:queue_export"), {"view": "department"}))

    assert len(rows) == count + 1


def test_the_export_needs_login(client):
    response = client.get(reverse("desk:queue_export"))
    assert response.status_code == 302 and not response.streaming


# --- Customers a search finds -----------------------------------------------------------------------


def test_the_customer_export_has_every_match_the_user_may_see(desk, channels, billing_channel):
    for n in range(12):  # more than the results page lists
        customer = factories.CustomerFactory(name=f"Dana {n:02d}")
        factories.IdentityFactory(customer=customer, kind="x", platform_id=f"d{n}", handle=f"@dana{n}")
        open_case(channel=channels["x"], customer=customer)
    hidden = factories.CustomerFactory(name="Dana Hidden")
    open_case(channel=billing_channel, customer=hidden, kind="email")
    sneaky = factories.CustomerFactory(name="-Dana+1")
    open_case(channel=channels["x"], customer=sneaky)

    rows = read_csv(desk.get(reverse("desk:customers_export"), {"q": "dana"}))

    assert rows[0] == list(exports.CUSTOMERS_HEADER)
    names = [row["name"] for row in as_dicts(rows)]
    assert "Dana Hidden" not in names
    assert "'-Dana+1" in names
    assert len(names) == 13
    first = next(row for row in as_dicts(rows) if row["name"] == "Dana 00")
    assert "x: @dana0" in first["identities"]


def test_the_search_page_links_its_customer_export(desk, channels):
    customer = factories.CustomerFactory(name="Riley Vance")
    open_case(channel=channels["x"], customer=customer)
    body = desk.get(reverse("desk:search"), {"q": "riley vance"}).content.decode()
    assert 'href="/desk/search/customers.csv?q=riley%20vance" download>Export CSV</a>' in body


def test_an_empty_search_exports_no_customer(desk, channels):
    open_case(channel=channels["x"])
    assert read_csv(desk.get(reverse("desk:customers_export"), {"q": " "})) == [
        list(exports.CUSTOMERS_HEADER)
    ]


def test_a_search_too_long_is_refused_naming_the_field(desk):
    response = desk.get(reverse("desk:customers_export"), {"q": "x" * 500})
    assert response.status_code == 400 and "Search: at most" in response.content.decode()


@pytest.mark.parametrize("count", [2, 15])
def test_the_customer_export_costs_the_same_for_any_length(desk, channels, django_assert_num_queries, count):
    for n in range(count):
        open_case(channel=channels["x"], customer=factories.CustomerFactory(name=f"Sam {n}"))
    with django_assert_num_queries(CUSTOMERS_EXPORT_QUERIES):
        rows = read_csv(desk.get(reverse("desk:customers_export"), {"q": "sam"}))
    assert len(rows) == count + 1


# --- Incidents ------------------------------------------------------------------------------------------


def _incident(channel, title, status="open"):
    now = timezone.now()
    return Incident.objects.create(
        channel=channel, status=status, title=title, window_start=now, window_end=now,
        mention_count=40, baseline=2.04, closed_at=now if status == "closed" else None,
    )  # fmt: skip


def test_the_incident_export_lists_what_the_page_lists(desk, channels, billing_channel):
    ours = _incident(channels["x"], "=Outage")
    ours.cases.add(open_case(channel=channels["x"]))
    _incident(billing_channel, "Their outage")
    _incident(channels["email"], "Last week", status="closed")

    rows = as_dicts(read_csv(desk.get(reverse("desk:incidents_export"))))

    assert [row["title"] for row in rows] == ["'=Outage", "Last week"]
    assert rows[0]["cases"] == "1" and rows[0]["usual_mentions"] == "2.0" and rows[0]["status"] == "open"
    body = desk.get(reverse("desk:incidents")).content.decode()
    assert 'href="/desk/incidents/export.csv" download>Export CSV</a>' in body


@pytest.mark.parametrize("count", [1, 12])
def test_the_incident_export_costs_the_same_for_any_length(desk, channels, django_assert_num_queries, count):
    for n in range(count):
        _incident(channels["x"], f"Closed {n}", status="closed")
    with django_assert_num_queries(INCIDENTS_EXPORT_QUERIES):
        rows = read_csv(desk.get(reverse("desk:incidents_export")))
    assert len(rows) == count + 1


# --- The reports use the same helper ---------------------------------------------------------------------


def test_report_figures_stream_through_the_same_helper(client, supervisor, department, channel, case):
    department.name = "=Evil"
    department.save()
    client.force_login(supervisor)
    rows = read_csv(client.get("/desk/reports/department-clock.csv"))
    assert rows[0][0] == "department"
    assert rows[1][0] == "'=Evil"
