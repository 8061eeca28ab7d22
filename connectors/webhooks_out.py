"""Outbound webhooks: admins subscribe URLs to events; each event is POSTed, signed, retried and logged.

How an event leaves
    A service calls :func:`emit` inside its transaction. One ``WebhookDelivery`` row per
    matching subscription is written in that same transaction (so a committed change
    never loses its event, and a rolled-back one never sends), and after commit a task
    per row tries to send it.

What a receiver gets
    ``POST <url>`` with a JSON body ``{"id", "type", "created_at", "data"}`` and the
    headers ``X-Caseline-Event``, ``X-Caseline-Delivery`` (the event id; the same for a
    retried delivery, so receivers can drop repeats), ``X-Caseline-Timestamp`` (Unix
    seconds) and ``X-Caseline-Signature: sha256=<hex>``: HMAC-SHA256 with the
    subscription's secret over ``<timestamp>.<body>``. See :func:`signature_valid`.

Retries
    Any answer other than 2xx, a timeout or a refused connection is a failed attempt.
    Attempts back off exponentially (30 s doubling, at most 6 h, honouring a
    Retry-After); after ``MAX_ATTEMPTS`` the delivery is failed for good. After
    ``DISABLE_AFTER_FAILURES`` failed attempts in a row the subscription is switched off
    and its pending deliveries end failed. Every attempt updates the delivery log
    (status code, the start of the response, the error).

Where a webhook may go
    Only to public addresses: a URL naming a loopback, private, link-local or otherwise
    non-global address is refused when it is registered, and every attempt resolves the
    host again and refuses to connect if any of its addresses is not public (so a name
    that later points inside the network sends nothing). The attempt then connects to
    exactly the addresses it checked, never resolving the name a second time, so a DNS
    answer that changes in between (rebinding) cannot move it; the Host header, TLS SNI
    and the certificate check still name the host. Redirects are not followed, and no
    proxy from the environment is used. ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` lifts the
    check (not the pinning) for receivers on the same network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from cases import permissions
from cases.errors import NotPermitted, ServiceError

from .models import WebhookDelivery, WebhookEvent, WebhookSubscription

logger = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = tuple(WebhookEvent.values)
MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 6 * 3600
DISABLE_AFTER_FAILURES = 20
TIMEOUT_SECONDS = 10.0
# How long an attempt may hold a delivery before another worker may try it again.
ATTEMPT_LEASE = timedelta(seconds=60)
# A retry task that arrives this early still counts as on time.
EARLY_SLACK = timedelta(seconds=5)
RESPONSE_EXCERPT_BYTES = 2048
SIGNATURE_TOLERANCE_SECONDS = 300
# The sweep re-queues attempts this far overdue: their scheduled task was lost.
SWEEP_GRACE = timedelta(minutes=2)

SIGNATURE_HEADER = "X-Caseline-Signature"
TIMESTAMP_HEADER = "X-Caseline-Timestamp"
EVENT_HEADER = "X-Caseline-Event"
DELIVERY_HEADER = "X-Caseline-Delivery"
USER_AGENT = "Caseline-Webhooks/1"


# --- Secrets and signatures ------------------------------------------------------------------


def subscription_secret(subscription: WebhookSubscription) -> str:
    """The signing secret of ``subscription``: derived from SECRET_KEY and its salt, never stored."""
    digest = salted_hmac("caseline.webhooks.signing-secret", subscription.signing_salt, algorithm="sha256")
    return "whsec_" + digest.hexdigest()


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_valid(
    *, secret: str, timestamp: str, body: bytes, header: str, now: float | None = None
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within five minutes."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - sent) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret=secret, timestamp=sent, body=body), header or "")


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before try ``attempt + 1``: 30 s doubling up to 6 h, or the receiver's Retry-After."""
    if retry_after is not None:
        return float(max(1.0, min(retry_after, MAX_DELAY_SECONDS)))
    return float(min(BASE_DELAY_SECONDS * 2 ** max(attempt - 1, 0), MAX_DELAY_SECONDS))


# --- Subscriptions ---------------------------------------------------------------------------


def _require_admin(actor) -> None:
    if not permissions.is_admin(actor):
        raise NotPermitted("Only admins manage webhook subscriptions.")


