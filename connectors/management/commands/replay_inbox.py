"""Process stored webhook events again: ``manage.py replay_inbox [--status failed] [--since ...] [--id N]``."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from connectors import inbox
from connectors.models import InboundEvent

STATUS_CHOICES = {
    "failed": [InboundEvent.Status.FAILED],
    "pending": [InboundEvent.Status.PENDING],
    "all": [InboundEvent.Status.FAILED, InboundEvent.Status.PENDING],
}


class Command(BaseCommand):
    help = (
        "Process stored inbound events again, oldest first: failed ones by default, pending ones "
        "(never queued, or lost by a broker) with --status pending or all. Processed and ignored "
        "events are never run twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--status", choices=sorted(STATUS_CHOICES), default="failed")
        parser.add_argument("--since", help="Only events received at or after this ISO date or date-time.")
        parser.add_argument(
            "--id", dest="ids", type=int, action="append", default=[], help="Only this event (repeatable)."
        )
        parser.add_argument("--channel", help="Only events of the channel with this slug.")
        parser.add_argument("--limit", type=int, default=None, help="At most this many events.")

    def handle(self, *args, status, since, ids, channel, limit, **options):
        events = InboundEvent.objects.filter(status__in=STATUS_CHOICES[status]).order_by("received_at", "pk")
        if ids:
            events = events.filter(pk__in=ids)
        if since:
            events = events.filter(received_at__gte=_moment(since))
        if channel:
            events = events.filter(channel__slug=channel)
        event_ids = list(events.values_list("pk", flat=True)[:limit])

        outcome: Counter[str] = Counter()
        for event_id in event_ids:
            event = inbox.inbound_event_process(event_id=event_id)
            if event is None:
                outcome["busy"] += 1
                continue
            outcome[event.status] += 1
            if event.status == InboundEvent.Status.FAILED and options["verbosity"] > 1:
                self.stderr.write(f"event {event.pk}: {event.error}")
        summary = ", ".join(f"{count} {name}" for name, count in sorted(outcome.items())) or "nothing to do"
        self.stdout.write(f"Replayed {len(event_ids)} event(s): {summary}.")


def _moment(value: str) -> datetime:
    try:
        moment = parse_datetime(value)
        day = parse_date(value) if moment is None else None
    except ValueError:
        moment = day = None
    if moment is None:
        if day is None:
            raise CommandError(f"--since {value!r} is not an ISO date or date-time.")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
