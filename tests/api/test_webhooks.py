"""Outbound webhooks against a real HTTP server on 127.0.0.1: signed, retried with backoff,
logged, and switched off after repeated failures."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from connectors import webhooks_out
from connectors.models import WebhookDelivery, WebhookSubscription
from connectors.tasks import redeliver_webhooks

from .conftest import session_client
from .receiver import FakeNetwork, self_signed_certificate, start_receiver

# A receiver's name, and a public address for it: FakeNetwork decides what answers there.
RECEIVER_NAME = "hooks.example.test"
PUBLIC_ADDRESS = "93.184.215.14"


@pytest.fixture(autouse=True)
def _receivers_on_this_machine(settings):
    """The test receiver listens on 127.0.0.1, which production refuses (see the tests at the end)."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


@pytest.fixture
def receiver():
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def network(monkeypatch):
    return FakeNetwork(monkeypatch)


@pytest.fixture
def subscription(world, receiver):
    subscription, secret = webhooks_out.webhook_subscription_create(
        name="BI", url=receiver.url, event_types=["case.created", "message.received"], actor=world.admin
    )
    subscription.secret = secret
    return subscription


def _unused_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone"


def test_an_event_is_posted_signed_after_commit(
    world, subscription, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        deliveries = webhooks_out.emit("case.created", webhooks_out.case_payload(world.case))
        assert receiver.requests == [], "nothing leaves before the commit"
    assert len(deliveries) == 1
    [request] = receiver.requests
    headers = request.headers
    assert request.path == "/hooks/caseline"
    assert headers["content-type"] == "application/json"
    assert headers["x-caseline-event"] == "case.created"
    assert webhooks_out.signature_valid(
        secret=subscription.secret,
        timestamp=headers["x-caseline-timestamp"],
        body=request.body,
        header=headers["x-caseline-signature"],
    )
    expected = webhooks_out.signature(
        secret=subscription.secret, timestamp=int(headers["x-caseline-timestamp"]), body=request.body
    )
    assert headers["x-caseline-signature"] == expected and expected.startswith("sha256=")
    body = json.loads(request.body)
    assert body["type"] == "case.created" and body["id"] == headers["x-caseline-delivery"]
    assert body["data"]["reference"] == world.case.reference
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert delivery.response_excerpt == '{"ok": true}'


def test_a_tampered_body_or_an_old_timestamp_fails_verification(subscription):
    body = b'{"type":"case.created"}'
    now = 1_800_000_000
    header = webhooks_out.signature(secret=subscription.secret, timestamp=now, body=body)
    valid = {"secret": subscription.secret, "timestamp": str(now), "header": header, "now": now}
    assert webhooks_out.signature_valid(body=body, **valid)
    assert not webhooks_out.signature_valid(body=body + b" ", **valid)
    assert not webhooks_out.signature_valid(body=body, **{**valid, "now": now + 301})
    assert not webhooks_out.signature_valid(body=body, **{**valid, "secret": "whsec_other"})


def _failing_change():
    with transaction.atomic():
        webhooks_out.emit("case.created", {"id": 1})
        raise RuntimeError("the change failed")


def test_a_rolled_back_change_sends_nothing(
    world, subscription, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        _failing_change()
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_only_subscribers_of_the_event_type_get_it(world, subscription, receiver):
    other, _ = webhooks_out.webhook_subscription_create(
        name="Escalations", url=receiver.url, event_types=["case.escalated"], actor=world.admin
    )
    assert webhooks_out.emit("sla.breached", {"id": 1}) == []
    assert [d.subscription_id for d in webhooks_out.emit("case.escalated", {"id": 1})] == [other.pk]
    with pytest.raises(ValueError, match="unknown webhook event type"):
        webhooks_out.emit("case.exploded", {})


def test_failures_retry_with_exponential_backoff_then_give_up(world, subscription, receiver):
    receiver.answer(*[500] * webhooks_out.MAX_ATTEMPTS)
    [delivery] = webhooks_out.emit("case.created", {"id": 1})
    now = timezone.now()
    delays = []
    for _ in range(webhooks_out.MAX_ATTEMPTS):
        delay = webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
        # An early retry is refused: the attempt is not due yet.
        assert webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk, now=now) is None
        delays.append(delay)
        now += timedelta(seconds=delay or 0)
    assert delays == [30, 60, 120, 240, 480, 960, 1920, None]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 8, 500)
    assert delivery.error == "Attempt 8: HTTP 500"
    assert delivery.response_excerpt.startswith("receiver says no") and len(delivery.response_excerpt) == 2048
    assert len(receiver.requests) == 8
    assert len({r.headers["x-caseline-delivery"] for r in receiver.requests}) == 1, "one id for every retry"


