"""Webhook signatures are compared in constant time; replayed X and Meta bodies are either
matched to their first delivery or, outside the replay window, refused."""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import crypto

from connectors import meta, x
from connectors.models import InboundEvent
from tests.faults import traffic
from tests.security.conftest import post

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


SIGNATURE_HEADERS = (
    "x-twitter-webhooks-signature",
    "x-hub-signature-256",
    "authorization",
    "x-twilio-signature",
)


@pytest.fixture
def compare_spy(monkeypatch):
    """Records every constant-time comparison the connectors make."""
    calls = []
    real_digest, real_constant = hmac.compare_digest, crypto.constant_time_compare

    def digest(a, b):
        calls.append("compare_digest")
        return real_digest(a, b)

    def constant(a, b):
        calls.append("constant_time_compare")
        return real_constant(a, b)

    monkeypatch.setattr("connectors.x.hmac.compare_digest", digest)
    monkeypatch.setattr("connectors.meta.hmac.compare_digest", digest)
    monkeypatch.setattr("connectors.email.constant_time_compare", constant)
    monkeypatch.setattr("connectors.voice.constant_time_compare", constant)
    return calls


@pytest.mark.parametrize("kind", traffic.KINDS)
def test_every_signature_is_compared_in_constant_time(client, platform_channels, compare_spy, kind):
    good = traffic.customer_message(kind, 1)
    # The same body with its signature (or credentials) changed in the last character.
    headers = dict(good.headers)
    name = next(h for h in headers if h in SIGNATURE_HEADERS)
    value = headers[name]
    headers[name] = value[:-2] + ("0" if value[-2] != "0" else "1") + value[-1]  # not a case change
    forged = traffic.Delivery(kind=kind, slug=good.slug, body=good.body, headers=headers, external_id="")

    assert post(client, good).status_code == 200
    assert compare_spy, f"{kind}: the signature was not compared with a constant-time function"
    compare_spy.clear()
    assert post(client, forged).status_code == 403
    assert compare_spy
    assert InboundEvent.objects.count() == 1


def test_no_connector_compares_a_secret_with_equals():
    # A source check to back the spy: a plain == on a signature or token leaks timing.
    for module in ("x", "meta", "email", "voice"):
        package = ROOT / "connectors" / module
        files = sorted(package.glob("*.py")) if package.is_dir() else [package.with_suffix(".py")]
        for path in files:
            for line in path.read_text().splitlines():
                code = line.split("#")[0]
                if "==" in code and any(word in code.lower() for word in ("signature", "token", "secret")):
                    assert "len(" in code or "retry" in code.lower(), (
                        f"{path.relative_to(ROOT)}: {line.strip()}"
                    )


# --- replay window ---------------------------------------------------------------------------


def x_dm_at(when: datetime, n: int) -> traffic.Delivery:
    body = json.loads(traffic.x_dm(n, author="6001", text="hello").body)
    body["direct_message_events"][0]["created_timestamp"] = str(int(when.timestamp() * 1000))
    return traffic.signed("x", json.dumps(body).encode())


def x_tweet_at(when: datetime, n: int) -> traffic.Delivery:
    body = json.loads(traffic.x_mention(n, author="6002", text="hi").body)
    body["tweet_create_events"][0]["created_at"] = when.strftime("%a %b %d %H:%M:%S +0000 %Y")
    return traffic.signed("x", json.dumps(body).encode())


def messenger_at(when: datetime, n: int) -> traffic.Delivery:
    body = json.loads(traffic.messenger(n, author="7001", text="hello").body)
    millis = int(when.timestamp() * 1000)
    body["entry"][0]["time"] = millis
    body["entry"][0]["messaging"][0]["timestamp"] = millis
    return traffic.signed("facebook", json.dumps(body).encode())


