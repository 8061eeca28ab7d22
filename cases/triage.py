"""Triage: score each customer message, set priority and category, and pick our battles.

:func:`assess_inbound` reads and explains; :func:`triage_apply` writes (priority,
category, monitoring) with a CaseEvent per change. The breakdown stored on the message
says why: sentiment (VADER), intent keywords, the author's reach, the customer's tier,
repeat contact. Surge detection and the monitoring clean-up live here too.

The ingest calls, inside its transaction, once the message is stored::

    triage.triage_apply(case=message.case, message=message)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from channels_app import groups
from channels_app.publish import publish_on_commit

from . import escalation, incident_services, services, sla, urgent
from .errors import ReasonRequired, ServiceError
from .models import Case, CaseEvent, Incident, Message, TriageSettings

logger = logging.getLogger(__name__)

# Points an intent adds to the score; intents not listed here add DEFAULT_INTENT_POINTS.
INTENT_POINTS = {"safety": 40, "legal": 35, "outage": 25, "cancel": 20, "refund": 15}
DEFAULT_INTENT_POINTS = 15
# Intents that make any message a major issue.
MAJOR_INTENTS = {"safety", "legal", "outage"}
# Follower counts and the points they add (the first threshold reached, from the top).
REACH_POINTS = ((1_000_000, 25), (100_000, 20), (10_000, 12), (1_000, 5))
VERIFIED_POINTS = 10
VIP_POINTS = 20
REPEAT_POINTS, REPEAT_CAP = 5, 3
# Score at or above which a message is urgent / high priority.
URGENT_SCORE, HIGH_SCORE = 60, 35
# VADER compound thresholds (the package's own convention is +-0.05 for neutral).
STRONG_POSITIVE, STRONG_NEGATIVE, NEGATIVE = 0.5, -0.5, -0.05
QUESTION_WORDS = re.compile(
    r"^\s*(how|what|when|where|why|who|which|can|could|would|will|is|are|do|does|did|should|any)\b", re.I
)


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # loads the bundled lexicon once


@lru_cache(maxsize=1024)  # room for long keyword lists: a cache smaller than a list misses every time
def _pattern(phrase: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)", re.I)


@lru_cache(maxsize=256)
def _any_pattern(phrases: tuple[str, ...]) -> re.Pattern:
    """One pattern matching where any of ``phrases`` would (``_pattern``'s rules)."""
    alternatives = "|".join(r"\s+".join(map(re.escape, phrase.split())) for phrase in phrases)
    return re.compile(r"(?<!\w)(?:" + alternatives + r")(?!\w)", re.I)


def match_intents(text: str, keywords: dict[str, list[str]]) -> dict[str, list[str]]:
    """The intents whose phrases occur in ``text`` (whole words, any case), with the phrases found."""
    found: dict[str, list[str]] = {}
    for intent, phrases in (keywords or {}).items():
        stripped = tuple(p.strip() for p in phrases if p.strip())
        # Most messages name no intent: one search per intent says so, not one per phrase.
        if not stripped or not _any_pattern(stripped).search(text):
            continue
        hits = [p for p in phrases if p.strip() and _pattern(p.strip()).search(text)]
        if hits:
            found[intent] = hits
    return found


def is_question(text: str) -> bool:
    return "?" in text or bool(QUESTION_WORDS.match(text))


@dataclass(frozen=True)
class TriageResult:
    """A message's score with everything that went into it."""

    score: int
    priority: str
    category: str
    monitor: bool
    sentiment: dict[str, float]
    intents: dict[str, list[str]]
    followers: int | None
    verified: bool
    tier: str
    repeat_contacts: int
    points: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def breakdown(self) -> dict:
        """The JSON stored on ``Message.triage``: every field, containers copied (what
        ``dataclasses.asdict`` gives, without its recursive walk on the inbox's hot path)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["sentiment"], values["points"] = dict(self.sentiment), dict(self.points)
        values["intents"] = {intent: list(hits) for intent, hits in self.intents.items()}
        values["reasons"] = list(self.reasons)
        return {"version": 1, **values}

    def summary(self) -> str:
        return f"Triage score {self.score}: " + ("; ".join(self.reasons) or "nothing notable")


def _reach_points(followers: int | None) -> int:
    return next((points for limit, points in REACH_POINTS if (followers or 0) >= limit), 0)


def assess_inbound(
    *,
    case: Case,
    message: Message,
    settings: TriageSettings | None = None,
    repeat_contacts: int | None = None,
) -> TriageResult:
    """Score ``message`` (a customer's) in the context of its ``case``; reads, never writes.

    ``repeat_contacts`` is counted (the customer's other messages in the repeat window)
    unless the caller knows it: a customer created for this very message has none.
    """
    settings = settings or TriageSettings.current()
    text = " ".join(part for part in (message.subject, message.text) if part).strip()
    sentiment = (
        _analyzer().polarity_scores(text) if text else {"neg": 0.0, "neu": 1.0, "pos": 0.0, "compound": 0.0}
    )
    compound = sentiment["compound"]
    intents = match_intents(text, settings.intent_keywords)
    identity = message.identity
    followers = identity.follower_count if identity else None
    verified = bool(identity and identity.verified)
    tier = case.customer.tier
    since = message.sent_at - timedelta(days=settings.repeat_window_days)
    repeat = repeat_contacts
    if repeat is None:
        repeat = (
            Message.objects.filter(
                case__customer_id=case.customer_id,
                direction=Message.Direction.IN,
                sent_at__gte=since,
                sent_at__lte=message.sent_at,
            )
            .exclude(pk=message.pk)
            .count()
        )

    points = {
        "sentiment": round(max(0.0, -compound) * 30),
        "intent": min(sum(INTENT_POINTS.get(i, DEFAULT_INTENT_POINTS) for i in intents), 50),
        "reach": min(_reach_points(followers) + (VERIFIED_POINTS if verified else 0), 30),
        "tier": VIP_POINTS if tier == "vip" else 0,
        "repeat": min(repeat, REPEAT_CAP) * REPEAT_POINTS,
    }
    score = min(sum(points.values()), 100)

    if intents.keys() & MAJOR_INTENTS or score >= 50:
        category = Case.Category.MAJOR
    elif intents:
        category = Case.Category.MAJOR if compound <= STRONG_NEGATIVE else Case.Category.MINOR
    elif is_question(text):
        category = Case.Category.QUESTION
    elif compound >= STRONG_POSITIVE:
        category = Case.Category.PRAISE
    elif compound <= STRONG_NEGATIVE:
        category = Case.Category.RANT
    else:
        category = Case.Category.MINOR

    if score >= URGENT_SCORE or "safety" in intents:
        priority = Case.Priority.URGENT
    elif score >= HIGH_SCORE or "legal" in intents:
        priority = Case.Priority.HIGH
    elif category in (Case.Category.PRAISE, Case.Category.RANT) and score == points["sentiment"]:
        priority = Case.Priority.LOW  # mood alone, nobody with reach, no repeat, no intent
    else:
        priority = Case.Priority.NORMAL

    low_reach = (followers or 0) < settings.monitor_max_followers and not verified and tier != "vip"
    monitor = category in (settings.monitor_categories or []) and low_reach and not intents and repeat < 2

    reasons = []
    if compound <= NEGATIVE or compound >= STRONG_POSITIVE:
        reasons.append(f"sentiment {compound:+.2f}")
    reasons += [f"{intent} ({', '.join(hits)})" for intent, hits in intents.items()]
    if points["reach"]:
        reasons.append(f"{followers or 0:,} followers" + (", verified" if verified else ""))
    if points["tier"]:
        reasons.append("VIP customer")
    if repeat:
        reasons.append(
            f"{repeat} other message{'s' if repeat != 1 else ''} in {settings.repeat_window_days} days"
        )
    if monitor:
        reasons.append(f"low-reach {category}: monitor")
    return TriageResult(
        score=score,
        priority=priority,
        category=category,
        monitor=monitor,
        sentiment={k: float(v) for k, v in sentiment.items()},
        intents=intents,
        followers=followers,
        verified=verified,
        tier=tier,
        repeat_contacts=repeat,
        points=points,
        reasons=reasons,
    )


@transaction.atomic
def triage_apply(
    *, case: Case, message: Message, actor=None, settings: TriageSettings | None = None
) -> TriageResult:
    """Score ``message``, store the breakdown on it, and act on the case.

    Guarantees: priority only ever goes up (agents lower it by hand) and a tighter
    per-priority promise then pulls the running response clock in; the category is set
    when the case has none or the message is a major issue; an untouched new case of
    low-reach venting or praise (not already marked high or urgent) goes to monitoring,
    and a monitored case whose customer
    now needs an answer comes back. Each change is a CaseEvent whose reason is the
    score's summary; a matching priority or category escalation path is then followed.
    Locks the case row. ``settings`` spares the lookup of the settings in force.
    """
    if message.direction != Message.Direction.IN:
        raise ServiceError("Only customer messages are triaged.", field="message")
    case = Case.objects.select_for_update().select_related("customer").get(pk=case.pk)
    result = assess_inbound(case=case, message=message, settings=settings)
    message.triage = result.breakdown()
    Message.objects.filter(pk=message.pk).update(triage=message.triage)

    changed, events = triage_changes(case=case, message=message, result=result, actor=actor)
    if not changed:
        return result
    CaseEvent.objects.bulk_create(events)
    case.save()
    publish_on_commit(event=triage_event(case), groups=triage_groups(case))
    if {"priority", "category"} & set(changed):
        escalation.escalate_if_triggered(case=case)
    return result


def triage_changes(
    *, case: Case, message: Message, result: TriageResult, actor=None, now: datetime | None = None
) -> tuple[list[str], list[CaseEvent]]:
    """Apply ``result`` to ``case`` in memory, by :func:`triage_apply`'s rules; no saving.

    Returns the fields that changed (priority, category, status) and one unsaved
    CaseEvent per change, in that order, for the caller to save with the case (it holds
    the case's row lock, or the case is new).
    """
    now = now or timezone.now()
    reason = result.summary()
    changed: list[str] = []
    events: list[CaseEvent] = []

    def event(kind: str, field_name: str, previous: str, new: str) -> None:
        changed.append(field_name)
        events.append(
            CaseEvent(
                case=case, kind=kind, actor=actor, reason=reason, message=message,
                before={field_name: previous}, after={field_name: new},
            )
        )  # fmt: skip

    if Case.PRIORITY_RANK[result.priority] > Case.PRIORITY_RANK.get(case.priority, 0):
        previous, case.priority = case.priority, result.priority
        sla.on_priority_change(case, previous=previous, at=now)
        event(CaseEvent.Kind.PRIORITY, "priority", previous, case.priority)
    if case.category != result.category and (not case.category or result.category == Case.Category.MAJOR):
        previous, case.category = case.category, result.category
        event(CaseEvent.Kind.CATEGORY, "category", previous, case.category)
    target = None
    untouched = case.status == Case.Status.NEW and case.first_responded_at is None
    if result.monitor and untouched and Case.PRIORITY_RANK.get(case.priority, 0) <= 1:
        target = Case.Status.MONITORING
    elif not result.monitor and case.status == Case.Status.MONITORING:
        target = Case.Status.OPEN
    if target is not None:
        previous, case.status = case.status, target
        sla.on_status_change(case, previous=previous, at=now)
        event(CaseEvent.Kind.STATUS, "status", previous, target)
    return changed, events


def triage_event(case: Case, *, change: str = "triage") -> dict:
    """The live ``case.changed`` event after triage moved ``case`` (with its category)."""
    return services.case_changed_event(case, change, category=case.category)


def triage_groups(case: Case) -> list[str]:
    return [groups.case_group(case.pk), groups.department_group(case.department_id)] + (
        [groups.user_group(case.assignee_id)] if case.assignee_id else []
    )


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return reason


def case_monitor(*, case: Case, actor, reason: str) -> Case:
    """An agent decides the case needs no answer: monitoring, no clock, a reason on record."""
    return services.case_set_status(
        case=case, status=Case.Status.MONITORING, actor=actor, reason=_require_reason(reason)
    )


def case_respond(*, case: Case, actor, reason: str) -> Case:
    """An agent decides a monitored case needs an answer after all: open, clocks start now."""
    case = Case.objects.get(pk=case.pk)
    if case.status != Case.Status.MONITORING:
        raise ServiceError("Only a monitored case can be moved to the answer queue.", field="status")
    return services.case_set_status(
        case=case, status=Case.Status.OPEN, actor=actor, reason=_require_reason(reason)
    )


def monitoring_autoclose(*, now: datetime | None = None) -> int:
    """Close monitored cases with no customer message for the configured quiet days; returns how many."""
    settings = TriageSettings.current()
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.monitor_quiet_days)
    quiet = Case.objects.filter(status=Case.Status.MONITORING).filter(
        Q(last_inbound_at__lt=cutoff) | Q(last_inbound_at__isnull=True, created_at__lt=cutoff)
    )
    closed = 0
    for case in quiet.order_by("pk").iterator():
        with transaction.atomic():
            locked = Case.objects.select_for_update(skip_locked=True).filter(
                pk=case.pk, status=Case.Status.MONITORING
            )
            current = locked.first()
            if current is None:
                continue
            services.case_set_status(
                case=current,
                status=Case.Status.CLOSED,
                actor=None,
                reason=f"Monitored with no customer message for {settings.monitor_quiet_days} days.",
            )
            closed += 1
    return closed


# --- Surges ----------------------------------------------------------------------------------


def surge_detect(*, now: datetime | None = None) -> list[Incident]:
    """Open (or extend) an incident per channel whose mentions in the last window beat its baseline.

    A surge is at least ``surge_min_mentions`` customer messages in the last
    ``surge_window_minutes`` and at least ``surge_factor`` times the mean per window of
    the ``surge_baseline_hours`` before. One open incident per channel (a named
    constraint): a continuing surge links its new cases to the open incident. The
    supervisors are told live when an incident opens. Returns the incidents opened.
    """
    settings = TriageSettings.current()
    now = now or timezone.now()
    window = timedelta(minutes=settings.surge_window_minutes)
    start, baseline_start = now - window, now - window - timedelta(hours=settings.surge_baseline_hours)
    windows_in_baseline = timedelta(hours=settings.surge_baseline_hours) / window
    counts = (
        Message.objects.filter(direction=Message.Direction.IN, sent_at__gt=baseline_start, sent_at__lte=now)
        .exclude(channel=None)
        .values("channel_id")
        .order_by()
        .annotate(
            current=Count("id", filter=Q(sent_at__gt=start)),
            before=Count("id", filter=Q(sent_at__lte=start)),
        )
        .filter(current__gte=settings.surge_min_mentions)
    )
    opened = []
    for row in counts:
        baseline = row["before"] / windows_in_baseline
        open_incident = Incident.objects.filter(
            channel_id=row["channel_id"], status=Incident.Status.OPEN
        ).first()
        if open_incident is None and row["current"] < float(settings.surge_factor) * baseline:
            continue
        incident = open_incident or _incident_open(row["channel_id"], start, now, row["current"], baseline)
        if incident is None:
            continue
        case_ids = (
            Message.objects.filter(
                channel_id=row["channel_id"],
                direction=Message.Direction.IN,
                sent_at__gt=start,
                sent_at__lte=now,
            )
            .values_list("case_id", flat=True)
            .distinct()
        )
        incident.cases.add(*case_ids)
        # A firing monitoring alert that concerns the surge makes it urgent (and pages on call).
        urgent.incident_check_alerts(incident=incident)
        if open_incident is None:
            opened.append(incident)
    return opened


def _incident_open(
    channel_id: int, start: datetime, end: datetime, count: int, baseline: float
) -> Incident | None:
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                channel_id=channel_id,
                window_start=start,
                window_end=end,
                mention_count=count,
                baseline=round(baseline, 3),
                title=f"{count} messages in {int((end - start).total_seconds() // 60)} minutes",
            )
            publish_on_commit(
                event={
                    "type": "incident.opened",
                    "incident_id": incident.pk,
                    "channel_id": channel_id,
                    "mention_count": count,
                    "baseline": round(baseline, 3),
                },
                groups=[groups.supervisors_group()],
            )
            return incident
    except IntegrityError:  # another sweep opened it a moment ago
        return None


def incident_reply(*, incident: Incident, author, text: str) -> list[Message]:
    """One public reply per customer on the open cases of ``incident``, placeholders filled
    (each case stays its own): see :func:`cases.incident_services.incident_reply`."""
    return incident_services.incident_reply(incident=incident, author=author, text=text)


def incident_close(*, incident: Incident, actor, note: str = "") -> Incident:
    """Close an incident (supervisors and admins): :func:`cases.incident_services.incident_close`."""
    return incident_services.incident_close(incident=incident, actor=actor, note=note)