def test_a_success_after_failures_resets_the_failure_count(world, subscription, receiver):
    receiver.answer(503, headers={"Retry-After": "7"})
    [delivery] = webhooks_out.emit("case.created", {"id": 1})
    now = timezone.now()
    assert webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk, now=now) == 7
    assert WebhookSubscription.objects.get(pk=subscription.pk).failure_count == 1
    assert (
        webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(seconds=7)) is None
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error) == ("delivered", 2, "")
    assert WebhookSubscription.objects.get(pk=subscription.pk).failure_count == 0


def test_a_dead_receiver_is_switched_off_after_repeated_failures(world, subscription, monkeypatch):
    monkeypatch.setattr(webhooks_out, "DISABLE_AFTER_FAILURES", 3)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(url=_unused_port_url())
    first, second = (webhooks_out.emit("case.created", {"id": n})[0] for n in (1, 2))
    now = timezone.now()
    assert webhooks_out.webhook_delivery_attempt(delivery_id=first.pk, now=now) == 30
    assert webhooks_out.webhook_delivery_attempt(delivery_id=second.pk, now=now) == 30
    assert (
        webhooks_out.webhook_delivery_attempt(delivery_id=first.pk, now=now + timedelta(seconds=30)) is None
    )
    subscription.refresh_from_db()
    assert not subscription.is_active and subscription.disabled_at is not None
    assert subscription.failure_count == 3
    statuses = dict(WebhookDelivery.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "failed", second.pk: "failed"}
    first.refresh_from_db()
    assert first.response_status is None and "ConnectError" in first.error
    # Nothing is queued for a switched-off subscription; an admin switches it back on.
    assert webhooks_out.emit("case.created", {"id": 3}) == []
    response = session_client(world.admin).patch(
        f"/api/v1/webhooks/{subscription.pk}/", {"is_active": True}, format="json"
    )
    assert response.json()["is_active"] is True and response.json()["failure_count"] == 0


def test_the_task_delivers_and_the_sweep_requeues_lost_attempts(
    world, subscription, receiver, django_capture_on_commit_callbacks
):
    # Celery runs inline in tests: emit's after-commit hook runs the task at once.
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = webhooks_out.emit("message.received", {"id": 9})
    assert len(receiver.requests) == 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="pending", next_attempt_at=timezone.now() - timedelta(minutes=10)
    )
    assert redeliver_webhooks() == 1
    assert len(receiver.requests) == 2
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered"


def test_admins_manage_subscriptions_and_see_the_delivery_log(
    world, receiver, django_capture_on_commit_callbacks
):
    admin = session_client(world.admin)
    created = admin.post(
        "/api/v1/webhooks/",
        {"name": "Ops", "url": receiver.url, "event_types": ["sla.breached", "sla.at_risk"]},
        format="json",
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    subscription = WebhookSubscription.objects.get(pk=created.json()["id"])
    assert secret not in json.dumps(admin.get(f"/api/v1/webhooks/{subscription.pk}/").json())
    assert secret not in {str(v) for v in subscription.__dict__.values()}, "the secret is not stored"
    assert webhooks_out.subscription_secret(subscription) == secret

    rotated = admin.post(f"/api/v1/webhooks/{subscription.pk}/rotate-secret/").json()["secret"]
    assert rotated != secret
    with django_capture_on_commit_callbacks(execute=True):
        webhooks_out.emit("sla.breached", {"case_id": world.case.pk})
    request = receiver.requests[-1]
    assert webhooks_out.signature_valid(
        secret=rotated,
        timestamp=request.headers["x-caseline-timestamp"],
        body=request.body,
        header=request.headers["x-caseline-signature"],
    )
    log = admin.get(f"/api/v1/webhooks/{subscription.pk}/deliveries/").json()["results"]
    assert [(row["event_type"], row["status"], row["response_status"]) for row in log] == [
        ("sla.breached", "delivered", 200)
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "url": "ftp://example.test/", "event_types": ["case.created"]}, "url"),
        ({"name": "x", "url": "https://example.test/", "event_types": []}, "event_types"),
        ({"name": "x", "url": "https://example.test/", "event_types": ["case.deleted"]}, "event_types.0"),
    ],
)
def test_a_bad_subscription_names_the_field(world, body, field):
    response = session_client(world.admin).post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_many_events_cost_two_queries(world, subscription, django_assert_num_queries):
    payloads = [{"case_id": n, "sla_state": "breached"} for n in range(50)]
    with django_assert_num_queries(0):
        assert webhooks_out.emit_many("message.received", []) == []
    with django_assert_num_queries(1):
        assert webhooks_out.emit_many("sla.breached", payloads) == []  # nobody subscribed to it
    with django_assert_num_queries(1):  # the subscribers are cached now: one INSERT
        deliveries = webhooks_out.emit_many("message.received", payloads)
    assert len({d.event_id for d in deliveries}) == 50


