"""Queue search: a reference, a handle, an e-mail address, a phone number, the customer's name or
words from the subject or any message (full text on PostgreSQL, LIKE on SQLite). The search
box's own page is tested in ``test_search_box.py``."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from cases import selectors, services
from tests import factories
from tests.desk.conftest import open_case
from tests.desk.test_queue import QUEUE_QUERIES


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def refs(response) -> set[str]:
    return set(re.findall(r'data-case="(C-[0-9A-Z]+)"', response.content.decode()))


def search(desk, q, **params):
    return desk.get(reverse("desk:queue"), {"view": "department", "q": q, **params})


@pytest.fixture
def cases(channels):
    dana = factories.CustomerFactory(name="Dana Reyes")
    factories.IdentityFactory(customer=dana, kind="x", platform_id="9001", handle="@danar")
    factories.IdentityFactory(customer=dana, kind="email", platform_id="Dana.Reyes@Example.test", handle="")
    sam = factories.CustomerFactory(name="Sam Porter")
    factories.IdentityFactory(customer=sam, kind="phone", platform_id="+12025550143", handle="+12025550143")
    return {
        "router": open_case(channel=channels["x"], customer=dana, subject="Router keeps dropping"),
        "refund": open_case(
            channel=channels["email"], customer=sam, kind="email", text="I was charged twice for my flights"
        ),
        "other": open_case(channel=channels["x"], text="Lovely crew on the flight today"),
    }


def test_reference_typed_in_full_opens_the_case(desk, cases):
    case = cases["router"]

    response = search(desk, case.reference.lower())

    assert response.status_code == 302
    assert response["Location"] == reverse("desk:case", args=[case.reference])


def test_reference_of_a_case_one_may_not_see_is_just_no_result(desk, billing_channel):
    hidden = open_case(channel=billing_channel, subject="Invoice")

    response = search(desk, hidden.reference)

    assert response.status_code == 200
    assert refs(response) == set()
    assert "No open case matches" in response.content.decode()


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("@danar", {"router"}),
        ("danar", {"router"}),
        ("dana.reyes@example.TEST", {"router"}),
        ("(202) 555-0143", {"refund"}),
        ("+1 202 555 0143", {"refund"}),
        ("Dana Reyes", {"router"}),
        ("router", {"router"}),
        ("charged twice", {"refund"}),
        ("flights", {"refund"}),
        ("nothing-like-this", set()),
    ],
)
def test_search_finds_by_handle_email_phone_name_and_words(desk, cases, q, expected):
    response = search(desk, q)

    assert refs(response) == {cases[name].reference for name in expected}
    assert response.context["q"] == q


@pytest.mark.postgres
def test_full_text_search_matches_words_as_typed_and_uses_the_gin_indexes(desk, cases):
    # the 'simple' configuration (cases.fulltext): no stemming, no stop words, any language
    assert refs(search(desk, "charged flights")) == {cases["refund"].reference}
    assert refs(search(desk, "charging flight")) == set()
    assert refs(search(desk, "flight")) == {cases["other"].reference}
    assert refs(search(desk, "on the flight")) == {cases["other"].reference}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname IN ('message_text_search_idx', 'case_subject_search_idx')"
        )
        assert {row[0] for row in cursor.fetchall()} == {"message_text_search_idx", "case_subject_search_idx"}


def test_search_stays_inside_the_tab_and_the_users_departments(desk, agent, cases, billing_channel):
    services.case_claim(case=cases["router"], actor=agent)
    elsewhere = open_case(channel=billing_channel, subject="Router invoice")

    assert refs(search(desk, "router", view="unassigned")) == set()
    assert refs(search(desk, "router", view="mine")) == {cases["router"].reference}
    assert elsewhere.reference not in search(desk, "router").content.decode()


@pytest.mark.parametrize("count", [2, 12])
def test_search_query_count_does_not_grow(desk, channels, django_assert_num_queries, count):
    for n in range(count):
        open_case(channel=channels["x"], subject=f"Broken router {n}")

    # an explicit tab (no "has open cases?"), plus the matching case ids (on PostgreSQL after a
    # SET LOCAL that keeps the planner from starting workers for a few index reads)
    expected = QUEUE_QUERIES - 1 + (2 if settings.IS_POSTGRES else 1)
    with django_assert_num_queries(expected):
        response = search(desk, "router")

    assert len(refs(response)) == count


def test_search_text_is_bounded(desk, cases):
    response = search(desk, "router " * 100)

    assert response.status_code == 200
    assert any(error.startswith("Search:") for error in response.context["filter_errors"])


def test_a_common_word_filters_the_queue_as_it_reads(desk, channels, monkeypatch):
    # search_candidates reads the limit from its own module, cases.selectors.search
    monkeypatch.setattr(selectors.search, "SEARCH_CANDIDATES", 3)  # "many" matches, cheaply
    made = [open_case(channel=channels["x"], subject=f"Broken router {n}") for n in range(5)]
    open_case(channel=channels["x"], subject="Lost bag")

    assert selectors.search_candidates("router") is None
    assert refs(search(desk, "router")) == {case.reference for case in made}


def test_reference_parsing():
    assert selectors.search_reference("c-7q4k2") == "C-7Q4K2"
    assert selectors.search_reference("7Q4K2") == "C-7Q4K2"
    assert selectors.search_reference("7q4k2x") == "C-7Q4K2X"  # six characters since 100,000 cases
    assert selectors.search_reference("C-7Q4K") is None
    assert selectors.search_reference("C-7Q4K2XY") is None
    assert selectors.search_reference("hello") is None  # L and O are not in the reference alphabet