def _clean_event_types(event_types) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise ServiceError("Choose at least one event type.", field="event_types")
    unknown = sorted({str(e) for e in event_types} - set(EVENT_TYPES))
    if unknown:
        raise ServiceError(f"Unknown event types: {', '.join(unknown)}.", field="event_types")
    return sorted(set(event_types), key=EVENT_TYPES.index)


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if not url.lower().startswith(("https://", "http://")):
        raise ServiceError("The URL must start with https:// or http://.", field="url")
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise ServiceError("The URL has no host name.", field="url")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        refused = _refused_address(host, _addresses(host, resolve=False))
        if refused:
            raise ServiceError(
                f"The URL points {refused}; webhooks go to public addresses only.", field="url"
            )
    return url


def _addresses(host: str, *, resolve: bool) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """What ``host`` stands for: an IP literal itself; a name, when ``resolve`` is set, every
    address the resolver answers (in its order, once each; ``OSError`` when it does not
    resolve), and nothing otherwise."""
    name = host.strip("[]")
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        if not resolve:
            return []
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def _refused_address(host: str, addresses: list) -> str | None:
    """Why a webhook may not go to ``host`` (e.g. "at a loopback address"), or None.

    A local name is refused by its spelling; otherwise ``host`` is judged by ``addresses``
    (:func:`_addresses`): at delivery every address the name resolved to, at registration
    only an IP literal (the receiver's DNS may not be ready yet).
    """
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return f"at {name}, a local name"
    for address in addresses:
        if not address.is_global:
            return f"at {address}, which is not a public address"
    return None


@transaction.atomic
def webhook_subscription_create(
    *, name: str, url: str, event_types: list[str], actor
) -> tuple[WebhookSubscription, str]:
    """Register ``url`` for ``event_types`` (admins only); returns ``(subscription, secret)``.

    The secret is shown to the admin once, here; it is derived, not stored.
    """
    _require_admin(actor)
    name = (name or "").strip()
    if not name:
        raise ServiceError("Give the subscription a name.", field="name")
    subscription = WebhookSubscription.objects.create(
        name=name[:120],
        url=_clean_url(url),
        event_types=_clean_event_types(event_types),
        signing_salt=secrets.token_hex(32),
        created_by=actor,
    )
    return subscription, subscription_secret(subscription)


@transaction.atomic
def webhook_subscription_update(
    *,
    subscription: WebhookSubscription,
    actor,
    name: str | None = None,
    url: str | None = None,
    event_types: list[str] | None = None,
    is_active: bool | None = None,
) -> WebhookSubscription:
    """Change a subscription (admins only). Switching it on again clears its failure count."""
    _require_admin(actor)
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if name is not None:
        if not name.strip():
            raise ServiceError("Give the subscription a name.", field="name")
        subscription.name = name.strip()[:120]
    if url is not None:
        subscription.url = _clean_url(url)
    if event_types is not None:
        subscription.event_types = _clean_event_types(event_types)
    if is_active is not None and is_active != subscription.is_active:
        subscription.is_active = is_active
        if is_active:
            subscription.failure_count = 0
            subscription.disabled_at = None
    subscription.save()
    return subscription


@transaction.atomic
def webhook_subscription_rotate_secret(
    *, subscription: WebhookSubscription, actor
) -> tuple[WebhookSubscription, str]:
    """Give ``subscription`` a new secret at once (admins only); returns it, shown once."""
    _require_admin(actor)
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    subscription.signing_salt = secrets.token_hex(32)
    subscription.save(update_fields=["signing_salt", "updated_at"])
    return subscription, subscription_secret(subscription)


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription, actor) -> None:
    """Remove a subscription and its delivery log (admins only)."""
    _require_admin(actor)
    WebhookSubscription.objects.filter(pk=subscription.pk).delete()


# --- Events ----------------------------------------------------------------------------------


def case_payload(case) -> dict:
    """What webhook events say about a case: its own columns only, so building it costs no query."""
    return {
        "id": case.pk,
        "reference": case.reference,
        "subject": case.subject,
        "status": case.status,
        "priority": case.priority,
        "category": case.category,
        "sla_state": case.sla_state,
        "department_id": case.department_id,
        "assignee_id": case.assignee_id,
        "customer_id": case.customer_id,
        "due_at": case.due_at,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
    }