def test_the_cached_subscriber_list_follows_every_change(world, subscription):
    payload = [{"case_id": 1}]
    assert len(webhooks_out.emit_many("message.received", payload)) == 1  # cached from here on

    # switched off behind the services' back (the admin saves the model directly)
    subscription.is_active = False
    subscription.save()
    assert webhooks_out.emit_many("message.received", payload) == []

    subscription.is_active = True
    subscription.save()
    assert len(webhooks_out.emit_many("message.received", payload)) == 1
    subscription.delete()
    assert webhooks_out.emit_many("message.received", payload) == []


def test_services_and_ingest_emit_what_subscribers_asked_for(world, subscription):
    from cases import ingest, services
    from tests.test_ingest import tweet

    channel = world.case.origin_channel or world.case.last_channel
    # a webhook-borne tweet from a new customer opens a case: case.created + message.received
    ingest.ingest(channel=channel, inbound=tweet("wh-1"))
    kinds = list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True))
    assert kinds == ["case.created", "message.received"]

    # a case opened by hand emits case.created; a claim is not subscribed to and emits nothing
    services.case_open(customer=world.case.customer, channel=channel)
    assert WebhookDelivery.objects.filter(event_type="case.created").count() == 2
    assert not WebhookDelivery.objects.filter(event_type="case.assigned").exists()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1"),
        ("http://[::1]/hook", "::1"),
        ("https://10.1.2.3/hook", "10.1.2.3"),
        ("https://192.168.0.10/hook", "192.168.0.10"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # cloud metadata
        ("http://localhost:9200/", "localhost"),
        ("https://db.internal/hook", "db.internal"),
    ],
)
def test_private_addresses_are_refused_when_registered(world, settings, url, why):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    client = session_client(world.admin)

    response = client.post(
        "/api/v1/webhooks/", {"name": "Probe", "url": url, "event_types": ["case.created"]}, format="json"
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == "url" and why in error["message"] and "public addresses only" in error["message"]
    assert not WebhookSubscription.objects.filter(name="Probe").exists()


def test_a_public_url_is_accepted(world, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    subscription, _ = webhooks_out.webhook_subscription_create(
        name="BI", url="https://93.184.215.14/hook", event_types=["case.created"], actor=world.admin
    )
    assert subscription.url == "https://93.184.215.14/hook"


def test_a_name_that_resolves_inside_the_network_is_not_sent_to(world, receiver, settings):
    """A name passes registration (its DNS may not be ready yet) but is resolved again at
    every attempt: this machine's own name resolves to a loopback or private address."""
    host = socket.gethostname()
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        pytest.skip("this machine's name does not resolve")
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    subscription, _ = webhooks_out.webhook_subscription_create(
        name="BI",
        url=receiver.url.replace("127.0.0.1", host),
        event_types=["case.created"],
        actor=world.admin,
    )
    [delivery] = webhooks_out.emit("case.created", {"case": {"id": world.case.pk}})

    webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert receiver.requests == []
    assert delivery.response_status is None and delivery.status == WebhookDelivery.Status.PENDING
    assert "not a public address" in delivery.error and subscription.pk == delivery.subscription_id


def _attempt_by_name(world, receiver) -> WebhookDelivery:
    """Subscribe ``receiver`` under RECEIVER_NAME, emit one event and attempt it once."""
    webhooks_out.webhook_subscription_create(
        name="BI",
        url=receiver.url.replace("127.0.0.1", RECEIVER_NAME),
        event_types=["case.created"],
        actor=world.admin,
    )
    [delivery] = webhooks_out.emit("case.created", {"case": {"id": world.case.pk}})
    webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


@pytest.mark.parametrize("inside", ["127.0.0.1", "10.0.0.5", "169.254.169.254"])
def test_a_name_rebound_after_its_check_is_not_followed_inside(world, receiver, network, settings, inside):
    """DNS rebinding: the name answers a public address to the check and an inside one after
    (where the receiver stands in for a service on the network). The attempt connects to the
    address it checked and never asks the resolver again."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    network.answers[RECEIVER_NAME] = [PUBLIC_ADDRESS, inside]
    network.routes[inside] = "127.0.0.1"

    delivery = _attempt_by_name(world, receiver)

    assert receiver.requests == [], "the inside address was reached"
    assert network.lookups == [RECEIVER_NAME]
    assert network.connects == [(PUBLIC_ADDRESS, receiver.port)]
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.response_status is None
    assert delivery.error.startswith(f"Attempt 1: ConnectError: {PUBLIC_ADDRESS}: ")


def test_a_delivery_connects_to_the_address_it_checked_and_names_the_host(world, receiver, network, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    network.answers[RECEIVER_NAME] = [PUBLIC_ADDRESS]
    network.routes[PUBLIC_ADDRESS] = "127.0.0.1"  # the receiver is the public host

    delivery = _attempt_by_name(world, receiver)

    assert delivery.status == WebhookDelivery.Status.DELIVERED, delivery.error
    assert network.lookups == [RECEIVER_NAME]
    assert network.connects == [(PUBLIC_ADDRESS, receiver.port)]
    [request] = receiver.requests
    assert request.headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"


def test_an_unreachable_address_falls_through_to_the_next_one_checked(world, receiver, network, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    network.answers[RECEIVER_NAME] = [("93.184.215.15", PUBLIC_ADDRESS)]
    network.routes[PUBLIC_ADDRESS] = "127.0.0.1"

    delivery = _attempt_by_name(world, receiver)

    assert delivery.status == WebhookDelivery.Status.DELIVERED, delivery.error
    assert network.connects == [("93.184.215.15", receiver.port), (PUBLIC_ADDRESS, receiver.port)]
    assert len(receiver.requests) == 1


def test_tls_to_the_pinned_address_names_and_verifies_the_host(
    world, network, settings, monkeypatch, tmp_path
):
    """Over https the connection goes to the IP, while SNI and the certificate check use the
    name: the receiver's certificate is for the name only, so checking it against the IP fails."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    certificate = self_signed_certificate(RECEIVER_NAME, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    receiver, server = start_receiver(certificate=certificate)
    network.answers[RECEIVER_NAME] = [PUBLIC_ADDRESS]
    network.routes[PUBLIC_ADDRESS] = "127.0.0.1"
    try:
        delivery = _attempt_by_name(world, receiver)
    finally:
        server.shutdown()
        server.server_close()

    assert delivery.status == WebhookDelivery.Status.DELIVERED, delivery.error
    assert network.connects == [(PUBLIC_ADDRESS, receiver.port)]
    assert receiver.server_names == [RECEIVER_NAME]
    assert receiver.requests[0].headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"


def test_a_redirect_is_not_followed(world, subscription, receiver):
    elsewhere, server = start_receiver()
    receiver.answer(307, headers={"Location": elsewhere.url})
    try:
        [delivery] = webhooks_out.emit("case.created", {"id": 1})
        webhooks_out.webhook_delivery_attempt(delivery_id=delivery.pk)
    finally:
        server.shutdown()
        server.server_close()

    delivery.refresh_from_db()
    assert (delivery.response_status, delivery.error) == (307, "Attempt 1: HTTP 307")
    assert len(receiver.requests) == 1 and elsewhere.requests == []
