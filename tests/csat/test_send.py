"""Asking: once per case, on the channel the customer last wrote on, never to who opted out."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.utils import timezone

from cases import services
from cases.csat import links
from cases.csat import services as csat
from cases.models import Case, CaseEvent, Message, SatisfactionSurvey
from tests import factories
from tests.csat.conftest import PUBLIC_URL
from tests.desk.conftest import minutes_ago, open_case


def skip_events(case):
    return [
        (e.after, e.reason)
        for e in CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.CSAT).order_by("id")
    ]


def test_resolving_asks_once_even_when_resolved_again(
    mailbox, agent, resolve, django_capture_on_commit_callbacks
):
    # given an e-mail case worked by the agent
    case = open_case(channel=mailbox, kind="email", assignee=agent)

    # when it is resolved
    survey = resolve(case, agent)

    # then the customer was asked once, by e-mail, through the signed link
    assert survey.channel_id == mailbox.pk
    assert survey.department_id == case.department_id and survey.agent_id == agent.pk
    question = survey.message
    assert (question.direction, question.kind, question.channel_id) == ("out", "email", mailbox.pk)
    assert question.identity.customer_id == case.customer_id
    [token] = set(re.findall(rf"{PUBLIC_URL}/s/([^/\s]+)/", question.text))
    assert links.survey_id_from(token) == survey.pk
    link = f"{PUBLIC_URL}/s/{token}/"
    assert f"rated 1 to 5: {link}\n" in question.text and f"No more surveys: {link}opt-out/" in question.text
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    assert mail.outbox[0].to == [question.identity.platform_id]
    question.refresh_from_db()
    assert question.delivery_state == Message.Delivery.SENT

    # when the customer writes again (the case reopens) and it is resolved a second time
    services.message_add(
        case=case,
        direction="in",
        kind="email",
        text="One more thing",
        channel=mailbox,
        identity=question.identity,
    )
    assert Case.objects.get(pk=case.pk).status == Case.Status.OPEN
    resolve(case, agent)

    # then nobody is asked again
    assert SatisfactionSurvey.objects.filter(case=case).count() == 1
    assert Message.objects.filter(case=case, direction="out").count() == 1
    assert len(mail.outbox) == 1


def test_the_question_is_not_the_agents_answer(mailbox, agent, resolve):
    # given a case resolved without a reply
    case = open_case(channel=mailbox, kind="email", assignee=agent)
    before = Case.objects.get(pk=case.pk)

    resolve(case, agent)

    # then the survey went out but moved no clock: no first response, no last reply, still resolved
    after = Case.objects.get(pk=case.pk)
    assert Message.objects.filter(case=case, direction="out").count() == 1
    assert after.status == Case.Status.RESOLVED
    assert before.first_responded_at is None
    assert after.first_responded_at is None and after.last_outbound_at is None
    assert (after.due_at, after.sla_state) == (None, Case.SlaState.NONE)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (channel kind, message kind, public) in the order written: the last one decides.
        ([("x", "post", True), ("x", "dm", False), ("email", "email", False)], ("email", "email")),
        ([("email", "email", False), ("x", "dm", False)], ("x", "dm")),
        ([("email", "email", False), ("whatsapp", "dm", False)], ("whatsapp", "dm")),
        # A public tweet last: a DM on X, where the customer also wrote to us privately.
        ([("x", "dm", False), ("email", "email", False), ("x", "post", True)], ("x", "dm")),
        ([("facebook", "dm", False), ("facebook", "comment", True)], ("facebook", "dm")),
    ],
)
def test_asked_on_the_channel_the_customer_last_used(channels, mailbox, agent, resolve, steps, expected):
    customer = factories.CustomerFactory()
    identities = {}
    case = services.case_open(customer=customer, channel=channels[steps[0][0]])
    for minutes, (channel_kind, kind, public) in zip(range(len(steps) * 10, 0, -10), steps, strict=True):
        identity = identities.setdefault(
            channel_kind,
            factories.IdentityFactory(
                customer=customer,
                kind=channel_kind,
                platform_id="dana@example.test" if channel_kind == "email" else f"+1202555{minutes:04d}",
            ),
        )
        services.message_add(
            case=case,
            direction="in",
            kind=kind,
            text="Hello",
            channel=channels[channel_kind],
            identity=identity,
            is_public=public,
            sent_at=minutes_ago(minutes),
        )
    services.case_claim(case=case, actor=agent)

    survey = resolve(case, agent)

    assert (survey.channel.kind, survey.message.kind) == expected
    assert survey.message.is_public is False
    assert survey.message.identity_id == identities[expected[0]].pk


@pytest.mark.parametrize(
    ("channel_kind", "kind", "why"),
    [
        ("x", "post", csat.SKIPPED_PUBLIC_ONLY),
        ("instagram", "comment", csat.SKIPPED_PUBLIC_ONLY),
        ("phone", "call", csat.SKIPPED_PHONE),
    ],
)
def test_no_survey_where_it_could_not_be_private_and_the_reason_is_recorded(
    channels, agent, resolve, channel_kind, kind, why
):
    case = open_case(channel=channels[channel_kind], kind=kind, assignee=agent)

    assert resolve(case, agent) is None

    assert not Message.objects.filter(case=case, direction="out").exists()
    [(after, reason)] = skip_events(case)
    assert after == {"survey": "skipped", "why": why}
    assert reason


def test_a_customer_who_opted_out_is_not_asked(mailbox, agent, resolve):
    customer = factories.CustomerFactory(surveys_opt_out=True)
    case = open_case(channel=mailbox, customer=customer, kind="email", assignee=agent)

    assert resolve(case, agent) is None

    assert not SatisfactionSurvey.objects.filter(case=case).exists()
    assert not Message.objects.filter(case=case, direction="out").exists()
    assert len(mail.outbox) == 0
    assert skip_events(case) == [
        ({"survey": "skipped", "why": "opted_out"}, "The customer asked not to be sent surveys.")
    ]


def test_surveys_switched_off_queue_nothing(settings, mailbox, agent, django_capture_on_commit_callbacks):
    settings.CASELINE_CSAT_ENABLED = False
    case = open_case(channel=mailbox, kind="email", assignee=agent)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.case_set_status(case=case, status="resolved", actor=agent)

    assert not SatisfactionSurvey.objects.filter(case=case).exists()
    assert len(callbacks) == 1  # the live update of the status only
    assert csat.survey_send(case_id=case.pk) is None  # a task queued before switching off does nothing


def test_a_case_reopened_before_the_task_runs_is_not_asked(
    mailbox, agent, django_capture_on_commit_callbacks
):
    case = open_case(channel=mailbox, kind="email", assignee=agent)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.case_set_status(case=case, status="resolved", actor=agent)
    services.case_set_status(case=case, status="open", actor=agent)

    for callback in queued:  # the delayed task runs now
        callback()

    assert not SatisfactionSurvey.objects.filter(case=case).exists()


def test_the_survey_credits_who_had_the_case_at_resolution(mailbox, agent, other_department, resolve):
    case = open_case(channel=mailbox, kind="email", assignee=agent)
    survey = resolve(case, agent)

    services.case_set_status(case=case, status="open", actor=agent)
    services.case_transfer(case=case, to_department=other_department, actor=None, reason="Billing question")

    survey.refresh_from_db()
    assert (survey.department_id, survey.agent_id) == (case.department_id, agent.pk)


def test_an_erased_customer_is_not_asked(mailbox, agent, resolve):
    case = open_case(channel=mailbox, kind="email", assignee=agent)
    case.customer.erased_at = timezone.now()
    case.customer.save(update_fields=["erased_at"])

    assert resolve(case, agent) is None
    assert not Message.objects.filter(case=case, direction="out").exists()
