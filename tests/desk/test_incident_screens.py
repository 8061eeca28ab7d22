"""The incident screens: the list of surges, one incident's mentions and cases, the bulk public reply
with placeholders and its preview (once per customer, closed cases skipped), closing with a note,
and who may do what."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cases import selectors, services, triage
from cases.models import Incident, Message, TriageSettings
from tests import factories
from tests.desk.conftest import open_case

# session, user, memberships, the incidents with channel, closer and case count, the header's
# department names
INCIDENT_LIST_QUERIES = 5
# session, user, memberships, the incident, its cases, its mentions, its monitoring alerts, its
# pages, the header's department names
INCIDENT_PAGE_QUERIES = 9


def customer_with_handle(name: str, handle: str):
    customer = factories.CustomerFactory(name=name)
    identity = factories.IdentityFactory(
        customer=customer, kind="x", platform_id=f"x-{handle}", handle=handle
    )
    return customer, identity


@pytest.fixture
def surge(channels, supervisor):
    """A surge on the X account: Dana writes twice (two cases), Lee once (then resolved), a nameless
    customer once. Detected by the surge sweep itself."""
    TriageSettings.objects.create(surge_min_mentions=3)
    dana, dana_x = customer_with_handle("Dana Scully", "@dana")
    lee, lee_x = customer_with_handle("Lee Adama", "@lee")
    nameless, nameless_x = customer_with_handle("", "@anon")
    made = {
        "dana_first": open_case(
            channel=channels["x"],
            customer=dana,
            identity=dana_x,
            text="Is the app down?",
            wrote_minutes_ago=4,
        ),
        "lee": open_case(
            channel=channels["x"], customer=lee, identity=lee_x, text="Cannot log in", wrote_minutes_ago=3
        ),
        "nameless": open_case(
            channel=channels["x"],
            customer=nameless,
            identity=nameless_x,
            text="down again",
            wrote_minutes_ago=2,
        ),
        "dana_second": open_case(
            channel=channels["x"], customer=dana, identity=dana_x, text="Still down!!", wrote_minutes_ago=1
        ),
    }
    (incident,) = triage.surge_detect()
    services.case_set_status(case=made["lee"], status="resolved", actor=supervisor, reason="Fixed for Lee")
    services.case_claim(case=made["nameless"], actor=supervisor)
    return incident, made


def login(client, user):
    client.force_login(user)
    return client


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def section(body: str, element_id: str) -> str:
    start = body.index(f'id="{element_id}"')
    return body[start : body.index("</section>", start)]


# --- The list ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 6])
def test_the_list_shows_open_and_recent_incidents_in_fixed_queries(
    client, agent, channels, department, django_assert_num_queries, count
):
    now = timezone.now()
    for n in range(count):
        incident = Incident.objects.create(
            channel=channels["x"] if n == 0 else channels["facebook" if n % 2 else "email"],
            status="open" if n < 3 else "closed",
            title=f"Surge {n}",
            window_start=now,
            window_end=now,
            mention_count=30 + n,
            baseline=1.5,
            closed_at=None if n < 3 else now,
        )
        incident.cases.add(open_case(channel=channels["x"]))
    login(client, agent)

    with django_assert_num_queries(INCIDENT_LIST_QUERIES):
        response = client.get(reverse("desk:incidents"))

    assert response.status_code == 200
    body = response.content.decode()
    assert len(re.findall(r'<tr id="incident-\d+"', body)) == count
    open_part, recent_part = body.split('id="incidents-recent"')
    assert len(re.findall(r'<tr id="incident-\d+"', open_part)) == min(count, 3)
    assert len(re.findall(r'<tr id="incident-\d+"', recent_part)) == max(0, count - 3)


def test_the_list_shows_only_the_users_channels_and_drops_old_closed_ones(
    client, agent, channels, billing_channel, outsider
):
    now = timezone.now()

    def incident(channel, title, status="open"):
        return Incident.objects.create(
            channel=channel, status=status, title=title, window_start=now, window_end=now,
            mention_count=40, baseline=2.0, closed_at=now if status == "closed" else None,
        )  # fmt: skip

    incident(channels["x"], "Our outage")
    incident(billing_channel, "Their outage")
    old = incident(channels["facebook"], "Long ago", status="closed")
    Incident.objects.filter(pk=old.pk).update(detected_at=now - timedelta(days=40))
    incident(channels["email"], "Last week", status="closed")

    body = login(client, agent).get(reverse("desk:incidents")).content.decode()
    assert "Our outage" in body and "Last week" in body
    assert "Their outage" not in body and "Long ago" not in body
    assert body.index("Our outage") < body.index("Recently closed") < body.index("Last week")
    assert 'href="/desk/incidents/"' in body and 'aria-current="page">Incidents<' in body

    body = login(client, outsider).get(reverse("desk:incidents")).content.decode()
    assert "Their outage" in body and "Our outage" not in body


# --- One incident ---------------------------------------------------------------------------------


def test_the_page_lists_mentions_in_time_order_and_cases_with_what_the_reply_does(
    client, supervisor, surge, django_assert_num_queries
):
    incident, made = surge
    login(client, supervisor)

    with django_assert_num_queries(INCIDENT_PAGE_QUERIES):
        response = client.get(reverse("desk:incident", args=[incident.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    mentions = re.findall(r'<p class="mention-text">(.*?)</p>', body)
    assert mentions == ["Is the app down?", "Cannot log in", "down again", "Still down!!"]

    def row(name):
        return text_of(
            re.search(rf'<tr id="incident-case-{made[name].pk}".*?</tr>', body, re.DOTALL).group(0)
        )

    assert "Gets the reply" in row("dana_second") and "New" in row("dana_second")
    assert f"Skipped: same customer, answered on {made['dana_second'].reference}" in row("dana_first")
    assert "Skipped: already resolved or closed" in row("lee") and "Resolved" in row("lee")
    assert "Gets the reply" in row("nameless") and selectors.user_name(supervisor) in row("nameless")
    assert "Unassigned" in row("dana_second")
    side = text_of(section(body, "bulk-title"))
    assert (
        "Each customer is answered once" in side and "Resolved and closed cases are skipped (1 here)" in side
    )
    assert "Send to 2 customers" in side


@pytest.mark.parametrize("extra", [0, 8])
def test_the_incident_page_costs_the_same_for_more_cases(
    client, supervisor, surge, channels, django_assert_num_queries, extra
):
    incident, _ = surge
    for n in range(extra):
        customer, identity = customer_with_handle(f"Extra {n}", f"@extra{n}")
        incident.cases.add(open_case(channel=channels["x"], customer=customer, identity=identity))
    login(client, supervisor)

    with django_assert_num_queries(INCIDENT_PAGE_QUERIES):
        response = client.get(reverse("desk:incident", args=[incident.pk]))
    assert len(re.findall(r'<tr id="incident-case-\d+"', response.content.decode())) == 4 + extra


def test_agents_of_the_department_read_but_do_not_act(client, agent, surge):
    incident, _ = surge
    login(client, agent)

    body = client.get(reverse("desk:incident", args=[incident.pk])).content.decode()

    assert "Still down!!" in body
    assert 'name="text"' not in body and 'name="note"' not in body
    assert "Supervisors of the channel’s department answer and close incidents." in body
    reply = client.post(reverse("desk:incident_reply", args=[incident.pk]), {"text": "Hi", "action": "send"})
    close = client.post(reverse("desk:incident_close", args=[incident.pk]), {"note": "done"})
    assert reply.status_code == 403 and close.status_code == 403
    assert not Message.objects.filter(direction="out").exists()
    assert Incident.objects.get(pk=incident.pk).status == "open"


def test_other_departments_get_a_404(client, outsider, surge):
    incident, _ = surge
    login(client, outsider)
    assert client.get(reverse("desk:incident", args=[incident.pk])).status_code == 404
    assert client.post(reverse("desk:incident_close", args=[incident.pk]), {"note": "x"}).status_code == 404


# --- The bulk reply ---------------------------------------------------------------------------------

TEXT = "Hi {first_name} ({handle}), we are fixing the outage. Quote {reference} if it lasts."


def test_preview_shows_one_filled_reply_and_sends_nothing(client, supervisor, surge):
    incident, made = surge
    login(client, supervisor)

    response = client.post(
        reverse("desk:incident_reply", args=[incident.pk]), {"text": TEXT, "action": "preview"}
    )

    assert response.status_code == 200
    preview = text_of(section(response.content.decode(), "bulk-title").split('id="bulk-preview"')[1])
    first = made["nameless"]  # the first case answered (by id): a customer without a name
    expected = f"Hi there (@anon), we are fixing the outage. Quote {first.reference} if it lasts."
    assert f"Preview: to @anon on {first.reference}" in preview
    assert expected in preview and "2 replies will be queued" in preview
    assert ">" + TEXT + "</textarea>" in response.content.decode().replace("&#x27;", "'")
    assert not Message.objects.filter(direction="out").exists()


def test_send_answers_each_customer_once_filled_in_and_skips_closed_cases(client, supervisor, surge):
    incident, made = surge
    login(client, supervisor)

    response = client.post(
        reverse("desk:incident_reply", args=[incident.pk]), {"text": TEXT, "action": "send"}, follow=True
    )

    assert "Reply queued to 2 customers." in response.content.decode()
    sent = {m.case_id: m for m in Message.objects.filter(direction="out")}
    assert set(sent) == {made["dana_second"].pk, made["nameless"].pk}
    dana = sent[made["dana_second"].pk]
    assert (
        dana.text
        == f"Hi Dana (@dana), we are fixing the outage. Quote {made['dana_second'].reference} if it lasts."
    )
    assert dana.is_public and dana.delivery_state in ("queued", "sent", "failed") and dana.reply_to_id
    assert dana.identity.handle == "@dana" and dana.author_id == supervisor.pk
    nameless = sent[made["nameless"].pk]
    assert nameless.text.startswith("Hi there (@anon),")


def test_an_unknown_placeholder_is_named_beside_the_reply_and_nothing_is_sent(client, supervisor, surge):
    incident, _ = surge
    login(client, supervisor)

    for action in ("preview", "send"):
        response = client.post(
            reverse("desk:incident_reply", args=[incident.pk]), {"text": "Hi {name}!", "action": action}
        )
        assert response.status_code == 400
        error = re.search(r'<p class="field-error" id="bulk-text-error">(.*?)</p>', response.content.decode())
        assert error and error.group(1).startswith("Reply: Unknown placeholder {name}")
    empty = client.post(reverse("desk:incident_reply", args=[incident.pk]), {"text": "  ", "action": "send"})
    assert (
        empty.status_code == 400 and "Reply: Write the reply customers will read." in empty.content.decode()
    )
    assert not Message.objects.filter(direction="out").exists()


def test_a_reply_too_long_once_filled_is_refused_naming_the_case(client, supervisor, surge):
    incident, made = surge
    login(client, supervisor)
    text = "x" * 270 + " {first_name}"  # "there" makes 276, "Dana" 275: both fit; a long name does not
    made["dana_second"].customer.name = "Bartholomew-Alexander"
    made["dana_second"].customer.save()

    response = client.post(
        reverse("desk:incident_reply", args=[incident.pk]), {"text": text, "action": "send"}
    )

    assert response.status_code == 400
    assert f"on {made['dana_second'].reference} it would be 292" in response.content.decode()
    assert not Message.objects.filter(direction="out").exists()


def test_the_reply_is_refused_whole_when_one_case_is_not_the_supervisors(
    client, supervisor, surge, other_department
):
    incident, made = surge
    services.case_transfer(
        case=made["nameless"], to_department=other_department, actor=supervisor, reason="Billing's"
    )
    login(client, supervisor)

    page = client.get(reverse("desk:incident", args=[incident.pk])).content.decode()
    assert f"You cannot answer on {made['nameless'].reference}" in page

    response = client.post(
        reverse("desk:incident_reply", args=[incident.pk]), {"text": "Sorry", "action": "send"}
    )
    assert response.status_code == 403
    assert not Message.objects.filter(direction="out").exists()


# --- Closing ---------------------------------------------------------------------------------------


def test_closing_needs_a_note_then_records_who_and_why(client, supervisor, surge):
    incident, _ = surge
    login(client, supervisor)

    refused = client.post(reverse("desk:incident_close", args=[incident.pk]), {"note": ""})
    assert refused.status_code == 400
    assert re.search(r'id="close-note-error">Closing note: Say what happened', refused.content.decode())
    assert Incident.objects.get(pk=incident.pk).status == "open"

    response = client.post(
        reverse("desk:incident_close", args=[incident.pk]),
        {"note": "Login service restarted at 10:40."},
        follow=True,
    )

    closed = Incident.objects.get(pk=incident.pk)
    assert closed.status == "closed" and closed.closed_by == supervisor and closed.closed_at
    assert closed.close_note == "Login service restarted at 10:40."
    body = response.content.decode()
    assert "Incident closed." in body and "Login service restarted at 10:40." in body
    assert 'name="text"' not in body and 'name="note"' not in body  # nothing left to do on it
    # a closed incident takes no bulk reply
    late = client.post(reverse("desk:incident_reply", args=[incident.pk]), {"text": "Hi", "action": "send"})
    assert late.status_code == 409 and not Message.objects.filter(direction="out").exists()