def whatsapp_at(when: datetime, n: int) -> traffic.Delivery:
    body = json.loads(traffic.whatsapp(n, author="16505550000", text="hello").body)
    body["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(when.timestamp()))
    return traffic.signed("whatsapp", json.dumps(body).encode())


BUILDERS = [x_dm_at, x_tweet_at, messenger_at, whatsapp_at]


@pytest.fixture
def window(settings):
    settings.WEBHOOK_REPLAY_WINDOW_HOURS = 24
    return timedelta(hours=24)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_a_body_older_than_the_window_is_refused_and_not_stored(client, platform_channels, window, build):
    stale = build(datetime.now(UTC) - window - timedelta(minutes=5), 1)
    fresh = build(datetime.now(UTC) - window + timedelta(minutes=5), 2)

    assert post(client, stale).status_code == 403
    assert InboundEvent.objects.count() == 0
    assert post(client, fresh).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_a_replay_inside_the_window_is_acknowledged_and_matched_to_the_first_delivery(
    client, platform_channels, window, django_capture_on_commit_callbacks
):
    first = x_dm_at(datetime.now(UTC) - timedelta(hours=3), 3)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, first).status_code == 200
        assert post(client, first).status_code == 200

    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.PROCESSED


def test_a_batch_with_one_fresh_event_is_accepted(client, platform_channels, window):
    old = datetime.now(UTC) - timedelta(days=30)
    body = json.loads(messenger_at(old, 4).body)
    fresh = json.loads(messenger_at(datetime.now(UTC), 5).body)["entry"][0]
    body["entry"].append(fresh)

    assert post(client, traffic.signed("facebook", json.dumps(body).encode())).status_code == 200


def test_a_body_without_readable_times_is_stored_for_the_parser_to_judge(client, platform_channels, window):
    body = json.dumps(
        {"for_user_id": "777", "direct_message_events": [{"created_timestamp": "soon"}]}
    ).encode()

    assert post(client, traffic.signed("x", body)).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_no_window_by_default_while_raw_events_are_kept(client, platform_channels, settings):
    # Every replay is matched to its stored first delivery; an old body is just old.
    assert settings.INBOUND_EVENT_RETENTION_DAYS == 0 and settings.WEBHOOK_REPLAY_WINDOW_HOURS == 0
    old = x_dm_at(datetime.now(UTC) - timedelta(days=400), 6)

    assert post(client, old).status_code == 200


def test_event_times_never_raise_on_hostile_bodies():
    hostile = [b"", b"\xff\xfe", b"[" * 100_000, b"null", b'{"entry": 5}', b'{"entry": [{"time": 1e400}]}',
               b'{"tweet_create_events": 7, "direct_message_events": {"a": 1}}',
               b'{"entry": [{"time": "2024-13-45T99:99:99+0000", "messaging": "x", "changes": [1, {"value": []}]}]}',
               b'{"data": {"payload": {"created_at": {"$date": 1}}}}']  # fmt: skip
    for body in hostile:
        assert isinstance(x.event_times(body), list)
        assert isinstance(meta.event_times(body), list)


def settings_check(**env):
    base = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DEBUG": "false",
        "SECRET_KEY": "check-only",
    }
    return subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); from django.conf import settings; print(settings.WEBHOOK_REPLAY_WINDOW_HOURS)"],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_window_follows_the_retention_and_may_not_outlast_it():
    assert settings_check(INBOUND_EVENT_RETENTION_DAYS="30").stdout.strip() == str(30 * 24)
    assert (
        settings_check(INBOUND_EVENT_RETENTION_DAYS="30", WEBHOOK_REPLAY_WINDOW_HOURS="240").stdout.strip()
        == "240"
    )
    too_long = settings_check(INBOUND_EVENT_RETENTION_DAYS="7", WEBHOOK_REPLAY_WINDOW_HOURS="200")
    assert too_long.returncode != 0
    assert "WEBHOOK_REPLAY_WINDOW_HOURS" in too_long.stderr


def test_timestamps_are_read_in_each_platforms_format():
    now = datetime.now(UTC).replace(microsecond=0)
    for build in BUILDERS:
        delivery = build(now, int(time.time()))
        reader = x.event_times if delivery.kind == "x" else meta.event_times
        assert max(reader(delivery.body)) == now, build.__name__
