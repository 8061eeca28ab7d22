"""The customer's survey page: a signed link, no sign-in, one answer, on the case's timeline live."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import signing
from django.db import connection
from django.test import Client
from django.utils import timezone

from cases import privacy
from cases.csat import links
from cases.csat import services as csat
from cases.errors import ServiceError
from cases.models import CaseEvent, Message, SatisfactionSurvey
from channels_app import replay, rows
from tests.csat.conftest import answer
from tests.desk.conftest import open_case

_tokens: dict = {}


def url(survey, suffix=""):
    """The survey's link, signed once per survey: a token signed a second later differs."""
    token = _tokens.setdefault((survey.pk, survey.sent_at), links.survey_token(survey.pk))
    return f"/s/{token}/{suffix}"


def test_the_link_opens_the_question_without_signing_in(client, surveyed, django_assert_num_queries):
    survey = surveyed()

    with django_assert_num_queries(1):  # the survey with its case
        response = client.get(url(survey))

    assert response.status_code == 200
    body = response.content.decode()
    assert "How did we do?" in body and survey.case.reference in body
    assert body.count('type="radio" name="rating"') == 5
    assert 'name="comment"' in body
    assert url(survey, "opt-out/") in body


@pytest.mark.parametrize(
    ("token", "status", "text"),
    [
        ("not-a-token", 400, "This survey link is not valid."),
        (signing.dumps(1, salt="another.salt"), 400, "This survey link is not valid."),
        (signing.dumps("1", salt=links.SALT), 400, "This survey link is not valid."),
    ],
)
def test_a_made_up_link_is_refused_with_a_page_saying_so(client, db, token, status, text):
    response = client.get(f"/s/{token}/")

    assert response.status_code == status
    assert text in response.content.decode()
    assert 'name="rating"' not in response.content.decode()


def test_an_altered_link_is_refused(client, surveyed):
    survey = surveyed()
    token = links.survey_token(survey.pk)
    value, stamp, signature = token.split(":")
    other = links.survey_token(survey.pk + 1).split(":")[0]

    for tampered in (f"{other}:{stamp}:{signature}", f"{value}:{stamp}:{signature[:-2]}xx"):
        response = client.post(f"/s/{tampered}/", {"rating": "1"})
        assert response.status_code == 400
        assert "This survey link is not valid." in response.content.decode()
    assert SatisfactionSurvey.objects.get(pk=survey.pk).answered_at is None


def test_an_expired_link_is_refused(client, surveyed, settings):
    survey = surveyed()
    token = links.survey_token(survey.pk)

    with time_machine.travel(timezone.now() + timedelta(days=settings.CASELINE_CSAT_LINK_DAYS, hours=1)):
        response = client.post(f"/s/{token}/", {"rating": "5"})

    assert response.status_code == 410
    assert "This survey link has expired." in response.content.decode()
    assert SatisfactionSurvey.objects.get(pk=survey.pk).answered_at is None


def test_a_link_to_a_survey_that_is_gone_is_not_found(client, surveyed):
    survey = surveyed()
    token = links.survey_token(survey.pk)
    survey.delete()

    response = client.get(f"/s/{token}/")

    assert response.status_code == 404
    assert "This survey no longer exists." in response.content.decode()


@pytest.mark.parametrize("rating", ["0", "6", "9", "four", ""])
def test_a_rating_out_of_range_is_refused_naming_the_field(client, surveyed, rating):
    survey = surveyed()

    response = client.post(url(survey), {"rating": rating, "comment": "Meh"})

    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="error-rating"' in body and "Your rating:" in body
    assert SatisfactionSurvey.objects.get(pk=survey.pk).answered_at is None
    assert not CaseEvent.objects.filter(case=survey.case, kind=CaseEvent.Kind.CSAT).exists()


def test_a_comment_too_long_is_refused_naming_the_field(client, surveyed):
    survey = surveyed()

    response = client.post(url(survey), {"rating": "4", "comment": "x" * (csat.COMMENT_MAX_LENGTH + 1)})

    assert response.status_code == 400
    assert 'id="error-comment"' in response.content.decode()
    assert SatisfactionSurvey.objects.get(pk=survey.pk).answered_at is None


def test_answering_records_the_rating_on_the_timeline_once(
    client, surveyed, agent, django_assert_num_queries
):
    survey = surveyed()

    # survey and case; savepoint, the survey locked, saved; the entry, its event; release
    with django_assert_num_queries(7):
        response = client.post(url(survey), {"rating": "4", "comment": "Quick and kind, thanks"})

    # then the answer is kept, on the survey and on the case's timeline
    assert response.status_code == 302 and response["Location"] == url(survey)
    survey.refresh_from_db()
    assert (survey.rating, survey.comment) == (4, "Quick and kind, thanks")
    assert survey.answered_at is not None
    event = CaseEvent.objects.get(case=survey.case, kind=CaseEvent.Kind.CSAT)
    assert event.after == {"survey": survey.pk, "rating": 4}
    assert event.actor_id is None
    entry = event.message
    assert (entry.direction, entry.author_id, entry.identity_id) == ("note", None, survey.message.identity_id)
    assert entry.subject == "★★★★☆ Rated 4 out of 5" and entry.text == "Quick and kind, thanks"
    assert survey.case.status == "resolved"  # an answer reopens nothing

    # the page now thanks the customer
    with django_assert_num_queries(1):
        thanks = client.get(url(survey))
    assert thanks.status_code == 200
    assert "You rated us 4 out of 5" in thanks.content.decode()

    # a second answer is refused and changes nothing
    again = client.post(url(survey), {"rating": "1", "comment": "Changed my mind"})
    assert again.status_code == 409
    assert "You rated us 4 out of 5" in again.content.decode()
    survey.refresh_from_db()
    assert (survey.rating, survey.comment) == (4, "Quick and kind, thanks")
    assert CaseEvent.objects.filter(case=survey.case, kind=CaseEvent.Kind.CSAT).count() == 1

    # the agent sees it on the case page, in the customer's name
    client.force_login(agent)
    page = client.get(f"/desk/cases/{survey.case.reference}/").content.decode()
    assert f'id="message-{entry.pk}"' in page
    assert "Satisfaction survey" in page and "★★★★☆ Rated 4 out of 5" in page


