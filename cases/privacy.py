"""Privacy: export everything held about a customer, erase it, and purge old raw webhooks.

Export
    ``customer_export`` gathers the customer (and the customers merged into it: the same
    person), every identity with how it was linked, their cases, every message on those
    cases or written from their identities elsewhere, attachments, case events, identity
    suggestions, merges and the raw inbound events that carried their messages, as one
    JSON document; ``customer_export_zip`` packs it with the attachment files.

Erase
    ``customer_erase`` removes or pseudonymises a customer's personal data in one
    transaction, and keeps the audit trail: the Customer row stays (as "Erased customer
    #id", ``erased_at`` set) so cases keep their customer; identities, identity
    suggestions, merges and attachments are deleted (files after commit); messages,
    case subjects and hand-over notes are blanked; CaseEvents stay with their kinds,
    actors and times, their free text erased and names, handles and platform ids replaced
    by the pseudonym (also on other customers' cases, where ingest named an identity);
    outbound webhook payloads about them are scrubbed; raw InboundEvents that carried
    their messages keep their rows (so nothing looks lost) with body and headers blanked,
    an ``x-caseline-erased`` header and a note, and are never processed again. Each
    erasure is recorded as an ``ErasureRequest``.

Meta's data-deletion callback
    ``meta_signed_request_parse`` checks a ``signed_request``; ``meta_deletion_request``
    records it and erases the customers whose Facebook or Instagram identity has the user
    id (``erasure_request_run``, queued after commit; the retention sweep runs any request
    whose task was lost).

Retention
    ``inbound_events_purge`` deletes raw InboundEvents that are processed or ignored and
    older than ``INBOUND_EVENT_RETENTION_DAYS`` (0 keeps them for ever). Pending and failed
    events are never purged: their messages are not in a case yet, and purging them would
    lose them; ``replay_inbox`` runs failed ones, and they are purged once processed.

Who may: ``cases.permissions.can_export_customer`` (admins; supervisors, for a customer they
can see) and ``can_erase_customer`` (admins).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, quote_plus

from celery import shared_task
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Prefetch, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from connectors.models import Channel, InboundEvent, WebhookDelivery
from customers.models import Customer, CustomerMerge, ErasureRequest, Identity, IdentitySuggestion

from . import permissions
from .errors import NotPermitted, ServiceError
from .models import Attachment, Case, CaseEvent, Message

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "caseline-customer-export"
EXPORT_VERSION = 1
# What erased free text becomes; names become the customer's pseudonym.
ERASED = "[erased]"
ERASED_HEADER = "x-caseline-erased"
# Shorter strings are not searched for in raw bodies or other customers' audit trail:
# "4242" or "Al" would match far too much that is not theirs.
MIN_RAW_TOKEN = 6
MIN_TEXT_TOKEN = 3
# Rows per DELETE when purging raw events: short statements, short locks.
PURGE_BATCH = 5000
# A pending erasure request older than this had its task lost: the sweep runs it.
ERASURE_SWEEP_AFTER = timedelta(minutes=5)
META_KINDS = (Identity.Kind.FACEBOOK, Identity.Kind.INSTAGRAM)


class ErasureConflict(ServiceError):
    status = 409


# --- Who may -----------------------------------------------------------------------------------


# --- Who is one person ---------------------------------------------------------------------------


def customer_group(customer: Customer) -> list[Customer]:
    """``customer`` and every customer merged into it, directly or along a chain: one person."""
    group = [customer]
    frontier = [customer.pk]
    seen = {customer.pk}
    while frontier:
        found = [c for c in Customer.objects.filter(merged_into_id__in=frontier) if c.pk not in seen]
        seen.update(c.pk for c in found)
        group += found
        frontier = [c.pk for c in found]
    return group


def _group_messages_q(customer_ids: list[int], identity_ids: list[int]) -> Q:
    """Messages on the person's cases, and those they wrote on anyone else's."""
    return Q(case__customer_id__in=customer_ids) | Q(identity_id__in=identity_ids)


def _raw_needles(identities: list[Identity], external_ids: list[str]) -> list[bytes]:
    """Byte strings whose presence in a raw body marks it as this person's: their platform
    ids and the ids of the messages they wrote, as written in JSON, forms and mail."""
    tokens: set[str] = set()
    for identity in identities:
        tokens.add(identity.platform_id)
        tokens.add(identity.platform_id.lstrip("+"))  # WhatsApp writes E.164 without the plus
    tokens.update(external_ids)
    needles: set[bytes] = set()
    for token in tokens:
        if len(token) < MIN_RAW_TOKEN:
            continue
        for variant in (token, quote_plus(token), quote(token, safe=""), json.dumps(token)[1:-1]):
            needles.add(variant.encode("utf-8"))
    return sorted(needles)


def _is_digest(value: str) -> bool:
    return bool(re.fullmatch(r"(sha256:)?[0-9a-f]{64}", value))


def _raw_events(needles: list[bytes]):
    """InboundEvents whose raw body contains any of ``needles`` (a scan done by the database)."""
    if not needles:
        return InboundEvent.objects.none()
    clause = "position(%s in body) > 0" if connection.vendor == "postgresql" else "instr(body, %s) > 0"
    where = " OR ".join([clause] * len(needles))
    return InboundEvent.objects.extra(where=[f"({where})"], params=needles)  # noqa: S610 - fixed SQL, bound values


# --- Export --------------------------------------------------------------------------------------


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
        Message.objects.filter(_group_messages_q(customer_ids, identity_ids))
        .select_related("channel")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("id")))
        .order_by("sent_at", "id")
    )
    events = list(CaseEvent.objects.filter(case__customer_id__in=customer_ids).order_by("created_at", "id"))
    suggestions = list(
        IdentitySuggestion.objects.filter(Q(customer_id__in=customer_ids) | Q(identity_id__in=identity_ids))
        .order_by("id")
        .distinct()
    )
    merges = list(
        CustomerMerge.objects.filter(Q(source_id__in=customer_ids) | Q(target_id__in=customer_ids)).order_by(
            "id"
        )
    )
    raw = list(
        _raw_events(_raw_needles(identities, [m.external_id for m in messages if m.direction == "in"]))
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
        "identity_suggestions": [
            {
                "id": s.pk,
                "customer_id": s.customer_id,
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


# --- Erase ---------------------------------------------------------------------------------------


@dataclass
class _Scrubber:
    """Replaces a person's names, handles and ids in free text and JSON by their pseudonym."""

    tokens: list[str]
    pattern: re.Pattern | None
    pseudonym: str

    @classmethod
    def for_tokens(cls, tokens: set[str], pseudonym: str) -> _Scrubber:
        usable = sorted({t for t in tokens if t and len(t) >= MIN_TEXT_TOKEN}, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(t) for t in usable), re.IGNORECASE) if usable else None
        return cls(tokens=usable, pattern=pattern, pseudonym=pseudonym)

    def text(self, value: str) -> str:
        return self.pattern.sub(self.pseudonym, value) if self.pattern and value else value

    def json(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value


# Keys of CaseEvent before/after and webhook payloads that hold free text.
_FREE_TEXT_KEYS = frozenset({"note", "error", "subject", "text", "html", "reason", "name", "handoff_note"})


def _erase_free_text(value):
    if isinstance(value, dict):
        return {k: (ERASED if k in _FREE_TEXT_KEYS and v else _erase_free_text(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_erase_free_text(v) for v in value]
    return value


def pseudonym(customer: Customer) -> str:
    return f"Erased customer #{customer.pk}"


def _identity_tokens(identities: list[Identity]) -> set[str]:
    """What ingest's notes name an identity by (``_label``): ``@handle``, else its platform id."""
    tokens = set()
    for i in identities:
        handle = i.handle.strip().lstrip("@")
        if handle:
            tokens.add(f"@{handle}")
        if len(i.platform_id.lstrip("+")) >= MIN_RAW_TOKEN:
            tokens |= {i.platform_id, i.platform_id.lstrip("+")}
    return tokens


def _personal_tokens(group: list[Customer], identities: list[Identity]) -> set[str]:
    """Everything that names the person: ids, handles, names, and long profile values (links)."""
    tokens = _identity_tokens(identities) | {c.name.strip() for c in group if c.name.strip()}
    for i in identities:
        tokens |= {i.platform_id, i.handle.strip().lstrip("@")}
        if i.display_name.strip():
            tokens.add(i.display_name.strip())
        tokens |= {
            v.strip() for v in (i.profile or {}).values() if isinstance(v, str) and len(v.strip()) >= 12
        }
    return tokens


def customer_erase(
    *,
    customer: Customer,
    actor=None,
    source: str = ErasureRequest.Source.API,
    request: ErasureRequest | None = None,
) -> ErasureRequest:
    """Erase ``customer``'s personal data (and that of the customers merged into it); return the
    ``ErasureRequest`` recording it (``request`` when one is being run, else a new one).

    One transaction, the customer row locked. ``actor`` must be an admin when given (the
    Meta callback erases with no actor). Refuses (409) a customer already erased, or one
    merged into another (erase that one: it holds the identities and cases now).
    Attachment files are deleted after commit; a file that cannot be deleted is logged.
    """
    if actor is not None and not permissions.can_erase_customer(actor):
        raise NotPermitted("Only admins erase customers.")
    files: list[str] = []
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.erased_at is not None:
            raise ErasureConflict(f"Customer #{locked.pk} was already erased.", code="already_erased")
        if locked.merged_into_id is not None:
            raise ErasureConflict(
                f"Customer #{locked.pk} was merged into customer #{locked.merged_into_id}; erase that one.",
                code="merged",
            )
        counts = _erase_group(locked, files)
        if request is None:
            request = ErasureRequest.objects.create(
                source=source,
                status=ErasureRequest.Status.COMPLETED,
                confirmation_code=secrets.token_urlsafe(24),
                customer_ids=[locked.pk],
                counts=counts,
                requested_by=actor,
                completed_at=timezone.now(),
            )
        else:
            request.customer_ids = sorted({*request.customer_ids, locked.pk})
            request.counts = {k: request.counts.get(k, 0) + v for k, v in counts.items()}
            request.save(update_fields=["customer_ids", "counts"])
        transaction.on_commit(lambda: _delete_files(files))
    customer.refresh_from_db()
    return request


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("erasure: attachment file %s could not be deleted", name)


def _erase_group(customer: Customer, files: list[str]) -> dict[str, int]:
    now = timezone.now()
    group = customer_group(customer)
    customer_ids = [c.pk for c in group]
    name = pseudonym(customer)
    identities = list(Identity.objects.filter(customer_id__in=customer_ids))
    identity_ids = [i.pk for i in identities]
    # On their own cases and webhooks every name goes; elsewhere only what identifies them
    # (another customer's audit trail may name someone else who shares a first name).
    identity_scrub = _Scrubber.for_tokens(_personal_tokens(group, identities), name)
    elsewhere_scrub = _Scrubber.for_tokens(_identity_tokens(identities), name)
    # Locked like ingest locks a case it appends to: a message arriving meanwhile waits, then
    # lands on an erased case (and, its identity gone, with a new customer).
    case_ids = list(
        Case.objects.select_for_update()
        .filter(customer_id__in=customer_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    messages = Message.objects.filter(_group_messages_q(customer_ids, identity_ids))
    message_ids = list(messages.values_list("pk", flat=True))
    written = list(
        messages.filter(direction=Message.Direction.IN)
        .exclude(external_id="")
        .values_list("external_id", flat=True)
    )
    counts: dict[str, int] = {"customers": len(group), "cases": len(case_ids), "messages": len(message_ids)}

    # Raw webhooks first: they are found by the ids about to be erased.
    raw_ids = list(_raw_events(_raw_needles(identities, written)).values_list("pk", flat=True))
    note = f"Body erased {now:%Y-%m-%d %H:%M} UTC with customer #{customer.pk}'s personal data."
    raw = InboundEvent.objects.filter(pk__in=raw_ids)
    raw.filter(status__in=[InboundEvent.Status.PENDING, InboundEvent.Status.FAILED]).update(
        status=InboundEvent.Status.IGNORED, processed_at=now
    )
    counts["inbound_events"] = raw.update(
        body=b"", headers={ERASED_HEADER: now.isoformat()}, error=note, content_type=""
    )
    # An e-mail's delivery id is its Message-ID, which often names the sender: keep a digest.
    digested = []
    for event in raw.only("id", "delivery_id"):
        if not _is_digest(event.delivery_id):
            event.delivery_id = "sha256:" + hashlib.sha256(event.delivery_id.encode()).hexdigest()
            digested.append(event)
    InboundEvent.objects.bulk_update(digested, ["delivery_id"], batch_size=500)

    attachments = Attachment.objects.filter(message_id__in=message_ids)
    files += [name for name in attachments.exclude(file="").values_list("file", flat=True) if name]
    counts["attachments"] = attachments.delete()[0]
    Message.objects.filter(pk__in=message_ids).update(
        text=ERASED,
        html="",
        quoted_text="",
        subject="",
        recording_url="",
        external_id="",
        in_reply_to_external_id="",
        thread_key="",
        delivery_error="",
        triage={},
    )
    Case.objects.filter(pk__in=case_ids).update(subject=ERASED, handoff_note="")

    # The audit trail stays: free text on their cases is erased, names and ids anywhere
    # else (ingest notes on other customers' cases) become the pseudonym.
    own = list(CaseEvent.objects.filter(case_id__in=case_ids))
    for event in own:
        event.reason = ERASED if event.reason else ""
        event.before = identity_scrub.json(_erase_free_text(event.before))
        event.after = identity_scrub.json(_erase_free_text(event.after))
    CaseEvent.objects.bulk_update(own, ["reason", "before", "after"], batch_size=500)
    elsewhere = _mentioning(
        CaseEvent.objects.exclude(case_id__in=case_ids), elsewhere_scrub, ["reason"], ["before", "after"]
    )
    for event in elsewhere:
        event.reason = elsewhere_scrub.text(event.reason)
        event.before = elsewhere_scrub.json(event.before)
        event.after = elsewhere_scrub.json(event.after)
    CaseEvent.objects.bulk_update(elsewhere, ["reason", "before", "after"], batch_size=500)
    counts["case_events"] = len(own) + len(elsewhere)

    # Integrator webhooks about them (pending ones are still sent, without the personal data).
    deliveries = list(
        WebhookDelivery.objects.filter(
            Q(payload__data__customer_id__in=customer_ids)
            | Q(payload__data__case_id__in=case_ids)
            | (Q(event_type__startswith="case.") | Q(event_type__startswith="sla."))
            & Q(payload__data__id__in=case_ids)
            | Q(event_type__startswith="message.") & Q(payload__data__id__in=message_ids)
        )
    )
    for delivery in deliveries:
        payload = dict(delivery.payload)
        data = _erase_free_text(payload.get("data") or {})
        if "external_id" in data:
            data["external_id"] = ""
        payload["data"] = identity_scrub.json(data)
        delivery.payload = payload
        delivery.response_excerpt = ""
        delivery.error = identity_scrub.text(delivery.error)
    WebhookDelivery.objects.bulk_update(deliveries, ["payload", "response_excerpt", "error"], batch_size=500)
    counts["webhook_deliveries"] = len(deliveries)

    counts["identity_suggestions"] = IdentitySuggestion.objects.filter(
        Q(customer_id__in=customer_ids) | Q(identity_id__in=identity_ids)
    ).delete()[0]
    counts["merges"] = CustomerMerge.objects.filter(
        Q(source_id__in=customer_ids) | Q(target_id__in=customer_ids)
    ).delete()[0]
    counts["identities"] = Identity.objects.filter(pk__in=identity_ids).delete()[0]

    # The admin's change log names the objects it changed.
    for model, ids in ((Customer, customer_ids), (Identity, identity_ids)):
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id__in=[str(pk) for pk in ids]
        ).update(object_repr=name, change_message="")
    for c in group:
        Customer.objects.filter(pk=c.pk).update(
            name=pseudonym(c), notes="", tier=Customer.Tier.STANDARD, erased_at=now, updated_at=now
        )
    return counts


def _mentioning(queryset, scrubber: _Scrubber, text_fields: list[str], json_fields: list[str]) -> list:
    """Rows of ``queryset`` whose fields mention any of the scrubber's names or ids."""
    if not scrubber.tokens:
        return []
    annotated = queryset.annotate(**{f"_{f}_text": Cast(f, TextField()) for f in json_fields})
    condition = Q()
    for token in scrubber.tokens:
        for field in text_fields:
            condition |= Q(**{f"{field}__icontains": token})
        for field in json_fields:
            condition |= Q(**{f"_{field}_text__icontains": token})
    return list(annotated.filter(condition))


# --- Erasure requests (Meta's callback) ------------------------------------------------------------


def subject_digest(platform: str, user_id: str) -> str:
    """A keyed digest of a platform user id: recognisable, not reversible without SECRET_KEY."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"caseline.erasure:{platform}:{user_id}".encode(), hashlib.sha256).hexdigest()


class SignedRequestError(ServiceError):
    """A ``signed_request`` that is not one (400), or one not signed by our app (403)."""


class SignedRequestForged(SignedRequestError):
    code = "invalid_signature"
    status = 403


def _b64url(value: str, field: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SignedRequestError(
            f"The {field} part of signed_request is not base64url.", field="signed_request"
        ) from exc


def meta_app_secrets() -> list[str]:
    """The app secrets of the active Facebook, Instagram and WhatsApp channels that name one."""
    found = []
    for channel in Channel.objects.filter(
        kind__in=[Channel.Kind.FACEBOOK, Channel.Kind.INSTAGRAM, Channel.Kind.WHATSAPP], is_active=True
    ).order_by("pk"):
        try:
            value = channel.secret("app_secret")
        except ImproperlyConfigured:  # a channel without a usable secret cannot verify anything
            continue
        if value not in found:
            found.append(value)
    return found


def meta_signed_request_parse(signed_request, *, app_secrets: list[str]) -> dict:
    """The payload of Meta's ``signed_request`` (``<signature>.<payload>``, both base64url; the
    signature is HMAC-SHA256 of the encoded payload with the app secret).

    Raises ``SignedRequestError`` (400, naming ``signed_request``) for anything malformed,
    ``SignedRequestForged`` (403) when no app secret signed it. The payload must be a JSON
    object with a non-empty string ``user_id``.
    """
    if not isinstance(signed_request, str) or not signed_request.strip():
        raise SignedRequestError("signed_request is required.", code="required", field="signed_request")
    parts = signed_request.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise SignedRequestError(
            "signed_request must be '<signature>.<payload>', both base64url.", field="signed_request"
        )
    encoded_signature, encoded_payload = parts
    given = _b64url(encoded_signature, "signature")
    raw = _b64url(encoded_payload, "payload")
    if len(given) != hashlib.sha256().digest_size:
        raise SignedRequestError(
            "The signature of signed_request is not an HMAC-SHA256.", field="signed_request"
        )
    if not any(
        hmac.compare_digest(given, hmac.new(s.encode(), encoded_payload.encode(), hashlib.sha256).digest())
        for s in app_secrets
    ):
        raise SignedRequestForged(
            "signed_request is not signed with this app's secret.", field="signed_request"
        )
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SignedRequestError(
            "The payload of signed_request is not JSON.", field="signed_request"
        ) from exc
    if not isinstance(payload, dict):
        raise SignedRequestError(
            "The payload of signed_request is not a JSON object.", field="signed_request"
        )
    algorithm = payload.get("algorithm", "HMAC-SHA256")
    if not isinstance(algorithm, str) or algorithm.upper() != "HMAC-SHA256":
        raise SignedRequestError(
            f"Unsupported algorithm {algorithm!r}; expected HMAC-SHA256.", field="algorithm"
        )
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 255:
        raise SignedRequestError("The payload's user_id must be a non-empty string id.", field="user_id")
    return {**payload, "user_id": user_id.strip()}


@transaction.atomic
def meta_deletion_request(*, user_id: str) -> ErasureRequest:
    """Record Meta's request to delete ``user_id``'s data and queue its erasure after commit.

    The customers are those whose Facebook or Instagram identity has that id (followed to
    the customer they were merged into); with none, the request is recorded as
    ``no_match`` at once. The user id itself is not stored, only its digest.
    """
    customer_ids = set()
    for identity in Identity.objects.filter(kind__in=META_KINDS, platform_id=user_id).select_related(
        "customer"
    ):
        customer_ids.add(_current_customer_id(identity.customer))
    request = ErasureRequest.objects.create(
        source=ErasureRequest.Source.META,
        status=ErasureRequest.Status.PENDING if customer_ids else ErasureRequest.Status.NO_MATCH,
        confirmation_code=secrets.token_urlsafe(24),
        subject_digest=subject_digest("meta", user_id),
        customer_ids=sorted(customer_ids),
        completed_at=None if customer_ids else timezone.now(),
    )
    if customer_ids:
        request_id = request.pk
        transaction.on_commit(lambda: _queue_erasure(request_id))
    return request


def _current_customer_id(customer: Customer) -> int:
    seen = set()
    while customer.merged_into_id is not None and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer.pk


def _queue_erasure(request_id: int) -> None:
    try:
        run_erasure_request.delay(request_id)
        return
    except Exception as exc:  # noqa: BLE001 - a broker outage: erase here instead
        logger.warning("broker unavailable (%s); running erasure request %s inline", exc, request_id)
    try:
        erasure_request_run(request_id=request_id)
    except Exception:
        logger.exception("erasure request %s stays pending; the retention sweep runs it", request_id)


def erasure_request_run(*, request_id: int) -> ErasureRequest | None:
    """Erase the customers of a pending request; mark it completed, or failed with the reason.

    Takes the request's row lock without waiting (a worker already on it wins: None).
    Customers already erased are skipped; a failure rolls back that customer's erasure.
    """
    with transaction.atomic():
        request = (
            ErasureRequest.objects.select_for_update(skip_locked=True)
            .filter(pk=request_id, status=ErasureRequest.Status.PENDING)
            .first()
        )
        if request is None:
            return None
        try:
            with transaction.atomic():
                for customer in Customer.objects.filter(pk__in=list(request.customer_ids)).order_by("pk"):
                    current = Customer.objects.get(pk=_current_customer_id(customer))
                    if current.erased_at is None:
                        customer_erase(customer=current, source=request.source, request=request)
        except Exception as exc:
            logger.exception("erasure request %s failed", request.pk)
            request.refresh_from_db()
            request.status = ErasureRequest.Status.FAILED
            request.error = f"{type(exc).__name__}: {exc}"[:2000]
            request.save(update_fields=["status", "error"])
            return request
        request.status = ErasureRequest.Status.COMPLETED
        request.completed_at = timezone.now()
        request.save(update_fields=["status", "completed_at"])
    return request


def erasure_requests_sweep(*, now=None) -> int:
    """Run pending requests whose own task was lost; how many were run."""
    now = now or timezone.now()
    ids = list(
        ErasureRequest.objects.filter(
            status=ErasureRequest.Status.PENDING, created_at__lt=now - ERASURE_SWEEP_AFTER
        ).values_list("pk", flat=True)[:100]
    )
    return sum(1 for pk in ids if erasure_request_run(request_id=pk) is not None)


# --- Retention -----------------------------------------------------------------------------------


def inbound_events_purge(*, days: int | None = None, now=None, batch_size: int = PURGE_BATCH) -> int:
    """Delete processed and ignored raw InboundEvents received more than ``days`` ago
    (default ``INBOUND_EVENT_RETENTION_DAYS``; 0 keeps everything). Pending and failed
    events are kept whatever their age. Deletes in batches; returns how many went."""
    days = settings.INBOUND_EVENT_RETENTION_DAYS if days is None else days
    if not days or days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = InboundEvent.objects.filter(
        status__in=[InboundEvent.Status.PROCESSED, InboundEvent.Status.IGNORED], received_at__lt=cutoff
    )
    purged = 0
    while True:
        ids = list(old.order_by("received_at", "pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return purged
        purged += InboundEvent.objects.filter(pk__in=ids).delete()[0]


# --- Tasks (thin) --------------------------------------------------------------------------------


@shared_task(name="cases.privacy.run_erasure_request", ignore_result=True)
def run_erasure_request(request_id: int) -> None:
    erasure_request_run(request_id=request_id)


@shared_task(name="cases.privacy.retention_sweep", ignore_result=True)
def retention_sweep() -> dict:
    """Beat: purge raw events past their retention, and run erasure requests whose task was lost."""
    return {"purged": inbound_events_purge(), "erasures": erasure_requests_sweep()}
