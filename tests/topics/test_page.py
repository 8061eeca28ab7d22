"""The topics page: who sees it, what it shows, its filters, drill-down and CSV, and its cost."""

import csv
import io
import re
from datetime import timedelta

import pytest

from cases.topics.services import topics_refresh
from tests import factories

from .conftest import NOW, THIS_WEEK, write

URL = "/desk/topics/"
WEEK = {"week": THIS_WEEK.isoformat(), "weeks": "4"}


@pytest.fixture
def mailbox(other_department):
    return factories.ChannelFactory(
        kind="email", name="Billing mail", slug="billing-mail", department=other_department
    )


@pytest.fixture
def counted(channel, mailbox):
    """Social Care's X channel: delays rising (1 -> 3), lost bags falling (2 -> 1);
    Billing's mailbox: refunds, this week."""
    cases = []
    for days in (8,):
        cases.append(write(channel=channel, text="Flight delayed again", at=NOW - timedelta(days=days))[0])
    for hours in (1, 2, 3):
        cases.append(
            write(channel=channel, text="Flight delayed, no information", at=NOW - timedelta(hours=hours))[0]
        )
    for days in (9, 10):
        write(channel=channel, text="Lost bag at the carousel", at=NOW - timedelta(days=days))
    write(channel=channel, text="Lost bag still missing", at=NOW - timedelta(hours=5))
    write(channel=mailbox, text="Refund request for cancelled flight", at=NOW - timedelta(hours=4))
    topics_refresh(now=NOW + timedelta(hours=1), settle=timedelta(0))
    return cases


def _rows(response) -> dict[str, list[str]]:
    """phrase -> the row's cells (this week, last week, change, cases), from the table."""
    html = response.content.decode()
    rows = {}
    for phrase, cells in re.findall(
        r'hx-target="#topic-detail" hx-push-url="false">([^<]+)</a></td>(.*?)</tr>', html, re.S
    ):
        rows[phrase] = re.findall(r"<td>(?:<span class=\"badge\">)?([^<]*)", cells)[:4]
    return rows


def test_agents_are_refused_and_visitors_sent_to_sign_in(client, agent):
    assert client.get(URL).status_code == 302
    client.force_login(agent)
    assert client.get(URL).status_code == 403
    assert client.get("/desk/topics.csv").status_code == 403
    assert client.get("/desk/topics/phrase/?phrase=bag").status_code == 403


def test_a_supervisor_sees_their_departments_phrases_this_week_against_last(client, supervisor, counted):
    client.force_login(supervisor)
    response = client.get(URL, WEEK)

    assert response.status_code == 200
    rows = _rows(response)
    assert rows["flight delayed"] == ["3", "1", "+200%", "3"]
    assert rows["lost bag"] == ["1", "2", "−50%", "1"]
    # Billing's mailbox is not Social Care's supervisor's
    assert "refund request" not in rows and "refund" not in rows
    # most this week first, a sparkline per phrase, the nav link current
    assert list(rows)[:4] == ["delayed", "flight", "flight delayed", "information"]  # 3 each, A-Z
    assert response.content.decode().count('class="chart sparkline"') == len(rows)
    assert 'href="/desk/topics/" aria-current="page"' in response.content.decode()


def test_an_admin_sees_every_department_and_filters_narrow_it(admin_client, counted, mailbox):
    everything = _rows(admin_client.get(URL, WEEK))
    assert {"refund request", "flight delayed"} <= set(everything)

    billing = _rows(admin_client.get(URL, {**WEEK, "channel": mailbox.pk}))
    assert "flight delayed" not in billing and billing["refund request"][0] == "1"
    bigrams = _rows(admin_client.get(URL, {**WEEK, "words": "2"}))
    assert set(bigrams) == {"flight delayed", "lost bag", "refund request", "cancelled flight"}
    # "still" is a stop word: "lost bag still missing" gives "lost bag" and "missing"
    assert set(_rows(admin_client.get(URL, {**WEEK, "q": "BAG"}))) == {"bag", "lost bag"}


