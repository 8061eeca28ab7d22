"""Urgent signals: monitoring alerts matched with incidents, known-customer floods, and paging
whoever is on call.

- ``alerts_apply`` saves the alerts a source reported (one row per source and fingerprint,
  updated by each report) and matches every firing one with the open incidents it
  concerns: its time span overlaps the incident's window (widened by ``MATCH_SLACK``), or it
  shares a word (4+ letters, not a stop word) with what customers wrote in the incident.
  A match links them and marks the incident urgent.
- ``incident_check_alerts`` does the same from the incident's side (called by the surge sweep).
- ``known_customers_sweep`` counts, per channel, messages from VIP customers and verified or
  high-reach identities in each department's window; at its count it opens an incident of
  kind ``known_customers`` (or marks the channel's open incident urgent: one open incident
  per channel stays the rule).
- ``incident_mark_urgent`` pages the department's person on call, at any hour and on any day:
  one ``Page`` per incident and person (a unique constraint), an e-mail with a signed
  acknowledge link after commit, and the ``oncall.paged`` outbound webhook.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_app import groups
from channels_app.publish import publish_on_commit

from .models import (
    Incident,
    KnownCustomerRule,
    Message,
    MonitoringAlert,
    OnCallShift,
    Page,
    TriageSettings,
)

logger = logging.getLogger(__name__)

# An alert within this long of an incident's window counts as overlapping it.
MATCH_SLACK = timedelta(minutes=30)
# Words too common to tie an alert to what customers write.
STOP_WORDS = frozenset(
    [
        "this",
        "that",
        "with",
        "have",
        "from",
        "your",
        "they",
        "their",
        "there",
        "what",
        "when",
        "where",
        "which",
        "will",
        "would",
        "been",
        "were",
        "just",
        "about",
        "still",
        "again",
        "into",
        "over",
        "some",
        "than",
        "then",
        "them",
        "very",
        "only",
        "also",
        "does",
        "dont",
        "cant",
        "please",
        "thanks",
        "thank",
        "help",
        "anyone",
        "here",
        "know",
        "like",
        "want",
        "need",
        "today",
        "why",
    ]
)
_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)
ACK_SALT = "cases.page-acknowledge"
# A signed acknowledge link works this long after the page was sent.
ACK_MAX_AGE = 7 * 24 * 3600


def words(text: str) -> set[str]:
    """The words of ``text`` that can tie an alert to mentions: 4+ letters, lower case, no stop words."""
    return {w for w in (m.lower() for m in _WORD.findall(text or "")) if w not in STOP_WORDS}


def alert_words(alert: MonitoringAlert) -> set[str]:
    labels = " ".join(str(v) for v in (alert.labels or {}).values())
    return words(f"{alert.title} {alert.description} {labels}")


def _incident_words(incident: Incident, limit: int = 300) -> set[str]:
    texts = Message.objects.filter(
        case__incidents=incident, channel_id=incident.channel_id, direction=Message.Direction.IN
    ).values_list("text", flat=True)[:limit]
    found: set[str] = set()
    for text in texts:
        found |= words(text)
    return found


def _overlaps(alert: MonitoringAlert, incident: Incident) -> bool:
    end = incident.closed_at or max(incident.window_end, timezone.now())
    return alert.starts_at <= end + MATCH_SLACK and (
        alert.ends_at is None or alert.ends_at >= incident.window_start - MATCH_SLACK
    )


def _match(alert: MonitoringAlert, incident: Incident, incident_words: set[str]) -> str:
    """Why ``alert`` concerns ``incident`` ("" when it does not)."""
    source = alert.source
    if source.department_id is not None and source.department_id != incident.channel.department_id:
        return ""
    if _overlaps(alert, incident):
        return _("Alert “%(title)s” overlaps the incident") % {"title": alert.title}
    shared = sorted(alert_words(alert) & incident_words)
    if shared:
        return _("Alert “%(title)s” shares words with the mentions: %(words)s") % {
            "title": alert.title,
            "words": ", ".join(shared[:5]),
        }
    return ""


def _link(alert: MonitoringAlert, incident: Incident, reason: str) -> None:
    incident.alerts.add(alert)
    incident_mark_urgent(incident=incident, reason=reason)


@transaction.atomic
def alerts_apply(*, source, alerts: list, event=None) -> list[MonitoringAlert]:
    """Save reported alerts (created or updated by fingerprint) and match the firing ones with
    open incidents; returns the saved alerts. Idempotent: a report sent twice changes nothing more."""
    saved = []
    for value in alerts:
        alert, _created = MonitoringAlert.objects.update_or_create(
            source=source,
            fingerprint=value.fingerprint,
            defaults={
                "status": value.status,
                "title": value.title,
                "description": value.description,
                "severity": value.severity,
                "labels": value.labels,
                "starts_at": value.starts_at,
                "ends_at": value.ends_at,
                "generator_url": value.generator_url,
                "event": event,
            },
        )
        alert.source = source
        saved.append(alert)
    firing = [a for a in saved if a.status == MonitoringAlert.Status.FIRING]
    if firing:
        incidents = list(Incident.objects.filter(status=Incident.Status.OPEN).select_related("channel"))
        for incident in incidents:
            linked = set(incident.alerts.values_list("pk", flat=True))
            candidates = [a for a in firing if a.pk not in linked]
            if not candidates:
                continue
            mention_words = _incident_words(incident)
            for alert in candidates:
                reason = _match(alert, incident, mention_words)
                if reason:
                    _link(alert, incident, reason)
    return saved


def incident_check_alerts(*, incident: Incident) -> list[MonitoringAlert]:
    """Link the firing alerts that concern ``incident`` (marking it urgent); returns them."""
    firing = list(
        MonitoringAlert.objects.filter(status=MonitoringAlert.Status.FIRING)
        .exclude(incidents=incident)
        .select_related("source")
    )
    if not firing:
        return []
    mention_words = _incident_words(incident)
    linked = []
    with transaction.atomic():
        for alert in firing:
            reason = _match(alert, incident, mention_words)
            if reason:
                _link(alert, incident, reason)
                linked.append(alert)
    return linked


# --- Urgent incidents and pages --------------------------------------------------------------


def on_call_now(*, department_id: int, now: datetime | None = None):
    """The user on call for the department now (the shift covering now, the latest started first),
    or None: nobody."""
    now = now or timezone.now()
    shift = (
        OnCallShift.objects.filter(department_id=department_id, starts_at__lte=now, ends_at__gt=now)
        .select_related("user")
        .order_by("-starts_at", "-id")
        .first()
    )
    return shift.user if shift is not None else None


@transaction.atomic
def incident_mark_urgent(*, incident: Incident, reason: str) -> Page | None:
    """Mark ``incident`` urgent (the first reason stays) and page whoever is on call for its
    channel's department. Returns the new page, None when nobody is on call or they were paged."""
    if not incident.is_urgent:
        incident.is_urgent = True
        incident.urgent_reason = reason[:255]
        Incident.objects.filter(pk=incident.pk).update(is_urgent=True, urgent_reason=incident.urgent_reason)
        publish_on_commit(
            event={"type": "incident.urgent", "incident_id": incident.pk, "reason": incident.urgent_reason},
            groups=[groups.supervisors_group()],
        )
    return page_on_call(incident=incident, reason=incident.urgent_reason or reason)


