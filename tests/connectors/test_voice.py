"""The phone connector: Twilio's signed, form-encoded call callbacks.

Bodies in tests/fixtures/voice/ follow Twilio's documented voice webhook and status
callback parameters; signatures are computed here, independently of the connector,
by Twilio's documented algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from cases import ingest
from cases.models import Message
from connectors import voice
from connectors.base import MessageUpdate, ParseError, SendError, SignatureError
from connectors.models import InboundEvent
from customers.models import Identity
from tests.factories import ChannelFactory, IdentityFactory, ServicePromiseFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "voice"
PUBLIC_URL = "https://care.example.com"
AUTH_TOKEN = "twilio-auth-token-not-real"
SECRET_ENV = {"auth_token": "CASELINE_TEST_TWILIO_AUTH_TOKEN"}
OUR_NUMBER = "+14155550100"
CUSTOMER = "+14155550199"


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def twilio_signature(token: str, url: str, form: bytes) -> str:
    """Twilio: HMAC-SHA1 over the URL then every POST parameter name+value, sorted by name."""
    data = url
    for name, value in sorted(parse_qsl(form.decode(), keep_blank_values=True)):
        data += name + value
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def build_channel(**overrides):
    values = {"kind": "phone", "slug": "phone-line", "account_id": OUR_NUMBER, "secret_env": SECRET_ENV}
    return ChannelFactory.build(**{**values, **overrides})


def parse(name: str):
    return voice.parse(InboundEvent(body=body(name)), build_channel())


@pytest.fixture
def twilio_env(monkeypatch, settings):
    monkeypatch.setenv(SECRET_ENV["auth_token"], AUTH_TOKEN)
    settings.PUBLIC_URL = PUBLIC_URL


@pytest.fixture
def phone_channel(department, twilio_env):
    channel = ChannelFactory(
        kind="phone",
        name="Hotline",
        slug="phone-line",
        department=department,
        account_id=OUR_NUMBER,
        secret_env=dict(SECRET_ENV),
    )
    ServicePromiseFactory(channel=channel)
    return channel


# --- signature ----------------------------------------------------------------------------


def test_signature_matches_twilios_published_example():
    # Twilio's request validation documentation: token 12345, this URL and these parameters.
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    assert voice.signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == (
        "GvWf1cFY/Q7PnoempGyD5oXAezc="
    )


def signed(form: bytes, *, path="/webhooks/phone-line/?source=status", token=AUTH_TOKEN, url=None):
    signature = twilio_signature(token, url or PUBLIC_URL + path, form)
    return RequestFactory().post(
        path, data=form, content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
    )


def test_verify_accepts_twilios_signature_over_url_query_and_sorted_params(twilio_env):
    request = signed(body("completed_inbound.txt"))

    assert voice.verify(request, build_channel()) is None
    # the query string is part of what is signed
    request.META["QUERY_STRING"] = "source=other"
    with pytest.raises(SignatureError, match="does not match"):
        voice.verify(request, build_channel())


def test_a_signed_callback_is_stored_as_sent_and_becomes_the_call(post_call, phone_channel):
    form = body("completed_inbound.txt")

    assert post_call(form).status_code == 200

    event = InboundEvent.objects.get(channel=phone_channel)
    assert bytes(event.body) == form
    assert event.status == InboundEvent.Status.PROCESSED
    call = Message.objects.get(channel=phone_channel)
    assert (call.kind, call.direction, call.call_duration) == (Message.Kind.CALL, Message.Direction.IN, 127)


@pytest.mark.parametrize(
    ("request_kwargs", "reason"),
    [
        ({"token": "another-token"}, "does not match"),
        ({"url": "https://attacker.example/webhooks/phone-line/?source=status"}, "does not match"),
    ],
)
def test_verify_refuses_a_wrong_signature(twilio_env, request_kwargs, reason):
    with pytest.raises(SignatureError, match=reason):
        voice.verify(signed(body("completed_inbound.txt"), **request_kwargs), build_channel())


def test_verify_refuses_a_tampered_parameter(twilio_env):
    request = signed(body("completed_inbound.txt"))
    request._body = request.body.replace(b"CallDuration=127", b"CallDuration=999")

    with pytest.raises(SignatureError):
        voice.verify(request, build_channel())


def test_verify_refuses_a_missing_signature(twilio_env):
    request = RequestFactory().post(
        "/webhooks/phone-line/", data=body("busy.txt"), content_type="application/x-www-form-urlencoded"
    )
    with pytest.raises(SignatureError, match="missing"):
        voice.verify(request, build_channel())


def test_delivery_id_is_one_per_status_callback(twilio_env):
    channel = build_channel()
    ids = {
        voice.delivery_id(signed(body(name)), channel)
        for name in ("incoming_ringing.txt", "completed_inbound.txt", "recording_completed.txt")
    }

    assert ids == {
        "CA11111111111111111111111111111111:ringing",
        "CA11111111111111111111111111111111:completed",
        "CA11111111111111111111111111111111:recording:RE22222222222222222222222222222222:completed",
    }


# --- parse --------------------------------------------------------------------------------


def test_completed_call_is_a_call_message_with_duration_and_recording():
    [message] = parse("completed_inbound.txt").messages

    assert message.platform == "phone"
    assert message.kind == "call"
    assert message.external_id == "CA11111111111111111111111111111111"
    assert message.author_id == CUSTOMER
    assert message.author_name == "Dana Customer"
    assert message.text == f"Call from {CUSTOMER}"
    assert message.call_duration == 127
    assert message.recording_url.endswith("/Recordings/RE22222222222222222222222222222222")
    # It started 127 s before the completed callback's Timestamp.
    assert message.sent_at == datetime(2025, 3, 18, 14, 3, 0, tzinfo=UTC)
    assert message.is_echo is False


def test_ringing_call_is_ignored_until_it_ends():
    result = parse("incoming_ringing.txt")

    assert result.messages == []
    assert "ringing" in result.ignored_reason


@pytest.mark.parametrize(("name", "why"), [("no_answer.txt", "not answered"), ("busy.txt", "busy")])
def test_missed_calls(name, why):
    [message] = parse(name).messages

    assert message.text == f"Missed call from {CUSTOMER} ({why})"
    assert message.call_duration == 0
    assert message.recording_url == ""


def test_call_we_placed_is_an_echo_to_the_customer():
    [message] = parse("outbound_completed.txt").messages

    assert message.is_echo is True
    assert message.author_id == OUR_NUMBER
    assert message.recipient_id == CUSTOMER
    assert message.text == f"Call to {CUSTOMER}"
    assert message.call_duration == 64


def test_recording_callback_is_an_update_of_the_call_s_message():
    result = parse("recording_completed.txt")

    assert result.messages == []
    (update,) = result.updates
    assert isinstance(update, MessageUpdate)
    assert update.external_id == "CA11111111111111111111111111111111"
    assert update.recording_url == (
        "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000001"
        "/Recordings/RE22222222222222222222222222222222"
    )
    assert update.at == datetime(2025, 3, 18, 14, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize("status", ["in-progress", "absent", "failed"])
def test_an_unfinished_or_failed_recording_is_ignored_with_the_reason(status):
    form = body("recording_completed.txt").replace(
        b"RecordingStatus=completed", f"RecordingStatus={status}".encode()
    )

    result = voice.parse(InboundEvent(body=form), build_channel())

    assert result.updates == [] and result.messages == []
    assert status in result.ignored_reason and "RE22222222222222222222222222222222" in result.ignored_reason


def test_withheld_number_is_ignored():
    result = parse("anonymous_completed.txt")

    assert result.messages == []
    assert "withheld" in result.ignored_reason


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"CallStatus": "completed", "From": CUSTOMER}, "CallSid"),
        ({"CallSid": "CA1", "CallStatus": "exploded", "From": CUSTOMER}, "CallStatus"),
        ({"CallSid": "CA1", "From": CUSTOMER}, "CallStatus"),
        ({"CallSid": "CA1", "CallStatus": "completed", "From": "not a number"}, "From"),
        (
            {"CallSid": "CA1", "CallStatus": "completed", "From": CUSTOMER, "CallDuration": "long"},
            "CallDuration",
        ),
    ],
)
def test_bad_callbacks_fail_naming_the_field(form, field):
    with pytest.raises(ParseError, match=field):
        voice.parse(InboundEvent(body=urlencode(form).encode()), build_channel())


def test_a_phone_line_sends_nothing():
    with pytest.raises(SendError) as refused:
        voice.send(None, build_channel())
    assert refused.value.retryable is False


# --- through the webhook view, the inbox and ingest ---------------------------------------


@pytest.fixture
def post_call(client, django_capture_on_commit_callbacks):
    def post(name: str | bytes, *, token: str = AUTH_TOKEN):
        form = body(name) if isinstance(name, str) else name
        path = "/webhooks/phone-line/"
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                path,
                data=form,
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE=twilio_signature(token, PUBLIC_URL + path, form),
            )

    return post


def test_a_finished_call_lands_on_the_callers_open_case(post_call, phone_channel, case):
    IdentityFactory(customer=case.customer, kind="phone", platform_id=CUSTOMER)

    for name in ("incoming_ringing.txt", "completed_inbound.txt", "completed_inbound.txt"):
        assert post_call(name).status_code == 200

    events = InboundEvent.objects.filter(channel=phone_channel).order_by("pk")
    assert [e.status for e in events] == [InboundEvent.Status.IGNORED, InboundEvent.Status.PROCESSED]
    call = Message.objects.get(channel=phone_channel)
    assert call.case == case
    assert call.kind == Message.Kind.CALL
    assert call.direction == Message.Direction.IN
    assert call.call_duration == 127
    assert call.recording_url.endswith("RE22222222222222222222222222222222")


def test_a_call_from_a_new_number_opens_a_case(post_call, phone_channel):
    assert post_call("no_answer.txt").status_code == 200

    call = Message.objects.get(channel=phone_channel)
    assert call.text == f"Missed call from {CUSTOMER} (not answered)"
    assert call.identity.kind == Identity.Kind.PHONE
    assert call.identity.platform_id == CUSTOMER
    assert call.case.department == phone_channel.department


def test_a_call_we_placed_is_recorded_as_outbound_on_the_customers_case(post_call, phone_channel, case):
    IdentityFactory(customer=case.customer, kind="phone", platform_id=CUSTOMER)

    assert post_call("outbound_completed.txt").status_code == 200

    call = Message.objects.get(channel=phone_channel)
    assert call.case == case
    assert call.direction == Message.Direction.OUT
    assert call.kind == Message.Kind.CALL
    assert call.text == f"Call to {CUSTOMER}"
    assert call.call_duration == 64  # the length of a call we placed is kept too


def test_unsigned_or_forged_calls_get_403_and_store_nothing(post_call, phone_channel):
    assert post_call("completed_inbound.txt", token="forged").status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_recording_that_comes_after_its_call_is_attached_to_it_once(
    post_call, phone_channel, case, django_capture_on_commit_callbacks
):
    IdentityFactory(customer=case.customer, kind="phone", platform_id=CUSTOMER)
    # The recording's callback outruns the call's: kept, failed with the reason.
    assert post_call("recording_completed.txt").status_code == 200
    early = InboundEvent.objects.get()
    assert early.status == InboundEvent.Status.FAILED and "replay" in early.error
    # The call's own callback carries no recording link here.
    without = body("completed_inbound.txt").replace(b"&RecordingUrl=", b"&Unused=")
    assert post_call(without).status_code == 200
    call = Message.objects.get(channel=phone_channel)
    assert call.recording_url == ""

    call_command("replay_inbox", stdout=StringIO())

    early.refresh_from_db()
    call.refresh_from_db()
    assert early.status == InboundEvent.Status.PROCESSED
    assert call.recording_url.endswith("/Recordings/RE22222222222222222222222222222222")
    # Twilio retries the callback: the same delivery changes nothing, and applying the
    # same news again writes nothing and tells no one.
    assert post_call("recording_completed.txt").status_code == 200
    assert InboundEvent.objects.count() == 2
    (update,) = parse("recording_completed.txt").updates
    with django_capture_on_commit_callbacks() as callbacks:
        again = ingest.message_update_apply(channel=phone_channel, update=update)
    assert again == call and callbacks == []
    assert Message.objects.filter(channel=phone_channel).count() == 1
