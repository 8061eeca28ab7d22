"""Builders for the urgent-signal and channel-health tests."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from cases.models import AlertSource

SECRET = "alert-secret-for-tests"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alert_source(db, monkeypatch):
    monkeypatch.setenv("ALERTS_TEST_SECRET", SECRET)
    return AlertSource.objects.create(name="Prometheus", slug="prometheus", secret_env="ALERTS_TEST_SECRET")


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alertmanager_body(
    *,
    status="firing",
    fingerprint="f1",
    starts_at="2027-12-26T10:00:00Z",
    summary="Login API down",
    description="5xx on the login API",
    ends_at="0001-01-01T00:00:00Z",
    alertname="LoginDown",
) -> bytes:
    """An Alertmanager webhook (version 4) with one alert."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "caseline",
            "groupLabels": {"alertname": alertname},
            "commonLabels": {"alertname": alertname, "severity": "critical"},
            "commonAnnotations": {"summary": summary},
            "externalURL": "http://alertmanager.example.test",
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": alertname, "severity": "critical", "service": "login"},
                    "annotations": {"summary": summary, "description": description},
                    "startsAt": starts_at,
                    "endsAt": ends_at,
                    "generatorURL": "http://prometheus.example.test/graph?g0.expr=up",
                    "fingerprint": fingerprint,
                }
            ],
        }
    ).encode()


def post_alert(client, source, body: bytes, **headers):
    return client.post(
        f"/webhooks/alerts/{source.slug}/", data=body, content_type="application/json", **headers
    )