def message_payload(message) -> dict:
    """What webhook events say about a message (no internal notes are ever emitted)."""
    return {
        "id": message.pk,
        "case_id": message.case_id,
        "channel_id": message.channel_id,
        "identity_id": message.identity_id,
        "author_id": message.author_id,
        "direction": message.direction,
        "kind": message.kind,
        "is_public": message.is_public,
        "external_id": message.external_id,
        "text": message.text,
        "sent_at": message.sent_at,
        "delivery_state": message.delivery_state,
    }


SUBSCRIPTIONS_CACHE_KEY = "webhooks:active-subscriptions"
# How long the list of active subscriptions may be reused. Every change to a subscription
# (services, admin, the failure switch) drops it at once (connectors.apps); the timeout only
# bounds a change made behind the ORM's back.
SUBSCRIPTIONS_CACHE_SECONDS = 60


def active_subscriptions() -> list[tuple[int, list[str]]]:
    """``(id, event types)`` of the active subscriptions, from the cache when it has them,
    so emitting an event nobody subscribed to costs no query on the hot path (ingest)."""
    rows = cache.get(SUBSCRIPTIONS_CACHE_KEY)
    if rows is None:
        rows = list(WebhookSubscription.objects.filter(is_active=True).values_list("pk", "event_types"))
        cache.set(SUBSCRIPTIONS_CACHE_KEY, rows, SUBSCRIPTIONS_CACHE_SECONDS)
    return rows


def subscriptions_changed(**_kwargs) -> None:
    """Forget the cached subscriptions (now and again after the commit that changed them)."""
    cache.delete(SUBSCRIPTIONS_CACHE_KEY)
    transaction.on_commit(lambda: cache.delete(SUBSCRIPTIONS_CACHE_KEY))


def emit(event_type: str, payload: dict) -> list[WebhookDelivery]:
    """Queue ``event_type`` with ``payload`` for every active subscription that wants it.

    Call it inside the transaction of the change it reports: the delivery rows commit
    (or roll back) with it, and the sending tasks start after commit. Costs one query
    when no subscription wants the event, two when some do. ``payload`` must be JSON
    serialisable (datetimes and decimals are converted); raises ``ValueError`` for an
    unknown event type.
    """
    return emit_many(event_type, [payload])