def page_on_call(*, incident: Incident, reason: str) -> Page | None:
    """Page the person on call for the incident's department, once per incident and person."""
    user = on_call_now(department_id=incident.channel.department_id)
    if user is None:
        return None
    try:
        with transaction.atomic():
            page = Page.objects.create(user=user, incident=incident, reason=reason[:255])
    except IntegrityError:  # paged already
        return None
    from connectors import webhooks_out

    webhooks_out.emit(
        "oncall.paged",
        {
            "page_id": page.pk,
            "incident_id": incident.pk,
            "channel_id": incident.channel_id,
            "department_id": incident.channel.department_id,
            "user": {"id": user.pk, "username": user.get_username(), "email": user.email},
            "reason": page.reason,
        },
    )
    page_id = page.pk
    transaction.on_commit(lambda: page_send_mail(page_id=page_id))
    return page


def ack_token(page: Page) -> str:
    return signing.dumps({"page": page.pk}, salt=ACK_SALT, compress=True)


def page_from_token(token: str) -> Page | None:
    """The page a signed acknowledge link names, or None when the link is forged or too old."""
    try:
        data = signing.loads(token, salt=ACK_SALT, max_age=ACK_MAX_AGE)
    except signing.BadSignature:
        return None
    return (
        Page.objects.select_related("incident", "incident__channel", "user")
        .filter(pk=data.get("page"))
        .first()
    )


