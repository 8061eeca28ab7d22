"""The webhook view and the durable inbox, through real requests to /webhooks/<slug>/."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
from contextlib import contextmanager

import pytest
from django.core.management import call_command

from cases import ingest, services
from cases.errors import ServiceError
from cases.models import Case, CaseEvent, Message
from connectors import inbox, webhooks_out
from connectors.models import InboundEvent
from customers.models import Customer, Identity
from tests import factories
from tests.connectors.helpers import X_CONSUMER_SECRET, fixture_bytes, fixture_json, post_x_webhook

pytestmark = pytest.mark.django_db


@contextmanager
def another_worker_holding(hold):
    """Inside the block, another connection holds what ``hold()`` takes (row or advisory locks)
    in an open transaction, as a second worker mid-batch would."""
    from django.db import connections, transaction

    held, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                hold()
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(timeout=10), "the other worker never took its locks"
        yield
    finally:
        release.set()
        thread.join(timeout=10)


def deliver(client, channel, body: bytes, capture, **kwargs):
    """POST a webhook and run what it queued after commit (the processing task, inline)."""
    with capture(execute=True):
        return post_x_webhook(client, channel, body, **kwargs)


def body_of(name: str, **changes) -> bytes:
    return json.dumps(fixture_json("x", name) | changes).encode()


# --- the CRC handshake -------------------------------------------------------------------


def test_crc_challenge_answers_hmac_of_token_with_consumer_secret(client, x_channel):
    response = client.get(f"/webhooks/{x_channel.slug}/", {"crc_token": "challenge_string"})

    expected = base64.b64encode(
        hmac.new(X_CONSUMER_SECRET.encode(), b"challenge_string", hashlib.sha256).digest()
    ).decode()
    assert response.status_code == 200
    assert response.json() == {"response_token": f"sha256={expected}"}


def test_crc_without_token_is_a_bad_request(client, x_channel):
    assert client.get(f"/webhooks/{x_channel.slug}/").status_code == 400


def test_unknown_or_inactive_channel_is_404(client, x_channel):
    assert client.get("/webhooks/nobody/", {"crc_token": "t"}).status_code == 404
    x_channel.is_active = False
    x_channel.save(update_fields=["is_active"])
    response = post_x_webhook(client, x_channel, fixture_bytes("x", "mention.json"))
    assert response.status_code == 404
    assert InboundEvent.objects.count() == 0


def test_missing_secret_answers_503_not_500(client, x_channel, monkeypatch):
    monkeypatch.delenv("CASELINE_TEST_X_CONSUMER_SECRET")
    assert client.get(f"/webhooks/{x_channel.slug}/", {"crc_token": "t"}).status_code == 503
    assert post_x_webhook(client, x_channel, fixture_bytes("x", "mention.json")).status_code == 503
    assert InboundEvent.objects.count() == 0


# --- signatures ---------------------------------------------------------------------------


def test_signed_mention_is_stored_processed_and_opens_a_case(
    client, x_channel, django_capture_on_commit_callbacks
):
    body = fixture_bytes("x", "mention.json")

    response = deliver(client, x_channel, body, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == body
    assert event.provider == "x" and event.channel == x_channel
    assert event.delivery_id == hashlib.sha256(body).hexdigest()
    assert event.headers["x-twitter-webhooks-signature"].startswith("sha256=")
    assert event.status == InboundEvent.Status.PROCESSED and event.processed_at is not None
    message = Message.objects.get()
    assert message.external_id == "1050118621198921728"
    assert message.case.subject == "@brand my router has been dead since Monday and nobody answers the phone"
    assert message.case.department == x_channel.department
    assert message.identity.handle == "rosa_d" and message.identity.follower_count == 1200


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=" + base64.b64encode(b"x" * 32).decode(), "not-even-a-signature"],
    ids=["missing", "forged", "garbage"],
)
def test_unsigned_or_forged_post_is_refused_and_nothing_stored(
    client, x_channel, django_capture_on_commit_callbacks, caplog, signature
):
    caplog.set_level(logging.WARNING, logger="connectors.views")

    response = deliver(
        client,
        x_channel,
        fixture_bytes("x", "mention.json"),
        django_capture_on_commit_callbacks,
        signature=signature,
    )

    assert response.status_code == 403
    assert InboundEvent.objects.count() == 0 and Message.objects.count() == 0
    assert "signature refused" in caplog.text


def test_signature_with_another_secret_is_refused(client, x_channel, django_capture_on_commit_callbacks):
    response = deliver(
        client,
        x_channel,
        fixture_bytes("x", "mention.json"),
        django_capture_on_commit_callbacks,
        secret="other",
    )
    assert response.status_code == 403
    assert InboundEvent.objects.count() == 0


def test_body_over_the_upload_limit_is_413_and_not_stored(client, x_channel, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    body = fixture_bytes("x", "mention.json")
    assert len(body) > 200

    response = post_x_webhook(client, x_channel, body)

    assert response.status_code == 413
    assert InboundEvent.objects.count() == 0


# --- duplicates and idempotency ---------------------------------------------------------


def test_duplicate_delivery_is_acknowledged_and_changes_nothing(
    client, x_channel, django_capture_on_commit_callbacks
):
    body = fixture_bytes("x", "mention.json")
    first = deliver(client, x_channel, body, django_capture_on_commit_callbacks)
    second = deliver(client, x_channel, body, django_capture_on_commit_callbacks)

    assert first.status_code == second.status_code == 200
    assert InboundEvent.objects.count() == 1
    assert Message.objects.count() == 1 and Case.objects.count() == 1 and Customer.objects.count() == 1


def test_same_tweet_in_two_different_deliveries_is_one_message(
    client, x_channel, django_capture_on_commit_callbacks
):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    # X re-sends the event in a new envelope (different bytes, so a different delivery id).
    deliver(
        client,
        x_channel,
        body_of("mention.json", user_has_blocked="false"),
        django_capture_on_commit_callbacks,
    )

    assert InboundEvent.objects.count() == 2
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Message.objects.count() == 1
    assert CaseEvent.objects.filter(kind="message_in").count() == 1


def test_processing_an_event_twice_changes_nothing(client, x_channel, django_capture_on_commit_callbacks):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    event = InboundEvent.objects.get()
    events_before = CaseEvent.objects.count()

    again = inbox.inbound_event_process(event_id=event.pk)

    assert again.status == InboundEvent.Status.PROCESSED and again.attempts == 0
    assert again.processed_at == event.processed_at
    assert Message.objects.count() == 1 and CaseEvent.objects.count() == events_before


def test_store_service_reports_duplicates_and_queues_only_new_events(
    x_channel, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first, created = inbox.inbound_event_store(channel=x_channel, delivery_id="d1", body=b"{}")
        again, created_again = inbox.inbound_event_store(channel=x_channel, delivery_id="d1", body=b"{}")

    assert created and not created_again and first.pk == again.pk
    assert len(callbacks) == 1


def test_stored_headers_keep_signatures_and_drop_credentials():
    kept = inbox.selected_headers(
        {
            "Content-Type": "application/json",
            "X-Twitter-Webhooks-Signature": "sha256=abc",
            "Cookie": "sessionid=1",
            "Authorization": "Bearer t",
            "X-Api-Key": "k",
            "Accept": "*/*",
        }
    )
    assert kept == {"content-type": "application/json", "x-twitter-webhooks-signature": "sha256=abc"}


# --- malformed bodies, failures and replay -------------------------------------------------


def test_malformed_json_is_stored_and_marked_failed_not_500(
    client, x_channel, django_capture_on_commit_callbacks
):
    body = b'{"for_user_id": "777", "tweet_create_events": [{"id_str": '

    response = deliver(client, x_channel, body, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert bytes(event.body) == body
    assert event.status == InboundEvent.Status.FAILED and event.attempts == 1
    assert "not JSON" in event.error
    assert Message.objects.count() == 0

    call_command("replay_inbox", stdout=open("/dev/null", "w"))  # noqa: SIM115
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.FAILED and event.attempts == 2


def test_binary_body_is_stored_and_failed(client, x_channel, django_capture_on_commit_callbacks):
    response = deliver(client, x_channel, b"\xff\xfe\x00garbage", django_capture_on_commit_callbacks)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.FAILED and "not UTF-8" in event.error


def test_unexpected_structure_fails_with_the_field_named(
    client, x_channel, django_capture_on_commit_callbacks
):
    payload = fixture_json("x", "mention.json")
    del payload["tweet_create_events"][0]["user"]

    deliver(client, x_channel, json.dumps(payload).encode(), django_capture_on_commit_callbacks)

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.FAILED
    assert "tweet_create_events[0]" in event.error and "user" in event.error


def test_failure_while_ingesting_rolls_back_and_replay_processes_after_the_fix(
    client, x_channel, django_capture_on_commit_callbacks, monkeypatch, capsys
):
    real_ingest = ingest.ingest
    calls = []

    def half_then_broken(*, channel, inbound, **kwargs):
        calls.append(inbound.external_id)
        real_ingest(channel=channel, inbound=inbound, **kwargs)  # writes, then the bug strikes
        raise RuntimeError("threading bug")

    monkeypatch.setattr(ingest, "ingest", half_then_broken)
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)

    event = InboundEvent.objects.get()
    assert calls and event.status == InboundEvent.Status.FAILED and event.attempts == 1
    assert event.error == "RuntimeError: threading bug"
    # Nothing of the half-done work survives.
    assert Message.objects.count() == 0 and Case.objects.count() == 0 and Identity.objects.count() == 0

    monkeypatch.setattr(ingest, "ingest", real_ingest)  # the fix is deployed
    call_command("replay_inbox")

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED and event.error == ""
    assert Message.objects.count() == 1
    assert "1 processed" in capsys.readouterr().out


def test_replay_selects_by_status_id_and_since(x_channel, capsys):
    pending, _ = inbox.inbound_event_store(
        channel=x_channel, delivery_id="p", body=fixture_bytes("x", "mention.json"), enqueue=False
    )
    failed, _ = inbox.inbound_event_store(channel=x_channel, delivery_id="f", body=b"nope", enqueue=False)
    InboundEvent.objects.filter(pk=failed.pk).update(status="failed", attempts=1)

    call_command("replay_inbox", "--id", str(pending.pk))  # default status failed: not this one
    pending.refresh_from_db()
    assert pending.status == "pending"

    call_command("replay_inbox", "--status", "pending", "--since", "2000-01-01")
    pending.refresh_from_db()
    failed.refresh_from_db()
    assert pending.status == "processed"
    assert failed.status == "failed" and failed.attempts == 1

    call_command("replay_inbox", "--status", "all", "--since", "2999-01-01")
    failed.refresh_from_db()
    assert failed.attempts == 1
    assert "nothing to do" in capsys.readouterr().out


# --- threading through real deliveries ----------------------------------------------------


def test_mention_reply_and_dm_from_one_person_are_one_case(
    client, x_channel, django_capture_on_commit_callbacks
):
    for name in ("mention.json", "reply.json", "dm.json"):
        response = deliver(client, x_channel, fixture_bytes("x", name), django_capture_on_commit_callbacks)
        assert response.status_code == 200

    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    case = Case.objects.get()
    assert Customer.objects.count() == 1 and Identity.objects.count() == 1
    mention, reply, dm = case.messages.order_by("sent_at")
    assert [m.kind for m in (mention, reply, dm)] == ["post", "post", "dm"]
    assert reply.reply_to == mention and reply.in_reply_to_external_id == mention.external_id
    assert (mention.is_public, reply.is_public, dm.is_public) == (True, True, False)
    identity = Identity.objects.get()
    # The latest contact's profile wins: the DM's users map says verified, 1203 followers.
    assert identity.verified is True and identity.follower_count == 1203
    assert case.last_channel == x_channel


def test_long_tweet_is_stored_with_its_full_text(client, x_channel, django_capture_on_commit_callbacks):
    deliver(client, x_channel, fixture_bytes("x", "long_tweet.json"), django_capture_on_commit_callbacks)

    message = Message.objects.get()
    full = fixture_json("x", "long_tweet.json")["tweet_create_events"][0]["extended_tweet"]["full_text"]
    assert message.text == full and len(message.text) > 140
    assert "…" not in message.text


def test_echo_of_our_outbound_reply_marks_it_sent(
    client, x_channel, django_capture_on_commit_callbacks, agent
):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    mention = Message.objects.get()
    ours = services.message_add(
        case=mention.case,
        direction="out",
        kind="post",
        text="@rosa_d Sorry about that! Please DM us your account number.",
        channel=x_channel,
        identity=mention.identity,
        author=agent,
        is_public=True,
        reply_to=mention,
        external_id="1050125000000000000",
        delivery_state="queued",
    )

    deliver(client, x_channel, fixture_bytes("x", "echo_reply.json"), django_capture_on_commit_callbacks)

    ours.refresh_from_db()
    assert ours.delivery_state == Message.Delivery.SENT
    assert Message.objects.count() == 2 and Customer.objects.count() == 1
    assert not Identity.objects.filter(platform_id="777").exists()


def test_echo_that_outran_the_send_task_gets_its_platform_id(
    client, x_channel, django_capture_on_commit_callbacks, agent
):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    mention = Message.objects.get()
    ours = services.message_add(
        case=mention.case,
        direction="out",
        kind="post",
        text="@rosa_d Sorry about that! Please DM us your account number.",
        channel=x_channel,
        identity=mention.identity,
        author=agent,
        is_public=True,
        delivery_state="queued",
    )

    deliver(client, x_channel, fixture_bytes("x", "echo_reply.json"), django_capture_on_commit_callbacks)

    ours.refresh_from_db()
    assert ours.external_id == "1050125000000000000" and ours.delivery_state == "sent"
    assert Message.objects.count() == 2


def test_echo_written_in_the_x_app_is_recorded_as_our_reply(
    client, x_channel, django_capture_on_commit_callbacks
):
    deliver(client, x_channel, fixture_bytes("x", "dm.json"), django_capture_on_commit_callbacks)
    case = Case.objects.get()
    assert case.first_response_due_at is not None

    deliver(client, x_channel, fixture_bytes("x", "echo_dm.json"), django_capture_on_commit_callbacks)

    case.refresh_from_db()
    echo = case.messages.get(direction="out")
    assert echo.external_id == "1050160000000000002" and echo.kind == "dm"
    assert echo.delivery_state == "sent" and echo.identity.platform_id == "5150"
    assert case.first_responded_at is not None and case.first_response_due_at is None
    assert Identity.objects.count() == 1  # our own account never becomes a customer


def test_echo_to_a_stranger_is_not_stored(client, x_channel, django_capture_on_commit_callbacks):
    deliver(client, x_channel, fixture_bytes("x", "echo_dm.json"), django_capture_on_commit_callbacks)

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.PROCESSED
    assert Message.objects.count() == 0 and Case.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("favorite.json", "favourites"),
        ("follow_typing.json", "typing indicators"),
        ("retweet.json", "repost"),
    ],
)
def test_activity_without_messages_is_kept_and_ignored(
    client, x_channel, django_capture_on_commit_callbacks, name, reason
):
    response = deliver(client, x_channel, fixture_bytes("x", name), django_capture_on_commit_callbacks)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.IGNORED
    assert reason in event.error
    assert Message.objects.count() == 0 and Customer.objects.count() == 0


def test_events_for_another_account_are_ignored(client, x_channel, django_capture_on_commit_callbacks):
    deliver(client, x_channel, body_of("mention.json", for_user_id="999"), django_capture_on_commit_callbacks)

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.IGNORED and "999" in event.error
    assert Message.objects.count() == 0


def test_dm_with_case_reference_from_a_new_identity_lands_on_that_case(
    client, x_channel, django_capture_on_commit_callbacks, media_root
):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    case = Case.objects.get()
    payload = fixture_json("x", "dm_media.json")
    payload["direct_message_events"][0]["message_create"]["message_data"]["text"] = (
        f"Rosa's partner here, about {case.reference.lower()}: photo of the bill"
    )

    deliver(client, x_channel, json.dumps(payload).encode(), django_capture_on_commit_callbacks)

    dm = Message.objects.get(kind="dm")
    assert dm.case == case
    new_identity = Identity.objects.get(platform_id="6160")
    assert new_identity.customer == case.customer
    assert new_identity.link_source == Identity.LinkSource.VERIFIED
    assert Customer.objects.count() == 1
    attachment = dm.attachments.get()
    assert attachment.external_url.endswith("/bill.jpg") and attachment.content_type == "image/jpeg"
    assert "linked to customer" in CaseEvent.objects.get(message=dm).reason


def test_known_customer_quoting_another_case_reference_is_not_merged(
    client, x_channel, django_capture_on_commit_callbacks
):
    other = factories.CustomerFactory(name="Amy Santiago")
    factories.IdentityFactory(customer=other, kind="x", platform_id="6160", handle="amy_s")
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    case = Case.objects.get()
    payload = fixture_json("x", "dm_media.json")
    payload["direct_message_events"][0]["message_create"]["message_data"]["text"] = f"Re {case.reference}"
    del payload["direct_message_events"][0]["message_create"]["message_data"]["attachment"]

    deliver(client, x_channel, json.dumps(payload).encode(), django_capture_on_commit_callbacks)

    dm = Message.objects.get(kind="dm")
    assert dm.case == case and dm.identity.customer == other
    assert Identity.objects.get(platform_id="6160").customer == other
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0
    assert "customers kept apart" in CaseEvent.objects.get(message=dm).reason


@pytest.mark.django_db(transaction=True)
def test_a_worker_skips_an_event_another_worker_holds(x_channel):
    from django.db import connection, connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    event, _ = inbox.inbound_event_store(
        channel=x_channel, delivery_id="held", body=fixture_bytes("x", "mention.json"), enqueue=False
    )
    outcome = {}

    def second_worker():
        try:
            outcome["result"] = inbox.inbound_event_process(event_id=event.pk)
        finally:
            connections.close_all()

    with transaction.atomic():
        InboundEvent.objects.select_for_update().get(pk=event.pk)  # the first worker is on it
        thread = threading.Thread(target=second_worker)
        thread.start()
        thread.join(timeout=10)

    assert not thread.is_alive() and outcome["result"] is None
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PENDING and Message.objects.count() == 0
    assert inbox.inbound_event_process(event_id=event.pk).status == InboundEvent.Status.PROCESSED


# --- batches ---------------------------------------------------------------------------------


def x_dm_body(dm_id: str, sender: str, text: str = "router still dead") -> bytes:
    event = {
        "type": "message_create",
        "id": dm_id,
        "created_timestamp": "1539208000000",
        "message_create": {
            "target": {"recipient_id": "777"},
            "sender_id": sender,
            "message_data": {"text": text},
        },
    }
    users = {sender: {"id": sender, "name": f"Person {sender}", "screen_name": f"p{sender}"}}
    return json.dumps({"for_user_id": "777", "direct_message_events": [event], "users": users}).encode()


def store(channel, body: bytes, delivery_id: str | None = None):
    event, _ = inbox.inbound_event_store(
        channel=channel, delivery_id=delivery_id or hashlib.sha256(body).hexdigest(), body=body, enqueue=False
    )
    return event


def test_batch_processes_pending_events_and_a_bad_one_fails_alone(x_channel, monkeypatch):
    good = [store(x_channel, fixture_bytes("x", name)) for name in ("mention.json", "reply.json")]
    malformed = store(x_channel, b'{"for_user_id": "777", "tweet_create_events": [')
    broken = store(x_channel, x_dm_body("dm-broken", "6160"))
    late = store(x_channel, fixture_bytes("x", "dm.json"))
    real_ingest = ingest.ingest

    def broken_for_one(*, channel, inbound, **kwargs):
        message = real_ingest(channel=channel, inbound=inbound, **kwargs)  # writes, then fails
        if inbound.external_id == "dm-broken":
            raise RuntimeError("threading bug")
        return message

    monkeypatch.setattr(ingest, "ingest", broken_for_one)

    result = inbox.inbound_events_process_batch(limit=10)

    assert result.events == 5 and not result.more
    assert result.statuses == {"processed": 3, "failed": 2}
    assert (result.messages_created, result.cases_created, result.cases_updated) == (3, 1, 0)
    statuses = dict(InboundEvent.objects.values_list("pk", "status"))
    assert [statuses[e.pk] for e in (*good, late)] == ["processed"] * 3
    assert statuses[malformed.pk] == statuses[broken.pk] == "failed"
    broken.refresh_from_db()
    assert broken.error == "RuntimeError: threading bug" and broken.attempts == 1
    # Nothing of the failed event survives; the others are one conversation.
    assert not Message.objects.filter(external_id="dm-broken").exists()
    assert not Identity.objects.filter(platform_id="6160").exists()
    assert Case.objects.count() == 1 and Message.objects.count() == 3
    # Processed and failed events are not taken again.
    assert inbox.inbound_events_process_batch(limit=10).events == 0


def test_batch_takes_only_the_limit_oldest_first(x_channel):
    events = [store(x_channel, x_dm_body(f"dm{i}", f"90{i}")) for i in range(3)]

    first = inbox.inbound_events_process_batch(limit=2)

    assert first.events == 2 and first.more
    assert list(InboundEvent.objects.filter(status="pending").values_list("pk", flat=True)) == [events[2].pk]
    assert inbox.inbound_events_process_batch(limit=2).events == 1


def test_batch_and_single_event_paths_thread_alike(x_channel):
    store(x_channel, fixture_bytes("x", "mention.json"))
    inbox.inbound_events_process_batch()
    store(x_channel, fixture_bytes("x", "reply.json"))
    store(x_channel, fixture_bytes("x", "dm.json"))

    inbox.inbound_events_process_batch()

    case = Case.objects.get()
    mention, reply, dm = case.messages.order_by("sent_at")
    assert reply.reply_to == mention and dm.kind == "dm"
    # Repeat contact counts the mention (an earlier batch) and the reply (this batch).
    assert (reply.triage["repeat_contacts"], dm.triage["repeat_contacts"]) == (1, 2)
    assert Customer.objects.count() == 1
    assert list(case.events.values_list("kind", flat=True).order_by("id")) == list(
        CaseEvent.objects.filter(case=case).order_by("id").values_list("kind", flat=True)
    )


@pytest.mark.parametrize("follow_ups", [2, 5, 12])
def test_batch_of_follow_ups_costs_three_queries_a_message(x_channel, django_assert_num_queries, follow_ups):
    for i in range(follow_ups):
        store(x_channel, x_dm_body(f"first{i}", f"80{i}"))
    inbox.inbound_events_process_batch()
    for i in range(follow_ups):
        store(x_channel, x_dm_body(f"again{i}", f"80{i}", text="any news?"))

    # Per batch: the events (1), their channels (1), the authors' advisory locks (1), stored
    # messages, identities, early replies and the customers' recent messages (4), triage
    # settings (1), the statuses (1),
    # and here the batch's savepoint (2) inside the test's transaction. Per chunk of ten
    # events, a savepoint (2) and the case events of its messages (1). Per message: the
    # customer's recent case, locked (1), case and message (2).
    chunks = -(-follow_ups // inbox.CHUNK_SIZE)
    with django_assert_num_queries(11 + 3 * chunks + 3 * follow_ups):
        result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": follow_ups} and result.cases_updated == follow_ups
    assert Case.objects.count() == follow_ups and Message.objects.count() == 2 * follow_ups


@pytest.mark.parametrize("conversations", [2, 5, 12])
def test_batch_of_new_conversations_writes_each_table_once_a_chunk(
    x_channel, django_assert_num_queries, conversations
):
    for i in range(conversations):
        store(x_channel, x_dm_body(f"new{i}", f"81{i:02d}"))
    webhooks_out.active_subscriptions()  # cached, as in a running worker

    # Per batch: the events (1), their channels (1), the authors' advisory locks (1), stored
    # messages, identities and early replies (3: no known customer, so no recent messages),
    # triage settings (1), escalation paths (1), keys drawn for its new authors (1), the
    # statuses (1), and here the batch's savepoint (2). Per chunk of ten events: a savepoint
    # (2), its new customers, identities, cases and messages (4: a statement per table), their
    # case events (1).
    chunks = -(-conversations // inbox.CHUNK_SIZE)
    with django_assert_num_queries(12 + 7 * chunks):
        result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": conversations} and result.cases_created == conversations
    assert Case.objects.count() == Customer.objects.count() == Identity.objects.count() == conversations
    for message in Message.objects.select_related("case", "identity"):
        assert message.case.customer_id == message.identity.customer_id
        assert message.case.events.filter(kind="created").count() == 1
        assert message.case.events.filter(message=message, kind="message_in").count() == 1


def test_a_conversation_begun_and_continued_in_one_chunk_threads_as_event_by_event(x_channel):
    # One batch: a DM and a second DM from the same new person; a mention, and a reply to it
    # by someone else (found through the parent's platform id, not the author).
    reply = fixture_json("x", "reply.json")
    reply["tweet_create_events"][0]["user"].update(id=6262, id_str="6262", screen_name="someone_else")
    events = [
        store(x_channel, x_dm_body("chunk-first", "8200")),
        store(x_channel, fixture_bytes("x", "mention.json")),
        store(x_channel, json.dumps(reply).encode()),
        store(x_channel, x_dm_body("chunk-again", "8200", text="hello? any news?")),
    ]

    result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": 4} and result.reruns == {}
    first, again = (
        Message.objects.get(external_id="chunk-first"),
        Message.objects.get(external_id="chunk-again"),
    )
    assert again.case_id == first.case_id and again.identity_id == first.identity_id
    assert again.triage["repeat_contacts"] == 1
    mention, reply = Message.objects.exclude(external_id__startswith="chunk").order_by("sent_at")
    assert reply.reply_to_id == mention.pk and reply.case_id == mention.case_id
    assert reply.identity.customer_id != mention.identity.customer_id
    assert Case.objects.count() == 2 and Customer.objects.count() == 3
    assert {e.status for e in InboundEvent.objects.filter(pk__in=[e.pk for e in events])} == {"processed"}


@pytest.mark.django_db(transaction=True)
def test_a_follow_up_whose_case_another_batch_holds_waits_and_the_rest_go_through(x_channel):

    store(x_channel, x_dm_body("held-first", "8900"))
    inbox.inbound_events_process_batch()
    case = Case.objects.get()
    follow_up = store(x_channel, x_dm_body("held-again", "8900", text="any news?"))
    others = [store(x_channel, x_dm_body(f"free{i}", f"891{i}")) for i in range(12)]

    with another_worker_holding(lambda: Case.objects.select_for_update().get(pk=case.pk)):
        result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": 12, "pending": 1}
    statuses = dict(InboundEvent.objects.values_list("pk", "status"))
    assert statuses[follow_up.pk] == "pending" and {statuses[e.pk] for e in others} == {"processed"}
    assert Message.objects.filter(external_id__startswith="free").count() == 12
    assert inbox.inbound_events_process_batch().statuses == {"processed": 1}
    assert Message.objects.get(external_id="held-again").case_id == case.pk


def test_an_identity_another_worker_stored_meanwhile_is_found_and_the_chunk_runs_again(
    x_channel, monkeypatch
):
    from customers import services as customer_services

    events = [store(x_channel, x_dm_body(f"race{i}", f"870{i}")) for i in range(4)]
    prefetch = ingest.IngestContext.prefetch

    def then_another_worker_stores_one(self, items):
        prefetch(self, items)  # the batch learns that author 8702 is new...
        customer_services.identity_create(kind="x", platform_id="8702", handle="p8702")  # ...too late

    monkeypatch.setattr(ingest.IngestContext, "prefetch", then_another_worker_stores_one)

    result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": 4} and result.reruns == {"race": 1}
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Identity.objects.filter(platform_id="8702").count() == 1
    raced = Message.objects.get(external_id="race2")
    assert raced.identity.handle == "p8702" and raced.case.customer_id == raced.identity.customer_id
    assert Message.objects.count() == len(events) and Customer.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_events_of_an_author_another_batch_holds_wait_for_the_next_batch(x_channel):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks need PostgreSQL")
    busy = [store(x_channel, x_dm_body(f"busy{i}", "8600")) for i in range(2)]
    free = [store(x_channel, x_dm_body(f"calm{i}", f"861{i}")) for i in range(3)]

    def lock_author():  # another worker is writing for author 8600
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [inbox.author_lock_key("x", "8600")])

    with another_worker_holding(lock_author):
        result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": 3, "pending": 2} and result.reruns == {}
    statuses = dict(InboundEvent.objects.values_list("pk", "status"))
    assert {statuses[e.pk] for e in busy} == {"pending"} and {statuses[e.pk] for e in free} == {"processed"}
    assert not Identity.objects.filter(platform_id="8600").exists()
    assert inbox.inbound_events_process_batch().statuses == {"processed": 2}
    assert Case.objects.get(messages__external_id="busy0") == Case.objects.get(messages__external_id="busy1")


def test_batch_writes_each_message_s_case_events_in_the_order_of_the_messages(x_channel):
    bodies = [x_dm_body(f"order{i}", "8800", text=f"message {i}") for i in range(13)]
    for body in bodies:
        store(x_channel, body)

    result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": 13}
    case = Case.objects.get()
    events = list(case.events.order_by("id").values_list("kind", "message__external_id"))
    assert events[0] == ("created", None)
    # each message's events (its own, then triage's) come after the previous message's
    in_order = [m for kind, m in events if m]
    assert list(dict.fromkeys(in_order)) == [f"order{i}" for i in range(13)]
    assert in_order == sorted(in_order, key=lambda m: int(m.removeprefix("order")))
    assert Message.objects.filter(case=case).count() == 13


@pytest.mark.django_db(transaction=True)
def test_a_batch_publishes_its_live_events_after_commit_in_order_in_one_send(x_channel, monkeypatch):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from channels_app import publish
    from channels_app.groups import department_group

    for i in range(3):
        store(x_channel, x_dm_body(f"live{i}", "8811", text=f"message {i}"))
    store(x_channel, x_dm_body("live-broken", "8812"))
    real_ingest = ingest.ingest

    def broken_for_one(*, channel, inbound, **kwargs):
        message = real_ingest(channel=channel, inbound=inbound, **kwargs)  # publishes on commit, then fails
        if inbound.external_id == "live-broken":
            raise RuntimeError("threading bug")
        return message

    monkeypatch.setattr(ingest, "ingest", broken_for_one)
    sends, real_send = [], publish._send
    monkeypatch.setattr(publish, "_send", lambda items: (sends.append(list(items)), real_send(items))[1])
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(department_group(x_channel.department_id), listener)

    result = inbox.inbound_events_process_batch()

    assert result.statuses == {"processed": 3, "failed": 1}
    messages = list(Message.objects.order_by("id").values_list("pk", flat=True))
    assert len(messages) == 3
    # one send after the commit, the batch's events in commit order, none of the failed event
    assert len(sends) == 1
    added = [event["message_id"] for event, _ in sends[0] if event["type"] == "message.added"]
    assert added == messages
    # and through the real channel layer the department hears them in that order

    async def heard() -> list[int]:
        ids = []
        while len(ids) < len(messages):
            message = await asyncio.wait_for(layer.receive(listener), timeout=5)
            if message["event"]["type"] == "message.added":
                ids.append(message["event"]["message_id"])
        return ids

    assert async_to_sync(heard)() == messages


# --- moving a public conversation to a private channel ----------------------------------------

MAIL_SECRET_ENV = {"webhook_secret": "CASELINE_TEST_INBOX_MAIL_SECRET"}
MAIL_BASIC_AUTH = "inbound:mail-secret-not-real"


@pytest.fixture
def mailbox(department, monkeypatch):
    monkeypatch.setenv(MAIL_SECRET_ENV["webhook_secret"], MAIL_BASIC_AUTH)
    channel = factories.ChannelFactory(
        kind="email",
        slug="support-mail",
        department=department,
        account_id="support@caseline.example",
        secret_env=dict(MAIL_SECRET_ENV),
    )
    factories.ServicePromiseFactory(channel=channel)
    return channel


def post_mail(client, channel, raw: bytes, capture):
    with capture(execute=True):
        return client.post(
            f"/webhooks/{channel.slug}/",
            data=raw,
            content_type="message/rfc822",
            HTTP_AUTHORIZATION="Basic " + base64.b64encode(MAIL_BASIC_AUTH.encode()).decode(),
        )


def test_move_to_dm_invites_with_a_deep_link_and_the_dm_lands_on_the_case(
    client, x_channel, agent, django_capture_on_commit_callbacks
):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    case = Case.objects.get()

    with django_capture_on_commit_callbacks():  # the send task is the outbox's to test
        reply = services.case_move_to_private(
            case=case, actor=agent, channel=x_channel, private_channel_kind="dm"
        )

    case.refresh_from_db()
    assert reply.is_public and reply.delivery_state == "queued" and reply.reply_to.external_id
    assert "https://x.com/messages/compose?recipient_id=777" in reply.text and case.reference in reply.text
    assert case.status == Case.Status.WAITING_ON_CUSTOMER
    assert "direct message" in case.events.filter(kind="status").last().reason
    # The customer writes from another X account, quoting the reference.
    payload = fixture_json("x", "dm_media.json")
    payload["direct_message_events"][0]["message_create"]["message_data"]["text"] = f"here, {case.reference}"
    deliver(client, x_channel, json.dumps(payload).encode(), django_capture_on_commit_callbacks)

    dm = Message.objects.get(kind="dm")
    case.refresh_from_db()
    assert dm.case == case and case.status == Case.Status.OPEN
    assert dm.identity.customer == case.customer and Customer.objects.count() == 1


def test_move_to_email_names_the_mailbox_and_the_mail_lands_on_the_case(
    client, x_channel, mailbox, agent, django_capture_on_commit_callbacks
):
    deliver(client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks)
    case = Case.objects.get()

    with django_capture_on_commit_callbacks():
        reply = services.case_move_to_private(
            case=case, actor=agent, channel=x_channel, private_channel_kind="email"
        )

    assert "support@caseline.example" in reply.text and case.reference in reply.text
    assert len(reply.text) <= 280
    raw = fixture_bytes("email", "reference_token.eml").replace(b"C-XXXXX", case.reference.encode())
    response = post_mail(client, mailbox, raw, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    mail = Message.objects.get(kind="email")
    case.refresh_from_db()
    assert mail.case == case and case.status == Case.Status.OPEN
    assert mail.identity.platform_id == "dana.private@example.net"
    assert mail.identity.customer == case.customer and Customer.objects.count() == 1
    assert sorted(case.messages.values_list("kind", "direction")) == [
        ("email", "in"),
        ("post", "in"),
        ("post", "out"),
    ]


@pytest.mark.parametrize(
    ("kind", "field"), [("sms", "private_channel_kind"), ("email", "channel")], ids=["unknown", "no-mailbox"]
)
def test_move_to_private_refusals_name_the_field(x_channel, agent, case, kind, field):
    with pytest.raises(ServiceError) as refused:
        services.case_move_to_private(case=case, actor=agent, channel=x_channel, private_channel_kind=kind)
    assert refused.value.field == field
    case.refresh_from_db()
    assert (
        case.status != Case.Status.WAITING_ON_CUSTOMER and not case.messages.filter(direction="out").exists()
    )


# --- the channel's reopen window in the admin ---------------------------------------------------


def test_admin_sets_and_clears_a_channel_s_reopen_window(admin_client, x_channel):
    url = f"/admin/connectors/channel/{x_channel.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert 'name="reopen_window_days"' in page.content.decode()
    form = {
        "name": x_channel.name,
        "kind": x_channel.kind,
        "slug": x_channel.slug,
        "department": x_channel.department_id,
        "is_active": "on",
        "account_id": x_channel.account_id,
        "handle": x_channel.handle,
        "secret_env": json.dumps(x_channel.secret_env),
        "api_base_url": "",
        "email_provider": "raw",
    }

    assert admin_client.post(url, form | {"reopen_window_days": "30"}).status_code == 302
    x_channel.refresh_from_db()
    assert x_channel.reopen_window_days == 30 and x_channel.reopen_window.days == 30

    refused = admin_client.post(url, form | {"reopen_window_days": "-1"})
    assert refused.status_code == 200 and "reopen_window_days" in refused.context["adminform"].form.errors

    assert admin_client.post(url, form | {"reopen_window_days": ""}).status_code == 302
    x_channel.refresh_from_db()
    assert x_channel.reopen_window_days is None


def test_admin_sets_a_mailbox_s_email_provider_and_refuses_one_on_another_platform(admin_client, x_channel):
    mailbox = factories.ChannelFactory(kind="email", name="Support mailbox", slug="support-mail")
    url = f"/admin/connectors/channel/{mailbox.pk}/change/"
    assert 'name="email_provider"' in admin_client.get(url).content.decode()
    form = {
        "name": mailbox.name,
        "kind": "email",
        "slug": mailbox.slug,
        "department": mailbox.department_id,
        "is_active": "on",
        "account_id": mailbox.account_id,
        "handle": mailbox.handle,
        "secret_env": json.dumps(mailbox.secret_env),
        "api_base_url": "",
        "reopen_window_days": "",
    }
    assert admin_client.post(url, form | {"email_provider": "mailgun"}).status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.email_provider == "mailgun"

    x_url = f"/admin/connectors/channel/{x_channel.pk}/change/"
    x_form = form | {"name": x_channel.name, "kind": "x", "slug": x_channel.slug, "email_provider": "mailgun",
                     "department": x_channel.department_id, "account_id": x_channel.account_id,
                     "handle": x_channel.handle, "secret_env": json.dumps(x_channel.secret_env)}  # fmt: skip
    refused = admin_client.post(x_url, x_form)
    assert refused.status_code == 200 and refused.context["adminform"].form.errors
    x_channel.refresh_from_db()
    assert x_channel.email_provider == "raw"


# --- the ASGI fast path (config.asgi) and how processing is queued --------------------------


async def asgi_post(path: str, body: bytes, headers: dict[str, str] | None = None):
    import httpx

    from config.asgi import application

    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await http.post(
            path, content=body, headers={"content-type": "application/json", **(headers or {})}
        )


def x_signed(body: bytes, secret: str = X_CONSUMER_SECRET) -> dict[str, str]:
    from connectors import x

    return {"x-twitter-webhooks-signature": x.signature(secret, body)}


def test_the_site_serves_webhooks_through_the_fast_path():
    from config.asgi import application

    assert getattr(application, "webhook_fast_path", False) is True


@pytest.mark.django_db(transaction=True)
async def test_fast_path_stores_answers_and_processes_inline_without_a_broker(x_channel, monkeypatch):
    from connectors import views

    served = []
    serve = views._serve
    monkeypatch.setattr(views, "_serve", lambda request, slug: served.append(slug) or serve(request, slug))
    body = fixture_bytes("x", "mention.json")

    response = await asgi_post(f"/webhooks/{x_channel.slug}/", body, x_signed(body))
    again = await asgi_post(f"/webhooks/{x_channel.slug}/", body, x_signed(body))

    assert response.status_code == again.status_code == 200
    assert served == [x_channel.slug, x_channel.slug]  # not through the page middleware
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in response.headers  # no session middleware ran
    event = await InboundEvent.objects.aget()
    assert event.status == InboundEvent.Status.PROCESSED and bytes(event.body) == body
    assert await Message.objects.acount() == 1 and await Case.objects.acount() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signature", ["forged", "missing", "other-secret"])
async def test_fast_path_refuses_a_forged_webhook_and_stores_nothing(x_channel, signature):
    body = fixture_bytes("x", "mention.json")
    headers = {
        "forged": {"x-twitter-webhooks-signature": "sha256=" + base64.b64encode(b"0" * 32).decode()},
        "missing": {},
        "other-secret": x_signed(body, secret="not-the-consumer-secret"),
    }[signature]

    response = await asgi_post(f"/webhooks/{x_channel.slug}/", body, headers)

    assert response.status_code == 403
    assert await InboundEvent.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_fast_path_answers_413_404_and_503_and_stores_nothing(x_channel, settings, monkeypatch):
    body = fixture_bytes("x", "mention.json")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    assert (await asgi_post(f"/webhooks/{x_channel.slug}/", body, x_signed(body))).status_code == 413
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

    assert (await asgi_post("/webhooks/nobody/", body, x_signed(body))).status_code == 404

    monkeypatch.delenv("CASELINE_TEST_X_CONSUMER_SECRET")
    misconfigured = await asgi_post(f"/webhooks/{x_channel.slug}/", body, x_signed(body))
    assert misconfigured.status_code == 503 and misconfigured.text == "Channel misconfigured."
    assert await InboundEvent.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_fast_path_stores_malformed_json_and_fails_it_instead_of_a_500(x_channel):
    body = b'{"for_user_id": "777", "tweet_create_events": [{'

    response = await asgi_post(f"/webhooks/{x_channel.slug}/", body, x_signed(body))

    assert response.status_code == 200
    event = await InboundEvent.objects.aget()
    assert event.status == InboundEvent.Status.FAILED and "Parse error" in event.error


@pytest.mark.django_db(transaction=True)
async def test_a_deactivated_channel_is_404_at_once_on_the_fast_path(x_channel):
    body = fixture_bytes("x", "mention.json")
    assert (await asgi_post(f"/webhooks/{x_channel.slug}/", body, x_signed(body))).status_code == 200
    x_channel.is_active = False
    await x_channel.asave(update_fields=["is_active"])

    other = body.replace(b"my router", b"my modem")
    assert (await asgi_post(f"/webhooks/{x_channel.slug}/", other, x_signed(other))).status_code == 404
    assert await InboundEvent.objects.acount() == 1


@pytest.fixture
def broker(monkeypatch):
    """A broker that records the batch tasks queued (and can be made to fail)."""
    from config.celery import app
    from connectors import tasks, views

    sent: list[float] = []
    state = {"down": False}

    def send(countdown=0.0):
        if state["down"]:
            raise ConnectionError("broker unreachable")
        sent.append(countdown)

    app.conf.task_always_eager = False  # the autouse _celery_inline fixture puts it back
    monkeypatch.setattr(tasks.process_inbound_batch, "delay", lambda *a: send())
    monkeypatch.setattr(
        tasks.process_inbound_batch, "apply_async", lambda *a, countdown=0.0, **k: send(countdown)
    )

    def check_broker(now):
        if state["down"]:
            raise ConnectionError("broker unreachable")

    monkeypatch.setattr(views, "_batch_sent_at", float("-inf"))
    monkeypatch.setattr(views, "_batch_timer_armed", False)
    monkeypatch.setattr(views, "_broker_down_until", 0.0)
    monkeypatch.setattr(views, "_check_broker", check_broker)
    monkeypatch.setattr(views, "_arm_timer", lambda delay: state["timers"].append(delay))
    state["timers"] = []
    return sent, state


def test_webhooks_queue_the_batch_task_at_most_once_a_second(
    client, x_channel, broker, monkeypatch, django_capture_on_commit_callbacks
):
    from connectors import views

    sent, state = broker
    clock = {"now": 1000.0}
    monkeypatch.setattr(views.time, "monotonic", lambda: clock["now"])
    mention = fixture_json("x", "mention.json")["tweet_create_events"][0]
    bodies = [body_of("mention.json", tweet_create_events=[{**mention, "id_str": f"9{n}"}]) for n in range(5)]

    for body in bodies[:4]:  # within a tenth of a second
        assert deliver(client, x_channel, body, django_capture_on_commit_callbacks).status_code == 200
        clock["now"] += 0.03
    # the first queues a batch at once, the second sets one for the end of the second, the rest ride on it
    assert sent == [0.0] and state["timers"] == [pytest.approx(0.97)]
    clock["now"] = 1001.0
    views._send_trailing_batch()
    assert sent == [0.0, 0.0]

    clock["now"] = 1002.5  # quiet for a while: the next webhook is taken at once
    assert deliver(client, x_channel, bodies[4], django_capture_on_commit_callbacks).status_code == 200
    assert sent == [0.0, 0.0, 0.0] and len(state["timers"]) == 1
    assert InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).count() == 5


def test_a_timer_s_batch_the_broker_refuses_is_processed_in_the_web_process(
    client, x_channel, broker, django_capture_on_commit_callbacks
):
    from connectors import views

    sent, state = broker
    mention = fixture_json("x", "mention.json")["tweet_create_events"][0]
    for n in range(3):
        body = body_of("mention.json", tweet_create_events=[{**mention, "id_str": f"6{n}"}])
        deliver(client, x_channel, body, django_capture_on_commit_callbacks)
    assert len(sent) == 1 and len(state["timers"]) == 1

    state["down"] = True
    views._send_trailing_batch()

    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Message.objects.count() == 3


def test_a_broker_lost_while_a_batch_waits_is_noticed_and_the_waiting_events_processed_inline(
    client, x_channel, broker, monkeypatch, django_capture_on_commit_callbacks
):
    from connectors import views

    sent, state = broker
    clock = {"now": 1000.0}
    monkeypatch.setattr(views.time, "monotonic", lambda: clock["now"])
    mention = fixture_json("x", "mention.json")["tweet_create_events"][0]
    bodies = [body_of("mention.json", tweet_create_events=[{**mention, "id_str": f"7{n}"}]) for n in range(4)]
    for body in bodies[:3]:
        deliver(client, x_channel, body, django_capture_on_commit_callbacks)
        clock["now"] += 0.03
    assert len(sent) == 1 and len(state["timers"]) == 1
    assert InboundEvent.objects.filter(status="pending").count() == 3

    # the broker dies with the queued batch; the next webhook rides on that batch, but checks
    state["down"] = True
    clock["now"] += 0.3
    assert deliver(client, x_channel, bodies[3], django_capture_on_commit_callbacks).status_code == 200

    assert len(sent) == 1
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Message.objects.count() == 4


def test_when_the_broker_is_down_the_webhook_is_processed_inline(
    client, x_channel, broker, django_capture_on_commit_callbacks
):
    sent, state = broker
    state["down"] = True

    response = deliver(
        client, x_channel, fixture_bytes("x", "mention.json"), django_capture_on_commit_callbacks
    )

    assert response.status_code == 200 and sent == []
    assert InboundEvent.objects.get().status == InboundEvent.Status.PROCESSED
    assert Message.objects.count() == 1


def test_a_batch_that_deferred_events_tries_them_again_shortly(x_channel, monkeypatch):
    from connectors import tasks

    deferred = inbox.BatchResult(events=2)
    deferred.statuses.update({"processed": 1, "pending": 1})
    done = inbox.BatchResult(events=1)
    done.statuses.update({"processed": 1})
    results, slept = [deferred, done], []
    monkeypatch.setattr(inbox, "inbound_events_process_batch", lambda limit: results.pop(0))
    monkeypatch.setattr(tasks.time, "sleep", slept.append)

    assert tasks.process_inbound_batch()["statuses"] == {"processed": 1}
    assert slept == [tasks.DEFERRED_RETRY_SECONDS] and results == []