def emit_many(event_type: str, payloads: list[dict]) -> list[WebhookDelivery]:
    """:func:`emit` for many events of one type at once (the SLA sweep): still one query to
    find the subscribers and one INSERT, however many events."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if not payloads:
        return []
    wanted = [pk for pk, types in active_subscriptions() if event_type in (types or [])]
    if not wanted:
        return []
    now = timezone.now()
    rows = []
    for payload in payloads:
        event_id = uuid.uuid4()
        body = json.loads(
            json.dumps(
                {"id": str(event_id), "type": event_type, "created_at": now, "data": payload},
                cls=DjangoJSONEncoder,
            )
        )
        rows += [
            WebhookDelivery(
                subscription_id=pk,
                event_id=event_id,
                event_type=event_type,
                payload=body,
                next_attempt_at=now,
            )
            for pk in wanted
        ]
    deliveries = WebhookDelivery.objects.bulk_create(rows, batch_size=1000)
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: _queue(ids))
    return deliveries


def _queue(ids: list[int]) -> None:
    from .tasks import deliver_webhook

    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)


# --- Delivery --------------------------------------------------------------------------------


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Take a pending delivery whose attempt is due, under a lease; None when not ours to send."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription")
            .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + EARLY_SLACK))
            .first()
        )
        if delivery is None:
            return None
        if not delivery.subscription.is_active:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.error = "The subscription is switched off."
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "error", "next_attempt_at"])
            return None
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + ATTEMPT_LEASE
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
        return delivery


def _post(delivery: WebhookDelivery) -> tuple[int | None, str, str, float | None]:
    """Send one attempt; returns (status code, response excerpt, error, Retry-After seconds)."""
    subscription = delivery.subscription
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.event_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret=subscription_secret(subscription), timestamp=timestamp, body=body),
    }
    url = httpx.URL(subscription.url)
    host = url.raw_host.decode("ascii")
    try:
        addresses = _addresses(host, resolve=True)
    except OSError as exc:
        return None, "", f"ConnectError: {host} does not resolve: {exc}"[:1000], None
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        refused = _refused_address(host, addresses)
        if refused:
            return None, "", f"Not sent: the URL now points {refused}.", None
    # The name was resolved once, above: connect to the addresses just checked (not to what
    # the name resolves to a moment later), speaking to them as ``host``.
    headers["Host"] = url.netloc.decode("ascii")
    error = f"ConnectError: {host} has no address"
    for address in addresses:
        try:
            return _send(url.copy_with(host=str(address)), host=host, body=body, headers=headers)
        except httpx.ConnectError as exc:  # nothing was sent: try the host's next address
            error = f"ConnectError: {address}: {exc}"
        except httpx.HTTPError as exc:
            return None, "", f"{exc.__class__.__name__}: {exc}"[:1000], None
    return None, "", error[:1000], None


def _send(url: httpx.URL, *, host: str, body: bytes, headers: dict) -> tuple[int, str, str, float | None]:
    """POST ``body`` to ``url``, whose host is an IP address, as ``host``: the caller sets the
    Host header, and TLS sends ``host`` as SNI and checks the certificate against it."""
    # No proxy from the environment (it would resolve the name again); the CA bundle still
    # follows SSL_CERT_FILE / SSL_CERT_DIR.
    with (
        httpx.Client(
            trust_env=False,
            verify=httpx.create_ssl_context(),
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
        ) as client,
        client.stream(
            "POST", url, content=body, headers=headers, extensions={"sni_hostname": host}
        ) as response,
    ):
        excerpt = b""
        for chunk in response.iter_bytes():
            excerpt += chunk
            if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                break
        text = excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
        if response.is_success:
            return response.status_code, text, "", None
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return response.status_code, text, f"HTTP {response.status_code}", retry_after


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _record(delivery: WebhookDelivery, *, status_code, excerpt, error, retry_after, now) -> float | None:
    with transaction.atomic():
        delivery.response_status = status_code
        delivery.response_excerpt = excerpt
        subscription_id = delivery.subscription_id
        if not error:
            delivery.status = WebhookDelivery.Status.DELIVERED
            delivery.delivered_at = now
            delivery.error = ""
            delivery.next_attempt_at = None
            delivery.save()
            WebhookSubscription.objects.filter(pk=subscription_id, failure_count__gt=0).update(
                failure_count=0
            )
            return None
        delivery.error = f"Attempt {delivery.attempts}: {error}"
        WebhookSubscription.objects.filter(pk=subscription_id).update(failure_count=F("failure_count") + 1)
        disabled = WebhookSubscription.objects.filter(
            pk=subscription_id, is_active=True, failure_count__gte=DISABLE_AFTER_FAILURES
        ).update(is_active=False, disabled_at=now)
        subscriptions_changed()
        if disabled:
            logger.warning("webhook subscription %s switched off after repeated failures", subscription_id)
            WebhookDelivery.objects.filter(
                subscription_id=subscription_id, status=WebhookDelivery.Status.PENDING
            ).exclude(pk=delivery.pk).update(
                status=WebhookDelivery.Status.FAILED,
                error="The subscription was switched off after repeated failures.",
                next_attempt_at=None,
            )
        if disabled or delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.next_attempt_at = None
            delivery.save()
            return None
        delay = backoff_seconds(delivery.attempts, retry_after)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        delivery.save()
        return delay


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> float | None:
    """Try to send one pending delivery once, if its attempt is due and no other worker has it.

    Returns the seconds until the next attempt, or None when there is nothing more to do
    (delivered, failed for good, not due, or taken). The HTTP call runs outside any
    transaction; a lease on ``next_attempt_at`` keeps a second worker from sending the
    same attempt meanwhile.
    """
    now = now or timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    status_code, excerpt, error, retry_after = _post(delivery)
    return _record(
        delivery, status_code=status_code, excerpt=excerpt, error=error, retry_after=retry_after, now=now
    )


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose attempt is overdue (a lost task, a worker restart), oldest first."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now - SWEEP_GRACE
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