def page_send_mail(*, page_id: int) -> None:
    """E-mail a page to its person, with the signed acknowledge link. A mail failure is logged:
    the page stays on the incident screen."""
    page = Page.objects.select_related("user", "incident", "incident__channel").filter(pk=page_id).first()
    if page is None or not page.user.email:
        return
    link = settings.PUBLIC_URL + reverse("desk:page_ack", args=[ack_token(page)])
    incident_link = settings.PUBLIC_URL + reverse("desk:incident", args=[page.incident_id])
    subject = _("Urgent: %(title)s on %(channel)s") % {
        "title": page.incident.title or _("incident"),
        "channel": page.incident.channel.name,
    }
    body = _("%(reason)s\n\nIncident: %(incident)s\nAcknowledge: %(ack)s\n") % {
        "reason": page.reason,
        "incident": incident_link,
        "ack": link,
    }
    try:
        send_mail(subject, body, None, [page.user.email])
    except Exception:
        logger.exception("page %s: e-mail not sent", page.pk)


@transaction.atomic
def page_acknowledge(*, page: Page, actor) -> bool:
    """Acknowledge a page (once; the first acknowledgement stays). True when it was open."""
    updated = Page.objects.filter(pk=page.pk, acknowledged_at=None).update(
        acknowledged_at=timezone.now(), acknowledged_by=actor
    )
    return bool(updated)


@transaction.atomic
def incident_pages_acknowledge(*, incident: Incident, actor) -> int:
    """Acknowledge every open page of ``incident`` (the incident screen's button)."""
    return Page.objects.filter(incident=incident, acknowledged_at=None).update(
        acknowledged_at=timezone.now(), acknowledged_by=actor
    )


# --- Known-customer floods -------------------------------------------------------------------


def known_customer_q(*, min_followers: int) -> Q:
    """Messages from a VIP customer, or a verified or high-reach identity (as triage reads reach)."""
    return (
        Q(case__customer__tier="vip")
        | Q(identity__verified=True)
        | Q(identity__follower_count__gte=min_followers)
    )


def known_customers_sweep(*, now: datetime | None = None) -> list[Incident]:
    """Raise the known-customer signal on every channel whose department's rule is met; returns
    the incidents opened or marked urgent for it."""
    now = now or timezone.now()
    rules = list(KnownCustomerRule.objects.filter(enabled=True))
    if not rules:
        return []
    min_followers = TriageSettings.current().monitor_max_followers
    raised = []
    for rule in rules:
        start = now - timedelta(minutes=rule.window_minutes)
        rows = (
            Message.objects.filter(
                known_customer_q(min_followers=min_followers),
                direction=Message.Direction.IN,
                channel__department_id=rule.department_id,
                sent_at__gt=start,
                sent_at__lte=now,
            )
            .values("channel_id")
            .order_by()
            .annotate(count=Count("id"))
            .filter(count__gte=rule.count)
        )
        for row in rows:
            incident = _known_customers_incident(row["channel_id"], start, now, row["count"], min_followers)
            if incident is not None:
                raised.append(incident)
    return raised


def _known_customers_incident(channel_id: int, start, now, count: int, min_followers: int) -> Incident | None:
    reason = _("%(count)s messages from known customers in %(minutes)s minutes") % {
        "count": count,
        "minutes": int((now - start).total_seconds() // 60),
    }
    with transaction.atomic():
        incident = (
            Incident.objects.select_related("channel").filter(channel_id=channel_id, status="open").first()
        )
        if incident is None:
            try:
                with transaction.atomic():
                    incident = Incident.objects.create(
                        channel_id=channel_id,
                        kind=Incident.Kind.KNOWN_CUSTOMERS,
                        window_start=start,
                        window_end=now,
                        mention_count=count,
                        baseline=0,
                        title=reason,
                    )
            except IntegrityError:  # the surge sweep opened one a moment ago
                incident = Incident.objects.select_related("channel").get(
                    channel_id=channel_id, status="open"
                )
        elif incident.is_urgent:
            return None
        case_ids = (
            Message.objects.filter(
                known_customer_q(min_followers=min_followers),
                channel_id=channel_id,
                direction=Message.Direction.IN,
                sent_at__gt=start,
                sent_at__lte=now,
            )
            .values_list("case_id", flat=True)
            .distinct()
        )
        incident.cases.add(*case_ids)
        incident_mark_urgent(incident=incident, reason=reason)
    return incident
