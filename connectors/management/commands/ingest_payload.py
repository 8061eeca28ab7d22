"""Feed saved payloads through the inbox: ``manage.py ingest_payload --channel SLUG FILE...``.

Each file is one delivery as the platform sends it: a JSON webhook body (X, Meta), a raw
e-mail (``.eml``), or a form-encoded call callback (Twilio). It takes exactly the
webhook's path after the signature check: the connector's delivery id, an
``InboundEvent`` (marked imported in its headers, ``x-caseline-imported``: the file's
name), then the inbox batch. A file already imported, or delivered by the platform
before, is a duplicate and changes nothing. A directory stands for the files in it.

Prints a JSON summary: files, events stored, duplicates, events by status, messages
created, cases created and updated, and the failures with their reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.http import HttpRequest

from connectors import inbox
from connectors.models import Channel, InboundEvent
from connectors.registry import connector_for

# Rounds over events left pending because a worker held them at the same time.
MAX_ROUNDS = 5

# What a saved body is, when the file does not say, by channel kind.
CONTENT_TYPES = {
    "x": "application/json",
    "facebook": "application/json",
    "instagram": "application/json",
    "whatsapp": "application/json",
    "email": "message/rfc822",
    "phone": "application/x-www-form-urlencoded",
}


class Command(BaseCommand):
    help = (
        "Import saved webhook payloads (JSON bodies, .eml files, form-encoded call callbacks) into "
        "a channel through the same pipeline as its webhook, without the signature check."
    )

    def add_arguments(self, parser):
        parser.add_argument("--channel", required=True, help="Slug of the channel the payloads belong to.")
        parser.add_argument("files", nargs="+", help="Payload files, or directories of them.")
        parser.add_argument(
            "--content-type", default="", help="Content type of the bodies (default: by the channel's kind)."
        )

    def handle(self, *args, channel, files, content_type, **options):
        found = Channel.objects.filter(slug=channel).first()
        if found is None:
            raise CommandError(f"--channel: no channel with slug {channel!r}.")
        paths = _expand(files)
        connector = connector_for(found.kind)
        content_type = content_type or CONTENT_TYPES.get(found.kind, "application/octet-stream")
        summary = {
            "channel": found.slug,
            "files": len(paths),
            "events": 0,
            "duplicates": 0,
            "statuses": {},
            "messages_created": 0,
            "cases_created": 0,
            "cases_updated": 0,
            "failures": [],
        }
        stored: dict[int, str] = {}
        for path in paths:
            body = path.read_bytes()
            event, created = inbox.inbound_event_store(
                channel=found,
                delivery_id=connector.delivery_id(_request(body, content_type), found),
                body=body,
                headers={"content-type": content_type, inbox.IMPORTED_HEADER: path.name},
                content_type=content_type,
                enqueue=False,
            )
            if created:
                stored[event.pk] = str(path)
            else:
                summary["duplicates"] += 1
        summary["events"] = len(stored)
        pending = sorted(stored)
        for _ in range(MAX_ROUNDS):
            for start in range(0, len(pending), inbox.BATCH_SIZE):
                ids = pending[start : start + inbox.BATCH_SIZE]
                result = inbox.inbound_events_process_batch(limit=len(ids), event_ids=ids)
                summary["messages_created"] += result.messages_created
                summary["cases_created"] += result.cases_created
                summary["cases_updated"] += result.cases_updated
                summary["failures"] += [{"file": stored[pk], "error": error} for pk, error in result.failures]
            # Events a worker held meanwhile (or that waited for a case it held) are left pending.
            pending = list(
                InboundEvent.objects.filter(pk__in=pending, status=InboundEvent.Status.PENDING)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if not pending:
                break
        summary["statuses"] = dict(
            InboundEvent.objects.filter(pk__in=stored)
            .order_by()
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        self.stdout.write(json.dumps(summary, indent=2))


def _expand(names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            paths.append(path)
        else:
            raise CommandError(f"{name}: no such file or directory.")
    return paths


def _request(body: bytes, content_type: str) -> HttpRequest:
    """The POST the platform would have made, for the connector's delivery id."""
    request = HttpRequest()
    request.method = "POST"
    request.META["CONTENT_TYPE"] = content_type
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._body = body
    return request