def test_rising_and_falling_orders(admin_client, counted):
    rising = list(_rows(admin_client.get(URL, {**WEEK, "order": "rising"})))
    # by change (flight +3 with the refund's "cancelled flight"), then this week's count
    assert rising[:4] == ["flight", "information", "delayed", "flight delayed"]
    assert "lost bag" not in rising
    falling = _rows(admin_client.get(URL, {**WEEK, "order": "falling"}))
    assert list(falling) == ["carousel", "bag", "lost", "lost bag"]
    assert falling["carousel"] == ["0", "2", "gone", "0"]
    assert "refund" not in falling  # nothing last week: neither falling nor gone


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"weeks": "99"}, "Weeks"),
        ({"weeks": "one"}, "Weeks"),
        ({"week": "last tuesday"}, "Week of"),
        ({"channel": "999999"}, "Channel"),
        ({"channel": "x"}, "Channel"),
        ({"department": "999999"}, "Department"),
        ({"category": "angry"}, "Category"),
        ({"words": "4"}, "Words"),
        ({"order": "random"}, "Order"),
        ({"kind": "cluster"}, "Show"),
    ],
)
def test_a_wrong_filter_is_refused_naming_the_field(admin_client, channel, query, field):
    for url in (URL, "/desk/topics.csv"):
        response = admin_client.get(url, query)
        assert response.status_code == 400
        assert f'role="alert">{field}: ' in response.content.decode()


def test_a_supervisor_cannot_choose_another_department(client, supervisor, other_department):
    client.force_login(supervisor)
    response = client.get(URL, {"department": other_department.pk})
    assert response.status_code == 400 and 'role="alert">Department: ' in response.content.decode()


def test_the_drill_down_shows_the_weeks_where_and_examples_linking_to_cases(client, supervisor, counted):
    client.force_login(supervisor)
    response = client.get("/desk/topics/phrase/", {**WEEK, "phrase": "Flight Delayed"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html  # a page of its own without htmx
    for case in counted:
        assert f'href="/desk/cases/{case.reference}/"' in html
    assert html.count("<q>") == 4
    assert "<td>Brand on X</td><td>Social Care</td><td>Uncategorised</td><td>3</td><td>3</td>" in re.sub(
        r">\s+<", "><", html
    )
    assert re.search(r"<td>23 Feb 2026</td><td>1</td>.*<td>2 Mar 2026</td><td>3</td>", html, re.S)

    panel = client.get(
        "/desk/topics/phrase/", {**WEEK, "phrase": "flight delayed"}, headers={"HX-Request": "true"}
    )
    assert panel.status_code == 200 and "<html" not in panel.content.decode()
    assert 'class="card report-chart topic-detail"' in panel.content.decode()


def test_the_drill_down_shows_no_example_from_a_case_the_reader_cannot_see(
    client, supervisor, channel, other_department
):
    case, _ = write(channel=channel, text="Broken armrest", at=NOW)
    topics_refresh(now=NOW + timedelta(hours=1), settle=timedelta(0))
    case.department = other_department  # moved since it was counted
    case.save(update_fields=["department"])
    client.force_login(supervisor)
    html = client.get("/desk/topics/phrase/", {**WEEK, "phrase": "broken armrest"}).content.decode()
    assert case.reference not in html and "No example you may read." in html


def test_the_drill_down_needs_a_phrase(admin_client):
    response = admin_client.get("/desk/topics/phrase/", WEEK)
    assert response.status_code == 400 and "Phrase: choose the phrase" in response.content.decode()


def test_the_csv_is_streamed_with_every_cell_of_the_weeks(admin_client, counted, mailbox):
    response = admin_client.get("/desk/topics.csv", {**WEEK, "q": "refund"})

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="topics-{THIS_WEEK - timedelta(weeks=3)}-{THIS_WEEK}.csv"'
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["phrase", "kind", "week", "channel", "department", "category", "messages", "cases"]
    assert [
        "refund request",
        "phrase",
        THIS_WEEK.isoformat(),
        "Billing mail",
        "Billing",
        "",
        "1",
        "1",
    ] in rows
    assert {row[0] for row in rows[1:]} == {"refund", "refund request"}


def test_the_page_costs_the_same_queries_for_5_phrases_as_for_50(
    client, supervisor, channel, django_assert_num_queries
):
    client.force_login(supervisor)
    write(channel=channel, text="Seat broken", at=NOW)
    topics_refresh(now=NOW + timedelta(hours=1), settle=timedelta(0))
    # session, user, memberships (permissions), departments, channels (the form), the
    # top phrases, their weeks, the job's state; the base template's user lookups
    with django_assert_num_queries(9):
        few = client.get(URL, WEEK)
    for n in range(60):
        write(channel=channel, text=f"Topic{'abcdefghij'[n % 10]}{'abcdefghij'[n // 10]} complaint", at=NOW)
    topics_refresh(now=NOW + timedelta(hours=1), settle=timedelta(0))
    with django_assert_num_queries(9):
        many = client.get(URL, WEEK)
    assert len(_rows(few)) == 3 and len(_rows(many)) == 50


def test_the_page_is_csp_clean(admin_client, counted):
    html = admin_client.get(URL, WEEK).content.decode()
    assert " style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no inline event handlers
