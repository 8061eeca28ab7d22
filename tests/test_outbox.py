from datetime import timedelta

import pytest
from django.utils import timezone

from cases import services
from cases.errors import ServiceError, StaleDraft
from cases.models import Case, Message
from connectors import outbound, registry
from connectors.base import SendError
from tests import scripted_connector


@pytest.fixture(autouse=True)
def scripted(monkeypatch):
    monkeypatch.setitem(registry.CONNECTORS, "x", "tests.scripted_connector")
    scripted_connector.script.clear()
    scripted_connector.sent.clear()
    return scripted_connector


def reply(case, agent, channel, text="We're on it", **kwargs):
    return services.case_reply(case=case, author=agent, channel=channel, text=text, is_public=True, **kwargs)


def test_reply_is_queued_then_sent_after_commit(case, agent, channel, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = reply(case, agent, channel)

    message.refresh_from_db()
    assert message.delivery_state == Message.Delivery.SENT
    assert message.external_id == f"ext-{message.pk}-1"
    assert message.reply_to.external_id == "t1"  # threads under the customer's tweet
    assert message.identity == case.messages.get(external_id="t1").identity
    assert scripted_connector.sent == [message.pk]


def test_nothing_is_sent_when_the_transaction_rolls_back(
    case, agent, channel, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reply(case, agent, channel)
    assert len(callbacks) >= 1
    assert scripted_connector.sent == []


def test_retryable_failure_backs_off_and_honours_retry_after(case, agent, channel):
    scripted_connector.script[:] = [SendError("rate limited", retry_after=42), SendError("503")]
    message = reply(case, agent, channel)

    assert outbound.message_send(message_id=message.pk) == 42
    assert outbound.message_send(message_id=message.pk) == outbound.backoff_seconds(2)
    assert outbound.message_send(message_id=message.pk) is None

    message.refresh_from_db()
    assert message.delivery_state == Message.Delivery.SENT
    assert message.send_attempts == 3


def test_gives_up_after_the_limit_with_the_reason_and_can_be_retried_by_hand(case, agent, channel):
    scripted_connector.script[:] = [SendError("upstream 502")] * outbound.MAX_ATTEMPTS
    message = reply(case, agent, channel)
    delays = [outbound.message_send(message_id=message.pk) for _ in range(outbound.MAX_ATTEMPTS)]

    message.refresh_from_db()
    assert delays[-1] is None and all(d is not None for d in delays[:-1])
    assert message.delivery_state == Message.Delivery.FAILED
    assert "upstream 502" in message.delivery_error
    assert case.events.filter(kind="delivery", message=message).exists()

    outbound.message_retry_send(message=message, actor=agent)
    assert outbound.message_send(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.delivery_state == Message.Delivery.SENT


def test_permanent_failure_fails_at_once(case, agent, channel):
    scripted_connector.script[:] = [SendError("duplicate content", retryable=False)]
    message = reply(case, agent, channel)

    assert outbound.message_send(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.delivery_state == Message.Delivery.FAILED
    assert message.send_attempts == 1


def test_a_sent_message_is_never_sent_again(case, agent, channel):
    message = reply(case, agent, channel)
    outbound.message_send(message_id=message.pk)
    outbound.message_send(message_id=message.pk)

    assert scripted_connector.sent == [message.pk]


def test_reply_stops_the_response_clock(case, agent, channel):
    reply(case, agent, channel)
    case.refresh_from_db()
    assert case.first_response_due_at is None
    assert case.status == Case.Status.OPEN


def test_public_reply_over_the_x_limit_names_the_field(case, agent, channel):
    with pytest.raises(ServiceError) as exc:
        reply(case, agent, channel, text="x" * 281)
    assert exc.value.field == "text"
    assert "280" in exc.value.message


def test_stale_draft_is_refused_when_the_customer_wrote_since(case, agent, channel, identity):
    from django.utils import timezone

    started = timezone.now()
    services.message_add(
        case=case,
        direction="in",
        kind="dm",
        text="Hello??",
        channel=channel,
        identity=identity,
        external_id="dm-9",
    )

    with pytest.raises(StaleDraft):
        reply(case, agent, channel, draft_started_at=started)
    assert reply(case, agent, channel, draft_started_at=timezone.now()).pk


def test_a_retry_records_when_it_is_due(case, agent, channel):
    scripted_connector.script[:] = [SendError("rate limited", retry_after=120)]
    message = reply(case, agent, channel)
    before = timezone.now()

    assert outbound.message_send(message_id=message.pk) == 120

    message.refresh_from_db()
    assert (
        before + timedelta(seconds=119) <= message.next_attempt_at <= timezone.now() + timedelta(seconds=121)
    )


def test_sends_lost_with_the_broker_are_queued_again_once_overdue(case, agent, channel, monkeypatch):
    """Redis restarted empty: the queued rows are all that is left of the send tasks."""
    queued = []
    monkeypatch.setattr(outbound, "_queue_send", queued.append)
    lost = reply(case, agent, channel, text="Sorry for the wait")
    waiting_on_retry = reply(case, agent, channel, text="Second reply")
    fresh = reply(case, agent, channel, text="Just written")
    sent = reply(case, agent, channel, text="Already out")
    now = timezone.now()
    long_ago = now - outbound.STALLED_AFTER - timedelta(minutes=1)
    Message.objects.filter(pk__in=[lost.pk, waiting_on_retry.pk, sent.pk]).update(created_at=long_ago)
    # Its retry is not due yet (the platform asked for a long Retry-After): leave it be.
    Message.objects.filter(pk=waiting_on_retry.pk).update(next_attempt_at=now + timedelta(minutes=30))
    Message.objects.filter(pk=sent.pk).update(delivery_state=Message.Delivery.SENT)
    queued.clear()

    assert outbound.outbox_requeue_stalled(now=now) == 1
    assert queued == [lost.pk]
    assert fresh.pk not in queued

    # Once that retry is long overdue it is picked up too.
    later = now + timedelta(minutes=30) + outbound.STALLED_AFTER + timedelta(seconds=1)
    queued.clear()
    assert outbound.outbox_requeue_stalled(now=later) == 3
    assert set(queued) == {lost.pk, waiting_on_retry.pk, fresh.pk}


def test_a_requeued_send_never_sends_twice(case, agent, channel, monkeypatch):
    message = reply(case, agent, channel)
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(hours=1))

    assert outbound.requeue_stalled_sends() == 1  # the eager task sends it
    assert outbound.requeue_stalled_sends() == 0
    assert outbound.message_send(message_id=message.pk) is None
    assert scripted_connector.sent == [message.pk]
