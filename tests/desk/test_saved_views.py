"""Saved views of the queue's filters: an agent's own, saved from the queue, opened in one click
(checked again by the queue's filter form), renamed and deleted; another agent's view is 404."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from cases import saved_views
from cases.errors import NotPermitted, ServiceError
from cases.models import SavedView
from tests.desk.conftest import open_case
from tests.desk.test_queue import QUEUE_QUERIES

pytestmark = pytest.mark.django_db

# session, user, the saved view, memberships, departments (the filter form's choices)
OPEN_QUERIES = 5


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


def refs_on_page(response) -> list[str]:
    return re.findall(r'data-case="(C-[0-9A-Z]+)"', response.content.decode())


def save(user, name: str, query: str) -> SavedView:
    return saved_views.saved_view_create(user=user, name=name, query=query)


def test_saving_the_filters_on_screen(desk, agent, channels, department):
    urgent = open_case(channel=channels["email"], kind="email", priority="urgent", subject="Urgent mail")
    open_case(channel=channels["x"], subject="Calm tweet")
    page = desk.get(reverse("desk:queue"), {"view": "department", "priority": "urgent", "after": "n_99"})
    assert 'name="query" value="view=department&amp;priority=urgent"' in page.content.decode()

    response = desk.post(
        reverse("desk:saved_view_create"),
        {"name": "  Urgent   ones ", "query": "view=department&priority=urgent&after=n_99&bogus=1"},
    )

    (view,) = SavedView.objects.filter(user=agent)
    assert view.name == "Urgent ones"
    assert view.query == "view=department&priority=urgent"  # the filters only: no cursor, nothing else
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('desk:queue')}?view=department&priority=urgent"
    page = desk.get(response["Location"])
    body = page.content.decode()
    assert "Saved the view “Urgent ones”." in body
    assert refs_on_page(page) == [urgent.reference]
    # Listed, and marked as the view on screen.
    assert re.search(
        rf'<a href="/desk/views/{view.pk}/" data-saved-view="{view.pk}" aria-current="page">Urgent ones</a>',
        body,
    )


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Name: give the view a name."),
        ("   ", "Name: give the view a name."),
        ("Mine", "Name: you already"),
    ],
)
def test_an_empty_or_taken_name_is_refused_naming_the_field(desk, agent, channels, name, error):
    save(agent, "Mine", "view=mine")

    response = desk.post(reverse("desk:saved_view_create"), {"name": name, "query": "view=department"})

    assert response.status_code == 400
    body = response.content.decode()
    assert error in body
    assert 'id="queue-rows"' in body  # the queue itself, with the filters that were being saved
    assert SavedView.objects.filter(user=agent).count() == 1


def test_saving_under_htmx_answers_with_the_region(desk, agent):
    response = desk.post(
        reverse("desk:saved_view_create"), {"name": "Mine", "query": "view=mine"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="saved-views"')
    assert ">Mine</a>" in body and 'id="queue-rows"' not in body

    response = desk.post(
        reverse("desk:saved_view_create"), {"name": "Mine", "query": "view=mine"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "Name: you already have a view called “Mine”." in response.content.decode()


def test_the_same_name_is_fine_for_another_agent(agent, other_agent):
    save(agent, "Mine", "view=mine")
    save(other_agent, "Mine", "view=mine")
    assert SavedView.objects.filter(name="Mine").count() == 2
    with pytest.raises(ServiceError) as refused:
        save(agent, " Mine ", "view=department")
    assert refused.value.field == "name"


def test_opening_a_view_applies_its_filters(desk, agent, channels):
    mail = open_case(channel=channels["email"], kind="email", subject="By mail")
    open_case(channel=channels["x"], subject="By tweet")
    view = save(agent, "Mail", "view=department&kind=email")

    response = desk.get(reverse("desk:saved_view", args=[view.pk]))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('desk:queue')}?view=department&kind=email"
    assert refs_on_page(desk.get(response["Location"])) == [mail.reference]


def test_a_stored_query_that_no_longer_applies_is_named_not_a_500(desk, agent, channels, other_department):
    # A department the agent is not in (left it since), and a priority that is no choice.
    view = SavedView.objects.create(
        user=agent,
        name="Old",
        query=f"view=department&department={other_department.pk}&priority=bogus&kind=email",
    )
    mail = open_case(channel=channels["email"], kind="email", subject="By mail")
    open_case(channel=channels["x"], subject="By tweet")

    response = desk.get(reverse("desk:saved_view", args=[view.pk]))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('desk:queue')}?view=department&kind=email"  # what still applies
    page = desk.get(response["Location"])
    body = page.content.decode()
    assert page.status_code == 200
    assert "The saved view “Old” has filters that no longer apply, left out:" in body
    assert "Department: Select a valid choice." in body and "Priority: Select a valid choice." in body
    assert refs_on_page(page) == [mail.reference]


def test_garbage_in_a_stored_query_opens_the_queue(desk, agent):
    view = SavedView.objects.create(user=agent, name="Odd", query="%%%&&==&view=nowhere&department=x")
    response = desk.get(reverse("desk:saved_view", args=[view.pk]), follow=True)
    assert response.status_code == 200
    assert "The saved view “Odd” has filters that no longer apply" in response.content.decode()


def test_rename_and_delete_my_own(desk, agent):
    view = save(agent, "Mine", "view=mine")
    save(agent, "Other", "view=department")

    response = desk.post(
        reverse("desk:saved_view_rename", args=[view.pk]), {"name": "My cases", "current": "view=mine"}
    )
    assert response.status_code == 302 and response["Location"].endswith("?view=mine")
    view.refresh_from_db()
    assert view.name == "My cases"

    response = desk.post(reverse("desk:saved_view_rename", args=[view.pk]), {"name": "Other"}, follow=True)
    assert "Renaming “My cases”: Name: you already have a view called “Other”." in response.content.decode()
    response = desk.post(
        reverse("desk:saved_view_rename", args=[view.pk]), {"name": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and "Name: give the view a name." in response.content.decode()
    view.refresh_from_db()
    assert view.name == "My cases"

    response = desk.post(reverse("desk:saved_view_delete", args=[view.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "My cases" not in response.content.decode()
    assert list(SavedView.objects.filter(user=agent).values_list("name", flat=True)) == ["Other"]


def test_another_agents_view_is_not_found(desk, agent, other_agent):
    theirs = save(other_agent, "Theirs", "view=mine")

    assert desk.get(reverse("desk:saved_view", args=[theirs.pk])).status_code == 404
    assert desk.post(reverse("desk:saved_view_rename", args=[theirs.pk]), {"name": "Mine"}).status_code == 404
    assert desk.post(reverse("desk:saved_view_delete", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert "Theirs" not in desk.get(reverse("desk:queue")).content.decode()
    with pytest.raises(NotPermitted):
        saved_views.saved_view_delete(view=theirs, user=agent)
    with pytest.raises(NotPermitted):
        saved_views.saved_view_rename(view=theirs, user=agent, name="Mine")
    assert SavedView.objects.filter(pk=theirs.pk, name="Theirs").exists()


def test_views_are_post_only_to_change(desk, agent):
    view = save(agent, "Mine", "view=mine")
    assert desk.get(reverse("desk:saved_view_delete", args=[view.pk])).status_code == 405
    assert desk.get(reverse("desk:saved_view_create")).status_code == 405


@pytest.mark.parametrize("count", [1, 12])
def test_queue_with_saved_views_query_count(desk, agent, channels, django_assert_num_queries, count):
    for n in range(count):
        save(agent, f"View {n:02d}", f"view=department&priority={['low', 'normal', 'high'][n % 3]}")
    open_case(channel=channels["x"], subject="One")

    with django_assert_num_queries(QUEUE_QUERIES):
        response = desk.get(reverse("desk:queue"))

    assert response.content.decode().count("data-saved-view=") == count


def test_opening_a_view_query_count(desk, agent, django_assert_num_queries):
    view = save(agent, "Mail", "view=department&kind=email")
    with django_assert_num_queries(OPEN_QUERIES):
        assert desk.get(reverse("desk:saved_view", args=[view.pk])).status_code == 302
