"""The writes of satisfaction surveys: ask once after resolving, record the answer, opt out.

Where the question goes: the channel of the customer's latest message on the case, to the
identity that wrote it. A public post or comment is never answered with a survey: the
customer is asked by a direct message on the same platform when they also wrote to us
privately there on this case, else not at all. A phone line cannot carry a link. Whenever
no survey goes out for a reason the customer or the case gives (opted out, nowhere private
to write to), a ``csat`` CaseEvent says why (``after.survey`` = ``"skipped"``).

The question is an outbound message queued like a reply (the outbox sends it after
commit), but it is not the agents' answer: it leaves the case's response clocks, its first
response and its last reply time alone, which ``services.message_add`` would move.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from channels_app.publish import publish_on_commit
from customers.models import Customer

from ..errors import ServiceError
from ..models import Case, CaseEvent, Message, SatisfactionSurvey
from ..services import _case_groups, record_event
from . import links

logger = logging.getLogger(__name__)

RATINGS = (1, 2, 3, 4, 5)
COMMENT_MAX_LENGTH = 2000

# Why a resolved case's customer was not asked (``after.why`` of the skip event).
SKIPPED_OPTED_OUT = "opted_out"
SKIPPED_NO_MESSAGE = "no_message"
SKIPPED_PHONE = "phone"
SKIPPED_PUBLIC_ONLY = "public_only"
SKIPPED_NO_IDENTITY = "no_identity"
SKIPPED_CHANNEL_OFF = "channel_inactive"


class AlreadyAnswered(ServiceError):
    code = "already_answered"
    status = 409


def _now() -> datetime:
    return datetime.now(UTC)


def stars(rating: int) -> str:
    return "★" * rating + "☆" * (5 - rating)


def survey_on_resolve(*, case: Case) -> None:
    """``case`` was just resolved (inside the resolving transaction): ask its customer after commit.

    Costs no query: the task decides, after ``CASELINE_CSAT_DELAY_MINUTES``, whether to ask.
    Nothing is queued when surveys are off or the transaction rolls back.
    """
    if not settings.CASELINE_CSAT_ENABLED:
        return
    case_id = case.pk
    transaction.on_commit(lambda: _queue_send(case_id))


def _queue_send(case_id: int) -> None:
    from ..tasks import csat_survey_send

    delay = settings.CASELINE_CSAT_DELAY_MINUTES * 60
    try:
        csat_survey_send.apply_async(args=[case_id], countdown=delay or None)
    except Exception:  # a broker outage must not fail the resolve already committed
        logger.exception("case %s resolved, but its satisfaction survey could not be queued", case_id)


def _skip(case: Case, why: str, reason: str) -> None:
    record_event(case=case, kind=CaseEvent.Kind.CSAT, after={"survey": "skipped", "why": why}, reason=reason)


def _where_to_ask(case: Case) -> tuple[Message, object] | tuple[str, str]:
    """The customer message to follow (its channel and identity) and the identity to write to,
    or why there is none: ``(why, reason)``."""
    inbound = case.messages.filter(direction=Message.Direction.IN, channel__isnull=False).select_related(
        "channel", "identity"
    )
    latest = inbound.order_by("-sent_at", "-id").first()
    if latest is None:
        return SKIPPED_NO_MESSAGE, "The customer never wrote on a channel of ours on this case."
    channel = latest.channel
    if channel.kind == channel.Kind.PHONE:
        return SKIPPED_PHONE, "The customer last called: a phone line cannot carry the survey link."
    if latest.is_public:
        private = (
            inbound.filter(is_public=False, channel__kind=channel.kind).order_by("-sent_at", "-id").first()
        )
        if private is None:
            return (
                SKIPPED_PUBLIC_ONLY,
                f"The customer wrote on {channel.get_kind_display()} only in public; "
                "a survey is never posted publicly.",
            )
        latest, channel = private, private.channel
    if not channel.is_active:
        return SKIPPED_CHANNEL_OFF, f"{channel} is switched off."
    identity = latest.identity or case.customer.identities.filter(kind=channel.kind).first()
    if identity is None:
        return SKIPPED_NO_IDENTITY, f"The customer has no {channel.get_kind_display()} identity to write to."
    return latest, identity


def survey_text(*, case: Case, survey_id: int) -> str:
    token = links.survey_token(survey_id)
    return (
        f"Thank you for getting in touch about {case.reference}. How did we do? "
        f"One question, rated 1 to 5: {links.survey_url(token)}\n"
        f"No more surveys: {links.opt_out_url(token)}"
    )


@transaction.atomic
def survey_send(*, case_id: int) -> SatisfactionSurvey | None:
    """Ask the customer of resolved case ``case_id`` how we did, once; returns the survey, or None.

    Guarantees:
    - the case row is locked, so two sends for one case (resolved, reopened and resolved
      again before the first ran) ask once: a case with a survey is never asked again, and
      one survey per case is also a unique constraint;
    - nothing is sent while surveys are off, or when the case is no longer resolved (it
      reopened during the delay; its next resolve queues again);
    - a customer who opted out is not asked, nor one with nowhere private to be asked: a
      ``csat`` CaseEvent records why (``after`` = ``{"survey": "skipped", "why": ...}``);
    - otherwise the survey (crediting the case's department and assignee at resolution) and
      its question, a queued outbound message on the channel the customer last wrote on
      (see the module docstring), are written with a ``message_out`` event naming the
      survey; the outbox sends it after commit; the timeline entry is pushed live.
    """
    if not settings.CASELINE_CSAT_ENABLED:
        return None
    case = Case.objects.select_for_update().filter(pk=case_id).first()
    if case is None or case.status != Case.Status.RESOLVED:
        return None
    if SatisfactionSurvey.objects.filter(case=case).exists():
        return None
    if case.customer.erased_at is not None:  # nobody left to ask
        return None
    if case.customer.surveys_opt_out:
        _skip(case, SKIPPED_OPTED_OUT, "The customer asked not to be sent surveys.")
        return None
    where = _where_to_ask(case)
    if isinstance(where[0], str):
        _skip(case, *where)
        return None
    follow, identity = where
    channel = follow.channel
    now = _now()
    survey = SatisfactionSurvey.objects.create(
        case=case, channel=channel, department_id=case.department_id, agent_id=case.assignee_id, sent_at=now
    )
    email = channel.kind == channel.Kind.EMAIL
    message = Message.objects.create(
        case=case,
        direction=Message.Direction.OUT,
        kind=Message.Kind.EMAIL if email else Message.Kind.DM,
        channel=channel,
        identity=identity,
        # An e-mail answers the customer's mail, so it joins their thread.
        reply_to=follow if email else None,
        subject="How did we do?" if email else "",
        text=survey_text(case=case, survey_id=survey.pk),
        delivery_state=Message.Delivery.QUEUED,
        sent_at=now,
    )
    survey.message = message
    survey.save(update_fields=["message"])
    record_event(case=case, kind=CaseEvent.Kind.MESSAGE_OUT, after={"survey": survey.pk}, message=message)
    publish_on_commit(
        event={"type": "message.added", "case_id": case.pk, "message_id": message.pk, "direction": "out"},
        groups=_case_groups(case),
    )
    from connectors.outbound import enqueue_send

    enqueue_send(message)
    return survey


def _clean_rating(rating) -> int:
    try:
        value = int(rating)
    except (TypeError, ValueError):
        value = None
    if value not in RATINGS or isinstance(rating, bool):
        raise ServiceError("A rating is a whole number from 1 to 5.", field="rating")
    return value


@transaction.atomic
def survey_answer(*, survey: SatisfactionSurvey, rating, comment: str = "") -> SatisfactionSurvey:
    """Record the customer's answer: ``rating`` 1-5 and an optional ``comment``, once.

    Guarantees:
    - the survey row is locked; a second answer is refused (``AlreadyAnswered``, 409), as is
      a rating outside 1-5 or a comment over ``COMMENT_MAX_LENGTH`` (``ServiceError`` naming
      the field); nothing is written then;
    - the answer goes on the case timeline as an entry in the customer's name (a note with
      the survey's identity and no author: "★★★★☆ Rated 4 out of 5" and the comment), with a
      ``csat`` CaseEvent (``after``: survey and rating) on the same transaction; it
      changes no status and no clock;
    - the entry is pushed live to the case's screens after commit.
    """
    value = _clean_rating(rating)
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        raise ServiceError(
            f"A comment is at most {COMMENT_MAX_LENGTH} characters ({len(comment)} given).", field="comment"
        )
    survey = (
        SatisfactionSurvey.objects.select_for_update(of=("self",))
        .select_related("case", "message")
        .get(pk=survey.pk)
    )
    if survey.answered_at is not None:
        raise AlreadyAnswered("This survey has already been answered: thank you.", field="rating")
    now = _now()
    survey.rating, survey.comment, survey.answered_at = value, comment, now
    survey.save(update_fields=["rating", "comment", "answered_at"])
    case = survey.case
    entry = Message.objects.create(
        case=case,
        direction=Message.Direction.NOTE,
        kind=Message.Kind.NOTE,
        identity_id=survey.message.identity_id if survey.message else None,
        subject=f"{stars(value)} Rated {value} out of 5",
        text=comment,
        sent_at=now,
    )
    record_event(
        case=case,
        kind=CaseEvent.Kind.CSAT,
        # The comment is the entry's text, not the audit trail's: erasing the customer blanks it.
        after={"survey": survey.pk, "rating": value},
        message=entry,
    )
    publish_on_commit(
        event={"type": "message.added", "case_id": case.pk, "message_id": entry.pk, "direction": "note"},
        groups=_case_groups(case),
    )
    return survey


@transaction.atomic
def survey_opt_out(*, survey: SatisfactionSurvey) -> bool:
    """The customer of ``survey`` asks not to be sent surveys any more; True when that is news.

    Sets ``Customer.surveys_opt_out`` on the customer the case now belongs to (after a merge,
    the merged customer) and records a ``csat`` CaseEvent on the survey's case
    (``after.survey`` = ``"opted_out"``). Asking again changes nothing.
    """
    case = Case.objects.select_for_update().get(pk=survey.case_id)
    changed = Customer.objects.filter(pk=case.customer_id, surveys_opt_out=False).update(
        surveys_opt_out=True, updated_at=_now()
    )
    if changed:
        record_event(
            case=case,
            kind=CaseEvent.Kind.CSAT,
            after={"survey": "opted_out", "customer": case.customer_id},
            reason="The customer asked, through the survey link, not to be sent surveys.",
        )
    return bool(changed)
