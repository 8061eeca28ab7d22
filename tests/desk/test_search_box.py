"""The search box (``/desk/search/?q=``): a reference opens the case; customers by name, handle,
e-mail address or phone number; messages by their words, newest first, with a snippet whose
markup is escaped; never anything the user may not see; a query count that does not grow."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from cases import fulltext, search, services
from tests import factories
from tests.desk.conftest import minutes_ago, open_case

# session, user, memberships (visibility), customers, their identities, messages, and the
# header's department names; on PostgreSQL also the planner's estimate of the matching messages
# (an EXPLAIN that picks the faster order: cases.search._newest_first)
SEARCH_QUERIES = 7 + settings.IS_POSTGRES


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def find(client, q, **params):
    return client.get(reverse("desk:search"), {"q": q, **params})


def customer_ids(response) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-customer="(\d+)"', response.content.decode())}


def message_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-message="(\d+)"', response.content.decode())]


def first_message(case):
    return case.messages.order_by("id").first()


@pytest.fixture
def world(channels, billing_channel):
    """Two customers the agent sees (one on X, one by phone and e-mail) and one they do not."""
    zofia = factories.CustomerFactory(name="Zofia Wrzesniewska")
    factories.IdentityFactory(customer=zofia, kind="x", platform_id="7001", handle="@zofiaw")
    factories.IdentityFactory(customer=zofia, kind="email", platform_id="Zofia.W@Example.test", handle="")
    tomas = factories.CustomerFactory(name="Tomas Quillfeather")
    factories.IdentityFactory(customer=tomas, kind="phone", platform_id="+12025550177", handle="+12025550177")
    hidden = factories.CustomerFactory(name="Zofia Hiddenhall")
    factories.IdentityFactory(customer=hidden, kind="email", platform_id="hidden@example.test", handle="")
    return {
        "zofia": zofia,
        "tomas": tomas,
        "hidden": hidden,
        "router": open_case(channel=channels["x"], customer=zofia, text="My routerbox keeps blinking amber"),
        "luggage": open_case(
            channel=channels["phone"],
            customer=tomas,
            kind="call",
            text="Mi maleta no llegó, the suitcase never arrived",
        ),
        "secret": open_case(
            channel=billing_channel, customer=hidden, kind="email", text="My routerbox invoice is wrong"
        ),
    }


# --- References ---------------------------------------------------------------------------------


def test_a_reference_in_full_opens_the_case(desk, world):
    case = world["router"]

    response = find(desk, case.reference.lower())

    assert response.status_code == 302
    assert response["Location"] == reverse("desk:case", args=[case.reference])


def test_a_bare_reference_lists_the_case_without_jumping(desk, world):
    case = world["router"]

    response = find(desk, case.reference.removeprefix("C-"))

    assert response.status_code == 200
    assert response.context["results"].case == case
    assert reverse("desk:case", args=[case.reference]) in response.content.decode()


def test_a_reference_one_may_not_see_finds_nothing(desk, world):
    hidden = world["secret"]

    response = find(desk, hidden.reference)

    assert response.status_code == 200
    assert response.context["results"].case is None
    assert reverse("desk:case", args=[hidden.reference]) not in response.content.decode()


# --- Customers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("Zofia Wrzesniewska", {"zofia"}),
        ("wrzesniewska", {"zofia"}),  # any word of the name
        ("zof wrz", {"zofia"}),  # the beginnings of words
        ("@zofiaw", {"zofia"}),
        ("ZOFIAW", {"zofia"}),  # a handle without its @, in any case
        ("zofia.w@example.TEST", {"zofia"}),  # e-mail addresses are stored lower-cased
        ("(202) 555-0177", {"tomas"}),  # phone numbers in any spelling phonenumbers reads
        ("+1 202 555 0177", {"tomas"}),
        ("2025550177", {"tomas"}),
        ("hidden@example.test", set()),  # a customer of another department
        ("Hiddenhall", set()),
    ],
)
def test_customers_are_found_by_name_handle_email_and_phone(desk, world, q, expected):
    response = find(desk, q)

    assert response.status_code == 200
    assert customer_ids(response) == {world[name].pk for name in expected}


def test_a_name_two_customers_share_lists_only_the_one_the_user_sees(desk, world):
    assert customer_ids(find(desk, "zofia")) == {world["zofia"].pk}


def test_an_admin_sees_every_customer(client, world):
    client.force_login(factories.UserFactory(username="root", is_staff=True))

    assert customer_ids(find(client, "zofia")) == {world["zofia"].pk, world["hidden"].pk}


def test_a_customer_merged_away_is_found_by_whoever_sees_the_one_it_went_into(desk, agent, world):
    services.customer_merge(source=world["tomas"], target=world["zofia"], actor=None)

    assert customer_ids(find(desk, "Quillfeather")) == {world["tomas"].pk}


# --- Messages -----------------------------------------------------------------------------------


def test_a_word_in_a_message_finds_it(desk, world):
    response = find(desk, "routerbox")

    assert message_ids(response) == [first_message(world["router"]).pk]
    assert world["router"].reference in response.content.decode()
    assert world["secret"].reference not in response.content.decode()


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("maleta", {"luggage"}),  # words of any language, as typed
        ("no llegó", {"luggage"}),  # "no" is a word in Spanish, not a stop word
        ('"suitcase never arrived"', {"luggage"}),
        ('"arrived never"', set()),  # a phrase keeps its order
        ("amber or maleta", {"router", "luggage"}),
        ("routerbox -amber", set()),
        ("nothingmatchesthis", set()),
    ],
)
def test_message_words_phrases_or_and_minus(desk, world, q, expected):
    response = find(desk, q)

    assert set(message_ids(response)) == {first_message(world[name]).pk for name in expected}


def test_a_message_on_a_case_one_follows_is_found(desk, agent, world):
    secret = world["secret"]
    services.case_assign(case=secret, assignee=agent, actor=None)
    services.case_assign(case=secret, assignee=None, actor=None)  # the agent keeps following it

    assert first_message(secret).pk in message_ids(find(desk, "invoice"))


def test_markup_in_a_message_is_escaped_in_the_snippet(desk, channels):
    open_case(
        channel=channels["x"],
        text='<script>alert("pwned")</script> my <b>parcelbox</b> is lost \ue000forged\ue001 <img src=x onerror=alert(1)>',
    )

    body = find(desk, "parcelbox").content.decode()
    snippet = re.search(r'<p class="search-snippet">(.*?)</p>', body, re.S).group(1)

    assert "<mark>parcelbox</mark>" in snippet
    # nothing the customer wrote is markup: no tag but our own <mark>, and no forged one
    assert "<" not in re.sub(r"</?mark>", "", snippet)
    assert "<mark>forged</mark>" not in snippet
    assert "<script>" not in body


def test_messages_are_newest_first_and_page_by_keyset(desk, channels, monkeypatch):
    monkeypatch.setattr(search, "MESSAGE_LIMIT", 2)
    case = open_case(channel=channels["x"], text="kettlewhistle one", wrote_minutes_ago=50)
    for n, ago in [(2, 40), (3, 30), (4, 20), (5, 10)]:
        services.message_add(
            case=case,
            direction="in",
            kind="post",
            text=f"kettlewhistle {n}",
            channel=channels["x"],
            sent_at=minutes_ago(ago),
        )
    newest_first = list(case.messages.order_by("-sent_at").values_list("pk", flat=True))

    first = find(desk, "kettlewhistle")
    cursor = first.context["results"].next_cursor
    second = find(desk, "kettlewhistle", before=cursor)
    last = find(desk, "kettlewhistle", before=second.context["results"].next_cursor)

    assert message_ids(first) == newest_first[:2]
    assert message_ids(second) == newest_first[2:4]
    assert message_ids(last) == newest_first[4:]
    assert last.context["results"].next_cursor == ""
    assert "Older messages" in first.content.decode()


@pytest.mark.parametrize("count", [2, 12])
def test_results_page_query_count_does_not_grow(desk, channels, django_assert_num_queries, count):
    for n in range(count):
        customer = factories.CustomerFactory(name=f"Quentin Marblewood {n}")
        factories.IdentityFactory(customer=customer, kind="x", platform_id=f"88{n}", handle=f"@qm{n}")
        factories.IdentityFactory(customer=customer, kind="email", platform_id=f"qm{n}@example.test")
        open_case(channel=channels["x"], customer=customer, text=f"marblewood order {n} is late")

    with django_assert_num_queries(SEARCH_QUERIES):
        response = find(desk, "marblewood")

    assert len(customer_ids(response)) == min(count, search.CUSTOMER_LIMIT)
    assert len(message_ids(response)) == count


def test_a_full_reference_costs_only_its_lookup(desk, world, django_assert_num_queries):
    # session, user, the case (its page's header rows), memberships (may the agent see it?)
    with django_assert_num_queries(4):
        response = find(desk, world["router"].reference)

    assert response.status_code == 302


def test_an_empty_search_asks_for_words_and_reads_nothing(desk, world, django_assert_num_queries):
    with django_assert_num_queries(4):  # session, user, and the header's memberships and departments
        response = find(desk, "   ")

    assert "Type what you are looking for" in response.content.decode()


def test_too_long_a_search_says_which_field_and_why(desk, world):
    response = find(desk, "routerbox " * 30)

    assert response.status_code == 200
    assert response.context["results"] is None
    assert "Search: at most 200 characters" in response.content.decode()


def test_a_broken_older_link_says_so(desk, world):
    response = find(desk, "routerbox", before="yesterday")

    assert "Older messages: the link is broken" in response.content.decode()


def test_the_search_box_is_in_the_header_of_every_desk_page(desk, world):
    body = desk.get(reverse("desk:queue")).content.decode()

    assert f'action="{reverse("desk:search")}"' in body
    assert 'name="q"' in body and 'role="search"' in body


def test_signed_out_users_are_sent_to_sign_in(client):
    response = find(client, "anything")

    assert response.status_code == 302
    assert "login" in response["Location"]


# --- Snippets and the index -----------------------------------------------------------------------


def test_snippet_html_escapes_everything_but_its_own_marks():
    marked = (
        f"a <b>{fulltext.MARK_START}bold{fulltext.MARK_END}</b> {fulltext.MARK_END}x{fulltext.MARK_START}"
    )

    assert fulltext.snippet_html(marked) == "a &lt;b&gt;<mark>bold</mark>&lt;/b&gt; x"


def test_plain_snippet_marks_terms_around_the_first_match():
    text = "x" * 200 + " the <suitcase> never ARRIVED " + "y" * 200

    snippet = fulltext.plain_snippet(text, '"never arrived" suitcase')

    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert "&lt;<mark>suitcase</mark>&gt; <mark>never ARRIVED</mark>" in snippet


@pytest.mark.postgres
def test_message_and_name_indexes_use_the_simple_configuration_and_serve_the_search(desk, world):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN "
            "('message_text_search_idx', 'case_subject_search_idx', 'customer_name_search_idx')"
        )
        definitions = dict(cursor.fetchall())
        assert set(definitions) == {
            "message_text_search_idx",
            "case_subject_search_idx",
            "customer_name_search_idx",
        }
        assert all("'simple'::regconfig" in d for d in definitions.values())
        # The selector's filter is the indexed expression: with sequential reads off, the
        # planner reads the GIN index for it.
        messages = search.Message.objects.alias(search=fulltext.vector("text")).filter(
            search=fulltext.websearch("routerbox")
        )
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = messages.explain()
    assert "message_text_search_idx" in plan


def test_messages_older_than_the_cursor_only(desk, channels):
    case = open_case(channel=channels["x"], text="gravelpit early", wrote_minutes_ago=30)
    later = services.message_add(
        case=case, direction="in", kind="post", text="gravelpit later", channel=channels["x"],
        sent_at=minutes_ago(5),
    )  # fmt: skip
    cursor = search.selectors.QueueCursor(due_at=later.sent_at + timedelta(microseconds=1), id=0).encode()

    assert message_ids(find(desk, "gravelpit", before=cursor)) == [later.pk, first_message(case).pk]


@pytest.mark.postgres
@pytest.mark.parametrize("bitmap_max_rows", [0, 10**9])
def test_either_read_order_gives_the_same_newest_first_page(desk, channels, monkeypatch, bitmap_max_rows):
    monkeypatch.setattr(search, "BITMAP_MAX_ROWS", bitmap_max_rows)  # 0: newest-first read; else GIN
    case = open_case(channel=channels["x"], text="cobblestone 0", wrote_minutes_ago=90)
    for n in range(1, 6):
        services.message_add(
            case=case, direction="in", kind="post", text=f"cobblestone {n}", channel=channels["x"],
            sent_at=minutes_ago(90 - n * 10),
        )  # fmt: skip

    assert message_ids(find(desk, "cobblestone")) == list(
        case.messages.order_by("-sent_at", "-id").values_list("pk", flat=True)
    )
