"""Erase a customer's personal data in one transaction, keeping the audit trail."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from connectors.models import InboundEvent, WebhookDelivery
from customers.models import Customer, CustomerMerge, ErasureRequest, Identity, IdentitySuggestion

from .. import permissions
from ..errors import NotPermitted
from ..models import Attachment, Case, CaseEvent, Message, SatisfactionSurvey
from .common import (
    ERASED,
    ERASED_HEADER,
    MIN_RAW_TOKEN,
    MIN_TEXT_TOKEN,
    ErasureConflict,
    customer_group,
    group_messages_q,
    group_suggestions_q,
    is_digest,
    raw_events,
    raw_needles,
)

logger = logging.getLogger(__name__)


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
    messages = Message.objects.filter(group_messages_q(customer_ids, identity_ids))
    message_ids = list(messages.values_list("pk", flat=True))
    written = list(
        messages.filter(direction=Message.Direction.IN)
        .exclude(external_id="")
        .values_list("external_id", flat=True)
    )
    counts: dict[str, int] = {"customers": len(group), "cases": len(case_ids), "messages": len(message_ids)}

    # Raw webhooks first: they are found by the ids about to be erased.
    raw_ids = list(raw_events(raw_needles(identities, written)).values_list("pk", flat=True))
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
        if not is_digest(event.delivery_id):
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
    # Survey answers keep their rating for the reports; what the customer wrote goes.
    counts["survey_comments"] = (
        SatisfactionSurvey.objects.filter(case_id__in=case_ids).exclude(comment="").update(comment="")
    )

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
        group_suggestions_q(customer_ids, identities)
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
