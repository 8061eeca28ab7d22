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

The package by job: ``export``, ``erase``, ``deletion_requests``, ``retention``, and
``common`` (constants, and who counts as one person); the tasks are defined here.
"""

from __future__ import annotations

from celery import shared_task

from .common import ERASED, ERASED_HEADER, ErasureConflict, customer_group
from .deletion_requests import (
    SignedRequestError,
    SignedRequestForged,
    erasure_request_run,
    erasure_requests_sweep,
    meta_app_secrets,
    meta_deletion_request,
    meta_signed_request_parse,
    subject_digest,
)
from .erase import customer_erase, pseudonym
from .export import customer_export, customer_export_zip, export_filename, export_json_bytes
from .retention import inbound_events_purge

__all__ = [
    "ERASED",
    "ERASED_HEADER",
    "ErasureConflict",
    "SignedRequestError",
    "SignedRequestForged",
    "customer_erase",
    "customer_export",
    "customer_export_zip",
    "customer_group",
    "erasure_request_run",
    "erasure_requests_sweep",
    "export_filename",
    "export_json_bytes",
    "inbound_events_purge",
    "meta_app_secrets",
    "meta_deletion_request",
    "meta_signed_request_parse",
    "pseudonym",
    "subject_digest",
]


@shared_task(name="cases.privacy.run_erasure_request", ignore_result=True)
def run_erasure_request(request_id: int) -> None:
    erasure_request_run(request_id=request_id)


@shared_task(name="cases.privacy.retention_sweep", ignore_result=True)
def retention_sweep() -> dict:
    """Beat: purge raw events past their retention, and run erasure requests whose task was lost."""
    return {"purged": inbound_events_purge(), "erasures": erasure_requests_sweep()}
