"""Export everything held about a customer as one JSON document, or a zip with the files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath
from typing import Any

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch, Q
from django.utils import timezone

from customers.models import Customer, CustomerMerge, Identity, IdentitySuggestion

from ..models import Attachment, Case, CaseEvent, Message, SatisfactionSurvey
from .common import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    customer_group,
    group_messages_q,
    group_suggestions_q,
    raw_events,
    raw_needles,
)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _attachment_path(attachment: Attachment) -> str | None:
    if not attachment.file:
        return None
    name = PurePosixPath(attachment.file.name).name or "file"
    return f"attachments/{attachment.pk}-{name}"


def customer_export(*, customer: Customer) -> dict[str, Any]:
    """Everything held about ``customer`` (and the customers merged into it) as one JSON-ready
    document. Reads only; a fixed number of queries whatever the number of cases and messages."""
    group = customer_group(customer)
    customer_ids = [c.pk for c in group]
    identities = list(
        Identity.objects.filter(customer_id__in=customer_ids).select_related("linked_by").order_by("id")
    )
    identity_ids = [i.pk for i in identities]
    cases = list(
        Case.objects.filter(customer_id__in=customer_ids)
        .select_related("department", "origin_channel")
        .order_by("created_at", "id")
    )
    messages = list(
        Message.objects.filter(group_messages_q(customer_ids, identity_ids))
        .select_related("channel")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("id")))
        .order_by("sent_at", "id")
    )
    events = list(CaseEvent.objects.filter(case__customer_id__in=customer_ids).order_by("created_at", "id"))
    surveys = list(
        SatisfactionSurvey.objects.filter(case__customer_id__in=customer_ids).order_by("sent_at", "id")
    )
    suggestions = list(
        IdentitySuggestion.objects.filter(group_suggestions_q(customer_ids, identities))
        .order_by("id")
        .distinct()
    )
    merges = list(
        CustomerMerge.objects.filter(Q(source_id__in=customer_ids) | Q(target_id__in=customer_ids)).order_by(
            "id"
        )
    )
    raw = list(
        raw_events(raw_needles(identities, [m.external_id for m in messages if m.direction == "in"]))
        .only("id", "provider", "channel_id", "delivery_id", "status", "received_at", "content_type", "body")
        .order_by("received_at", "id")
    )

    def person(c: Customer) -> dict:
        return {
            "id": c.pk,
            "name": c.name,
            "tier": c.tier,
            "notes": c.notes,
            "merged_into_id": c.merged_into_id,
            "created_at": _iso(c.created_at),
            "updated_at": _iso(c.updated_at),
            "erased_at": _iso(c.erased_at),
        }

    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": _iso(timezone.now()),
        "customer": person(customer),
        "merged_customers": [person(c) for c in group[1:]],
        "identities": [
            {
                "id": i.pk,
                "customer_id": i.customer_id,
                "kind": i.kind,
                "platform_id": i.platform_id,
                "handle": i.handle,
                "display_name": i.display_name,
                "follower_count": i.follower_count,
                "verified": i.verified,
                "profile": i.profile,
                "provenance": {
                    "link_source": i.link_source,
                    "linked_by": i.linked_by.get_username() if i.linked_by else None,
                    "linked_at": _iso(i.linked_at),
                },
                "created_at": _iso(i.created_at),
                "updated_at": _iso(i.updated_at),
            }
            for i in identities
        ],
        "cases": [
            {
                "id": c.pk,
                "reference": c.reference,
                "customer_id": c.customer_id,
                "subject": c.subject,
                "status": c.status,
                "priority": c.priority,
                "category": c.category,
                "department": c.department.name,
                "origin_channel": c.origin_channel.name if c.origin_channel else None,
                "handoff_note": c.handoff_note,
                "created_at": _iso(c.created_at),
                "resolved_at": _iso(c.resolved_at),
                "closed_at": _iso(c.closed_at),
            }
            for c in cases
        ],
        "messages": [
            {
                "id": m.pk,
                "case_id": m.case_id,
                "channel": {"kind": m.channel.kind, "name": m.channel.name} if m.channel else None,
                "identity_id": m.identity_id,
                "direction": m.direction,
                "kind": m.kind,
                "is_public": m.is_public,
                "external_id": m.external_id,
                "in_reply_to_external_id": m.in_reply_to_external_id,
                "thread_key": m.thread_key,
                "subject": m.subject,
                "text": m.text,
                "html": m.html,
                "quoted_text": m.quoted_text,
                "call_duration": m.call_duration,
                "recording_url": m.recording_url,
                "delivery_state": m.delivery_state,
                "triage": m.triage,
                "sent_at": _iso(m.sent_at),
                "created_at": _iso(m.created_at),
                "attachments": [
                    {
                        "id": a.pk,
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": a.size,
                        "external_url": a.external_url,
                        "content_id": a.content_id,
                        "file": _attachment_path(a),
                    }
                    for a in m.attachments.all()
                ],
            }
            for m in messages
        ],
        "case_events": [
            {
                "id": e.pk,
                "case_id": e.case_id,
                "kind": e.kind,
                "actor_id": e.actor_id,
                "before": e.before,
                "after": e.after,
                "reason": e.reason,
                "message_id": e.message_id,
                "created_at": _iso(e.created_at),
            }
            for e in events
        ],
        "satisfaction_surveys": [
            {
                "id": s.pk,
                "case_id": s.case_id,
                "channel_id": s.channel_id,
                "sent_at": _iso(s.sent_at),
                "rating": s.rating,
                "comment": s.comment,
                "answered_at": _iso(s.answered_at),
            }
            for s in surveys
        ],
        "identity_suggestions": [
            {
                "id": s.pk,
                "customer_id": s.customer_id,
                "kind": s.kind,
                "platform_id": s.platform_id,
                "identity_id": s.identity_id,
                "value": s.value,
                "source_message_id": s.source_message_id,
                "status": s.status,
                "created_at": _iso(s.created_at),
                "decided_at": _iso(s.decided_at),
            }
            for s in suggestions
        ],
        "merges": [
            {
                "id": m.pk,
                "source_id": m.source_id,
                "target_id": m.target_id,
                "identities": m.identities,
                "case_ids": m.case_ids,
                "target_before": m.target_before,
                "created_at": _iso(m.created_at),
                "undone_at": _iso(m.undone_at),
            }
            for m in merges
        ],
        "inbound_events": [
            {
                "id": e.pk,
                "provider": e.provider,
                "channel_id": e.channel_id,
                "delivery_id": e.delivery_id,
                "status": e.status,
                "content_type": e.content_type,
                "received_at": _iso(e.received_at),
                "body": e.body_text,
            }
            for e in raw
        ],
    }


def export_json_bytes(document: dict) -> bytes:
    return json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode("utf-8")


def customer_export_zip(*, customer: Customer) -> bytes:
    """The export as a ZIP: ``customer.json`` plus each attachment file under ``attachments/``.

    A file missing from storage is listed in ``missing_files.txt`` instead of failing the export.
    """
    document = customer_export(customer=customer)
    wanted = {
        a["file"]: a["id"] for m in document["messages"] for a in m["attachments"] if a["file"] is not None
    }
    files = {a.pk: a.file.name for a in Attachment.objects.filter(pk__in=wanted.values())}
    buffer = io.BytesIO()
    missing = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("customer.json", export_json_bytes(document))
        for path, pk in sorted(wanted.items()):
            try:
                with default_storage.open(files[pk], "rb") as handle:
                    bundle.writestr(path, handle.read())
            except (OSError, KeyError):
                missing.append(path)
        if missing:
            bundle.writestr("missing_files.txt", "\n".join(missing) + "\n")
    return buffer.getvalue()


def export_filename(customer: Customer, extension: str) -> str:
    return f"customer-{customer.pk}-export-{timezone.now():%Y%m%d}.{extension}"
