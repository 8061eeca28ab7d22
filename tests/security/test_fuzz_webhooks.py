"""Fuzz every webhook with malformed and hostile bodies, signed correctly.

Wrong types at any place of a documented body, huge strings, deep nesting, bad
encodings, HTML and script in every text: the view never answers 5xx, every signed
request is stored, and processing it ends processed, ignored or failed with a reason,
never with an exception.
"""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import inbox
from connectors.models import InboundEvent
from connectors.registry import connector_for
from tests.faults import traffic
from tests.security.conftest import post

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

HOSTILE_TEXT = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    "\u202e\u0000\ufeff\ud7ff",
    "'; DROP TABLE cases_case; --",
    "{{ 7*7 }}{% debug %}",
    "A" * 100_000,
    "\U0001f600" * 5000,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=200),
    st.sampled_from(HOSTILE_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=20,
)


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


RAW_BODIES = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from(
        [
            b"",
            deep(5000),
            b"[" * 200_000,
            '{"text": "caf\u00e9"}'.encode("latin-1"),
            b'{"text": "\\ud800"}',
            '{"entry": []}'.encode("utf-16"),
            b"\xef\xbb\xbf{}",
            json.dumps({"k": "x" * 2_000_000}).encode(),
        ]
    ),
)


def mutate(document, rng: random.Random, replacement):
    """``document`` with one value, chosen by ``rng``, replaced (keys and lists walked down)."""
    if isinstance(document, dict) and document and rng.random() < 0.8:
        key = rng.choice(sorted(document))
        return {**document, key: mutate(document[key], rng, replacement)}
    if isinstance(document, list) and document and rng.random() < 0.8:
        index = rng.randrange(len(document))
        return [*document[:index], mutate(document[index], rng, replacement), *document[index + 1 :]]
    return replacement


def json_bodies(kind: str):
    @st.composite
    def build(draw):
        base = json.loads(traffic.customer_message(kind, draw(st.integers(1, 10**9))).body)
        choice = draw(st.integers(0, 2))
        if choice == 0:  # a documented body with one value of the wrong type, or hostile
            rng = random.Random(draw(st.integers(0, 2**32)))
            document = base
            for _ in range(draw(st.integers(1, 3))):
                document = mutate(document, rng, draw(json_values))
            return json.dumps(document).encode()
        if choice == 1:  # anything JSON
            return json.dumps(draw(json_values)).encode()
        return draw(RAW_BODIES)

    return build()


@st.composite
def email_bodies(draw):
    choice = draw(st.integers(0, 2))
    if choice == 0:
        html = (
            draw(st.sampled_from(HOSTILE_TEXT))
            + '<iframe src="javascript:alert(1)"></iframe><svg onload=alert(1)>'
        )
        return traffic.email(draw(st.integers(1, 10**9)), author="fuzz@mail.test", text="hi", html=html).body
    if choice == 1:
        headers = draw(
            st.dictionaries(
                st.sampled_from(
                    ["From", "To", "Subject", "Message-ID", "In-Reply-To", "Content-Type", "Date"]
                ),
                st.one_of(st.text(max_size=300), st.sampled_from(HOSTILE_TEXT)),
            )
        )
        lines = "".join(f"{k}: {v}\r\n".replace("\n\n", "\n") for k, v in headers.items())
        return (lines + "\r\n" + draw(st.text(max_size=500))).encode("utf-8", "surrogateescape")
    return draw(RAW_BODIES)


ASCII = st.characters(max_codepoint=127)


@st.composite
def phone_bodies(draw):
    # Values outside ASCII are a known failure (see the tests at the end of this file).
    fields = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "CallSid",
                    "CallStatus",
                    "From",
                    "To",
                    "Direction",
                    "CallDuration",
                    "Timestamp",
                    "RecordingUrl",
                ]
            ),
            st.one_of(
                st.text(alphabet=ASCII, max_size=100), st.sampled_from(HOSTILE_TEXT[:3] + HOSTILE_TEXT[4:6])
            ),
        )
    )
    if draw(st.booleans()):
        return urlencode(fields).encode()
    return draw(
        st.one_of(st.text(alphabet=ASCII, max_size=500).map(str.encode), RAW_BODIES.filter(bytes.isascii))
    )


STRATEGIES = {
    "x": json_bodies("x"),
    "facebook": json_bodies("facebook"),
    "instagram": json_bodies("instagram"),
    "whatsapp": json_bodies("whatsapp"),
    "email": email_bodies(),
    "phone": phone_bodies(),
}
CONTENT_TYPES = {
    "email": ["message/rfc822", "application/json", "multipart/form-data; boundary=zz", "text/plain"],
    "phone": ["application/x-www-form-urlencoded"],
}


@pytest.mark.parametrize("kind", traffic.KINDS)
def test_hostile_signed_bodies_are_stored_never_5xx_and_processed_without_exceptions(
    kind, client, platform_channels, django_capture_on_commit_callbacks
):
    channel = platform_channels[kind]
    connector = connector_for(kind)
    factory = RequestFactory()
    seen = {"stored": 0}

    @FUZZ
    @given(body=STRATEGIES[kind], content_type=st.sampled_from(CONTENT_TYPES.get(kind, ["application/json"])))
    def check(body, content_type):
        delivery = traffic.signed(kind, body, content_type=content_type)
        # when the platform's signed request arrives (processing run inline after commit)
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, delivery)

        # then it is acknowledged (or refused as too large), never a server error
        assert response.status_code < 500, (response.status_code, body[:200])
        if response.status_code == 413:
            return
        assert response.status_code == 200, (response.status_code, response.content[:200], body[:200])

        # and it is stored, and its processing ended in a recorded state
        headers = {
            f"HTTP_{k.upper().replace('-', '_')}": v
            for k, v in delivery.headers.items()
            if k != "content-type"
        }
        request = factory.post(delivery.path, data=body, content_type=content_type, **headers)
        event = InboundEvent.objects.get(
            channel=channel, delivery_id=connector.delivery_id(request, channel)[:255]
        )
        if event.status == InboundEvent.Status.PENDING:
            inbox.inbound_event_process(event_id=event.pk)
            event.refresh_from_db()
        assert event.status in ("processed", "ignored", "failed")
        if event.status == "failed":
            assert event.error
        seen["stored"] += 1

    check()
    assert seen["stored"] >= EXAMPLES // 2


@pytest.mark.parametrize(
    "body", ["CallerName=Jos%C3%A9", "CallSid=CA1&From=caf\u00e9"], ids=["encoded", "raw"]
)
def test_a_signed_phone_callback_with_non_ascii_values_is_stored(client, platform_channels, body):
    # Twilio sends the caller's name (CNAM) percent-encoded UTF-8: "José" is Jos%C3%A9.
    delivery = traffic.signed(
        "phone", f"CallSid=CA1&CallStatus=completed&From=%2B14155550199&{body}".encode()
    )

    assert post(client, delivery).status_code == 200
    assert InboundEvent.objects.filter(channel=platform_channels["phone"]).count() == 1


def test_a_signed_urlencoded_mail_form_with_non_ascii_values_is_stored(client, platform_channels):
    raw = traffic.email(1, author="jose@mail.test", text="Hola", subject="Caf\u00e9").body
    form = urlencode({"email": raw.decode(), "subject": "Caf\u00e9"}).encode()
    delivery = traffic.signed("email", form, content_type="application/x-www-form-urlencoded")

    assert post(client, delivery).status_code == 200
    assert InboundEvent.objects.filter(channel=platform_channels["email"]).count() == 1
