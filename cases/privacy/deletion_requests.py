"""Erasure requests: Meta's data-deletion callback (a signed request), recorded and run."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from connectors.models import Channel
from customers.models import Customer, ErasureRequest, Identity

from ..errors import ServiceError
from .common import ERASURE_SWEEP_AFTER, META_KINDS
from .erase import customer_erase

logger = logging.getLogger(__name__)


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
    from . import run_erasure_request  # the task, defined with the package

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
