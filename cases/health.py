"""Connector health: whether each channel's traffic looks normal, and the alerts when it does not.

A channel learns its usual inbound rhythm: the 95th percentile of the gaps between its
customer messages over the last ``LEARN_DAYS`` days, in one statement (``lag`` over each
channel's messages, ``percentile_cont`` per channel). The sweep (beat, every few minutes)
opens a :class:`ChannelHealthAlert` when

- no customer message came for longer than ``max(usual gap * CHANNEL_HEALTH_SILENCE_FACTOR,
  CHANNEL_HEALTH_MIN_SILENCE_HOURS)`` of working time on the channel's promise calendar
  (a quiet night or holiday of an office-hours mailbox is not silence);
- its webhook refused ``CHANNEL_HEALTH_SIGNATURE_FAILURES`` forged or broken signatures in
  the last hour (counted by ``signature_failure_record`` in the cache: a forged request
  costs no database write);
- at least ``CHANNEL_HEALTH_OUTBOUND_FAILURE_SHARE`` of the replies queued on it in the last
  hour failed (and at least ``CHANNEL_HEALTH_OUTBOUND_MIN`` were sent).

An alert clears itself on the first sweep that finds the traffic normal again; one open
alert per channel and kind (a partial unique constraint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from connectors.models import Channel

from . import sla
from .models import ChannelHealthAlert, Message

LEARN_DAYS = 14
# Signature failures are counted in buckets of this many seconds; the last hour is summed.
BUCKET_SECONDS = 600
_BUCKETS_PER_HOUR = 3600 // BUCKET_SECONDS


def _setting(name: str, default):
    return getattr(settings, name, default)


def _bucket(at: datetime) -> int:
    return int(at.timestamp()) // BUCKET_SECONDS


def _signature_key(channel_id: int, bucket: int) -> str:
    return f"health:signature-failures:{channel_id}:{bucket}"


def signature_failure_record(*, channel_id: int, now: datetime | None = None) -> None:
    """Count one refused webhook signature on ``channel_id`` (the webhook view calls it)."""
    key = _signature_key(channel_id, _bucket(now or timezone.now()))
    try:
        if not cache.add(key, 1, timeout=2 * 3600):
            cache.incr(key)
    except Exception:  # a cache outage must not turn a 403 into a 500
        return


def signature_failures(*, channel_ids: list[int], now: datetime | None = None) -> dict[int, int]:
    """Refused signatures per channel in the last hour."""
    current = _bucket(now or timezone.now())
    keys = {_signature_key(pk, current - n): pk for pk in channel_ids for n in range(_BUCKETS_PER_HOUR)}
    counts = dict.fromkeys(channel_ids, 0)
    try:
        found = cache.get_many(list(keys))
    except Exception:
        return counts
    for key, value in found.items():
        counts[keys[key]] += int(value or 0)
    return counts


_GAPS_SQL = """
SELECT channel_id,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY gap) AS usual_gap,
       max(sent_at) AS last_inbound,
       count(*) AS messages
FROM (
    SELECT channel_id, sent_at,
           EXTRACT(EPOCH FROM sent_at - lag(sent_at) OVER (PARTITION BY channel_id ORDER BY sent_at)) AS gap
    FROM cases_message
    WHERE direction = 'in' AND channel_id IS NOT NULL AND sent_at > %s AND sent_at <= %s
) gaps
GROUP BY channel_id
"""


@dataclass(frozen=True)
class Rhythm:
    """A channel's inbound rhythm over the learning period."""

    usual_gap: timedelta | None
    last_inbound: datetime | None
    messages: int


