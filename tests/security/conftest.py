"""Fixtures for security tests: one channel per platform, signed as ``tests.faults.traffic`` signs."""

from __future__ import annotations

import pytest

from tests import factories
from tests.faults import traffic


@pytest.fixture
def platform_secrets(monkeypatch, settings):
    for name, value in traffic.SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    settings.PUBLIC_URL = traffic.PUBLIC_URL


@pytest.fixture
def platform_channels(department, platform_secrets):
    """Every platform's channel, slugs and accounts as ``tests.faults.traffic`` addresses them."""
    made = {}
    for kind, (slug, account, roles) in traffic.CHANNELS.items():
        made[kind] = factories.ChannelFactory(
            kind=kind,
            name=f"Brand {kind}",
            slug=slug,
            department=department,
            account_id=account,
            secret_env=roles,
        )
        factories.ServicePromiseFactory(channel=made[kind])
    return made


def post(client, delivery: traffic.Delivery):
    """POST a delivery through Django's test client, headers and all."""
    headers = dict(delivery.headers)
    content_type = headers.pop("content-type")
    return client.post(delivery.path, data=delivery.body, content_type=content_type, headers=headers)
