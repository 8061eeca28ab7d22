"""A survey's short signed link: ``/s/<token>/``, the token being the survey's id signed with
``django.core.signing`` under a salt of its own and dated when the link was made.

The token names nothing but the survey's id, so it shows nothing about the customer; the
signature (SECRET_KEY, salt) makes it unguessable and the date lets it expire after
``CASELINE_CSAT_LINK_DAYS``.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "caseline.csat.survey"


class LinkRefused(Exception):
    """The token is not one of ours (``expired`` False) or is too old (``expired`` True)."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.message = message
        self.expired = expired


def survey_token(survey_id: int) -> str:
    return signing.dumps(survey_id, salt=SALT)


def survey_id_from(token: str) -> int:
    """The survey id a token carries; ``LinkRefused`` when it was altered, made up or is too old."""
    max_age = settings.CASELINE_CSAT_LINK_DAYS * 24 * 3600
    try:
        value = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise LinkRefused("This survey link has expired.", expired=True) from exc
    except signing.BadSignature as exc:
        raise LinkRefused("This survey link is not valid.") from exc
    if not isinstance(value, int) or isinstance(value, bool):
        raise LinkRefused("This survey link is not valid.")
    return value


def survey_url(token: str) -> str:
    """The absolute link a customer is sent (``PUBLIC_URL`` + ``/s/<token>/``)."""
    return settings.PUBLIC_URL + reverse("csat-survey", args=[token])


def opt_out_url(token: str) -> str:
    return settings.PUBLIC_URL + reverse("csat-opt-out", args=[token])