def inbound_rhythms(*, now: datetime | None = None, days: int = LEARN_DAYS) -> dict[int, Rhythm]:
    """Per channel: the 95th-percentile gap between customer messages, the last one, the count.
    One statement on PostgreSQL; computed in Python elsewhere (the embedded SQLite default)."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_GAPS_SQL, [since, now])
            return {
                channel_id: Rhythm(timedelta(seconds=float(gap)) if gap is not None else None, last, count)
                for channel_id, gap, last, count in cursor.fetchall()
            }
    by_channel: dict[int, list[datetime]] = {}
    for channel_id, sent_at in (
        Message.objects.filter(direction="in", channel__isnull=False, sent_at__gt=since, sent_at__lte=now)
        .order_by("channel_id", "sent_at")
        .values_list("channel_id", "sent_at")
    ):
        by_channel.setdefault(channel_id, []).append(sent_at)
    rhythms = {}
    for channel_id, times in by_channel.items():
        gaps = sorted((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False))
        usual = None
        if gaps:
            rank = 0.95 * (len(gaps) - 1)
            low = int(rank)
            high = min(low + 1, len(gaps) - 1)
            usual = timedelta(seconds=gaps[low] + (gaps[high] - gaps[low]) * (rank - low))
        rhythms[channel_id] = Rhythm(usual, times[-1], len(times))
    return rhythms


def silence_threshold(rhythm: Rhythm | None) -> timedelta:
    """How long a channel may be quiet (working time) before it is reported silent."""
    floor = timedelta(hours=float(_setting("CHANNEL_HEALTH_MIN_SILENCE_HOURS", 2)))
    if rhythm is None or rhythm.usual_gap is None:
        return floor
    return max(rhythm.usual_gap * float(_setting("CHANNEL_HEALTH_SILENCE_FACTOR", 3)), floor)


def outbound_counts(*, now: datetime | None = None) -> dict[int, tuple[int, int]]:
    """Per channel, replies of the last hour: (all, failed). One statement."""
    now = now or timezone.now()
    rows = (
        Message.objects.filter(
            direction="out", channel__isnull=False, created_at__gt=now - timedelta(hours=1)
        )
        .values("channel_id")
        .order_by()
        .annotate(total=Count("id"), failed=Count("id", filter=Q(delivery_state="failed")))
    )
    return {row["channel_id"]: (row["total"], row["failed"]) for row in rows}


@dataclass
class HealthSweep:
    opened: list[ChannelHealthAlert] = field(default_factory=list)
    cleared: int = 0

    def as_dict(self) -> dict:
        return {"opened": len(self.opened), "cleared": self.cleared}


def channel_problems(*, now: datetime | None = None) -> dict[tuple[int, str], str]:
    """What is wrong now, per (channel id, alert kind), with a line saying what was measured."""
    now = now or timezone.now()
    channels = list(Channel.objects.filter(is_active=True).select_related("promise__calendar"))
    rhythms = inbound_rhythms(now=now)
    signatures = signature_failures(channel_ids=[c.pk for c in channels], now=now)
    outbound = outbound_counts(now=now)
    limit = int(_setting("CHANNEL_HEALTH_SIGNATURE_FAILURES", 5))
    share = float(_setting("CHANNEL_HEALTH_OUTBOUND_FAILURE_SHARE", 0.5))
    minimum = int(_setting("CHANNEL_HEALTH_OUTBOUND_MIN", 3))
    problems: dict[tuple[int, str], str] = {}
    for channel in channels:
        rhythm = rhythms.get(channel.pk)
        quiet_since = (
            rhythm.last_inbound if rhythm else max(channel.created_at, now - timedelta(days=LEARN_DAYS))
        )
        promise = getattr(channel, "promise", None)
        calendar = promise.calendar if promise is not None else None
        threshold = silence_threshold(rhythm)
        quiet = sla.working_time_between(quiet_since, now, calendar)
        if quiet > threshold:
            problems[(channel.pk, ChannelHealthAlert.Kind.SILENT)] = (
                f"No inbound since {quiet_since:%Y-%m-%d %H:%M} UTC: {quiet} of working time, usually at most {threshold}"
            )
        if signatures.get(channel.pk, 0) >= limit:
            problems[(channel.pk, ChannelHealthAlert.Kind.SIGNATURES)] = (
                f"{signatures[channel.pk]} refused signatures in the last hour"
            )
        total, failed = outbound.get(channel.pk, (0, 0))
        if total >= minimum and failed / total >= share:
            problems[(channel.pk, ChannelHealthAlert.Kind.OUTBOUND)] = (
                f"{failed} of {total} sends failed in the last hour"
            )
    return problems


def channel_health_sweep(*, now: datetime | None = None) -> HealthSweep:
    """Open an alert for each new problem and clear those whose traffic is normal again."""
    now = now or timezone.now()
    problems = channel_problems(now=now)
    result = HealthSweep()
    with transaction.atomic():
        open_alerts = {(a.channel_id, a.kind): a for a in ChannelHealthAlert.objects.filter(status="open")}
        gone = [a.pk for key, a in open_alerts.items() if key not in problems]
        if gone:
            result.cleared = ChannelHealthAlert.objects.filter(pk__in=gone).update(
                status=ChannelHealthAlert.Status.CLEARED, cleared_at=now
            )
        for (channel_id, kind), detail in problems.items():
            if (channel_id, kind) in open_alerts:
                continue
            try:
                with transaction.atomic():
                    result.opened.append(
                        ChannelHealthAlert.objects.create(
                            channel_id=channel_id, kind=kind, detail=detail[:255], opened_at=now
                        )
                    )
            except IntegrityError:  # another sweep opened it
                continue
    return result


# --- Reads for the pages ---------------------------------------------------------------------


def open_health_alerts(*, department_ids: set[int] | None) -> list[ChannelHealthAlert]:
    """Open health alerts with their channel, on the given departments' channels (None: all)."""
    alerts = ChannelHealthAlert.objects.filter(status="open").select_related("channel")
    if department_ids is not None:
        alerts = alerts.filter(channel__department_id__in=department_ids)
    return list(alerts.order_by("-opened_at", "-id"))


