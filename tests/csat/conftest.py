"""Builders for satisfaction survey tests: surveys on, cases made and resolved through the services."""

from __future__ import annotations

import pytest

from cases import services
from cases.csat import services as csat
from cases.models import SatisfactionSurvey

# The desk's builders: channels on every platform, an agent of another department.
from tests.desk.conftest import _fast_passwords, channels, open_case, outsider  # noqa: F401

PUBLIC_URL = "https://care.example.test"


@pytest.fixture(autouse=True)
def _surveys_on(settings):
    settings.CASELINE_CSAT_ENABLED = True
    settings.CASELINE_CSAT_DELAY_MINUTES = 0
    settings.PUBLIC_URL = PUBLIC_URL
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def mailbox(channels):  # noqa: F811
    """The support mailbox, with an address to send from."""
    box = channels["email"]
    box.account_id = "support@brand.example.test"
    box.save(update_fields=["account_id"])
    return box


@pytest.fixture
def resolve(django_capture_on_commit_callbacks):
    """Resolve a case as ``actor`` and run what its commit queues (the survey task, the send)."""

    def run(case, actor):
        with django_capture_on_commit_callbacks(execute=True):
            services.case_set_status(case=case, status="resolved", actor=actor)
        return SatisfactionSurvey.objects.filter(case=case).select_related("message").first()

    return run


@pytest.fixture
def surveyed(mailbox, agent, resolve):
    """A case opened by an e-mail, claimed by ``agent``, resolved: its survey went out."""

    def make(customer=None, channel=None, kind="email", assignee=agent):
        case = open_case(channel=channel or mailbox, customer=customer, kind=kind)
        if assignee is not None:
            services.case_claim(case=case, actor=assignee)
        survey = resolve(case, assignee)
        assert survey is not None
        return survey

    return make


def answer(survey, rating, comment=""):
    return csat.survey_answer(survey=survey, rating=rating, comment=comment)
