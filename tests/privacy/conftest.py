"""Fixtures for privacy tests: a channel per platform, signed as ``tests.faults.traffic`` signs,
attachments in a throwaway media folder, and two customers seeded through the real ingest path."""

from __future__ import annotations

import pytest

from tests import factories
from tests.faults import traffic


@pytest.fixture
def platform_channels(department, monkeypatch, settings):
    for name, value in traffic.SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    settings.PUBLIC_URL = traffic.PUBLIC_URL
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


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def admin_user(db):
    return factories.UserFactory(username="admin", email="admin@example.test", is_staff=True)