def test_the_service_refuses_a_second_answer_and_bad_ratings(surveyed):
    survey = surveyed()
    for bad in (0, 6, True, None, "x"):
        with pytest.raises(ServiceError) as exc:
            answer(survey, bad)
        assert exc.value.field == "rating"
    with pytest.raises(ServiceError) as exc:
        answer(survey, 3, "x" * (csat.COMMENT_MAX_LENGTH + 1))
    assert exc.value.field == "comment"

    answer(survey, 5)
    with pytest.raises(csat.AlreadyAnswered) as exc:
        answer(survey, 2)
    assert exc.value.status == 409
    assert SatisfactionSurvey.objects.get(pk=survey.pk).rating == 5


def test_the_answer_is_pushed_to_the_case_screens(surveyed, django_capture_on_commit_callbacks):
    survey = surveyed()
    case = survey.case
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"case.{case.pk}", channel)

    async def received():
        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    try:
        with django_capture_on_commit_callbacks(execute=True):
            answer(survey, 2, "Took too long")
        pushed = async_to_sync(received)()
    finally:
        async_to_sync(layer.group_discard)(f"case.{case.pk}", channel)

    entry = Message.objects.get(case=case, direction="note")
    assert pushed["event"] == {
        "type": "message.added",
        "case_id": case.pk,
        "message_id": entry.pk,
        "direction": "note",
    }
    # what the desk socket renders from it: the timeline entry, in the customer's name
    rendered = rows._render_entry(entry.pk)
    assert "Satisfaction survey" in rendered["html"] and "★★☆☆☆ Rated 2 out of 5" in rendered["html"]
    assert "Took too long" in rendered["html"]


def test_the_opt_out_link_asks_first_then_stops_every_later_survey(
    client, surveyed, mailbox, agent, resolve, django_assert_num_queries
):
    survey = surveyed()
    customer = survey.case.customer

    with django_assert_num_queries(1):  # mail scanners open links: a GET changes nothing
        shown = client.get(url(survey, "opt-out/"))
    assert shown.status_code == 200 and "Stop sending me surveys" in shown.content.decode()
    customer.refresh_from_db()
    assert customer.surveys_opt_out is False

    done = client.post(url(survey, "opt-out/"))
    assert done.status_code == 200 and "we will not send you satisfaction surveys" in done.content.decode()
    customer.refresh_from_db()
    assert customer.surveys_opt_out is True
    event = CaseEvent.objects.get(case=survey.case, kind=CaseEvent.Kind.CSAT)
    assert event.after == {"survey": "opted_out", "customer": customer.pk}
    client.post(url(survey, "opt-out/"))  # twice: nothing new
    assert CaseEvent.objects.filter(case=survey.case, kind=CaseEvent.Kind.CSAT).count() == 1

    # the customer's next case is resolved without a survey
    later = open_case(channel=mailbox, customer=customer, kind="email", assignee=agent)
    assert resolve(later, agent) is None
    assert not Message.objects.filter(case=later, direction="out").exists()


def test_a_page_that_missed_the_push_is_replayed_the_answer(surveyed, agent):
    survey = surveyed()
    seq = CaseEvent.objects.filter(case=survey.case).latest("id").pk

    answer(survey, 5, "Great")

    entry = Message.objects.get(case=survey.case, direction="note")
    [missed] = replay.events_after(user=agent, seq=seq, case_id=survey.case_id)
    assert missed["event"] == {"type": "message.added", "case_id": survey.case_id, "message_id": entry.pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_answers_at_once_one_wins_and_the_other_is_told_the_rating(surveyed):
    survey = surveyed()
    barrier = threading.Barrier(2)
    results = {}

    def post(rating):
        try:
            barrier.wait(timeout=5)
            results[rating] = Client().post(url(survey), {"rating": str(rating)})
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(rating,)) for rating in (2, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    survey.refresh_from_db()
    loser = 2 if survey.rating == 5 else 5
    assert results[survey.rating].status_code == 302
    assert results[loser].status_code == 409
    assert f"You rated us {survey.rating} out of 5" in results[loser].content.decode()
    assert CaseEvent.objects.filter(case=survey.case, kind=CaseEvent.Kind.CSAT).count() == 1


def test_erasing_the_customer_erases_the_comment_on_the_timeline(
    surveyed, django_capture_on_commit_callbacks
):
    survey = surveyed()
    answer(survey, 1, "Dana from flat 4B was not helped")

    with django_capture_on_commit_callbacks(execute=True):
        privacy.customer_erase(customer=survey.case.customer)

    entry = Message.objects.get(case=survey.case, direction="note")
    assert "flat 4B" not in entry.text and "flat 4B" not in entry.subject
    event = CaseEvent.objects.get(case=survey.case, kind=CaseEvent.Kind.CSAT)
    assert "flat 4B" not in str(event.after) and event.after["rating"] == 1