@dataclass(frozen=True)
class ChannelHealth:
    channel: Channel
    last_inbound: datetime | None
    last_outbound: datetime | None
    outbound_total: int
    outbound_failed: int
    failed_events: int
    signature_failures: int
    alerts: list[ChannelHealthAlert]
    recent_alerts: list[ChannelHealthAlert]


def channel_health(*, channel: Channel, now: datetime | None = None) -> ChannelHealth:
    """One channel's page: last inbound and outbound, last hour's error counts, its alerts."""
    now = now or timezone.now()
    hour = now - timedelta(hours=1)
    # Three reads, each on an index: the channel's inbound (message_channel_inbound_idx) and
    # its outbound (message_channel_outbound_idx) for the last reply and the last hour's sends.
    last_inbound = (
        Message.objects.filter(channel=channel, direction="in")
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    last_outbound = (
        Message.objects.filter(channel=channel, direction="out")
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    figures = Message.objects.filter(channel=channel, direction="out", sent_at__gt=hour).aggregate(
        outbound_total=Count("id"), outbound_failed=Count("id", filter=Q(delivery_state="failed"))
    )
    figures.update(last_inbound=last_inbound, last_outbound=last_outbound)
    failed_events = channel.inbound_events.filter(status="failed", received_at__gt=hour).count()
    alerts = list(channel.health_alerts.order_by("-opened_at", "-id")[:20])
    return ChannelHealth(
        channel=channel,
        last_inbound=figures["last_inbound"],
        last_outbound=figures["last_outbound"],
        outbound_total=figures["outbound_total"],
        outbound_failed=figures["outbound_failed"],
        failed_events=failed_events,
        signature_failures=signature_failures(channel_ids=[channel.pk], now=now)[channel.pk],
        alerts=[a for a in alerts if a.status == ChannelHealthAlert.Status.OPEN],
        recent_alerts=[a for a in alerts if a.status != ChannelHealthAlert.Status.OPEN],
    )
