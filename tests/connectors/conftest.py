"""Fixtures for connector tests: an X channel whose secrets come from the environment."""

from __future__ import annotations

import pytest

from tests.connectors.helpers import X_ACCESS_TOKEN, X_CONSUMER_SECRET, X_SECRET_ENV


@pytest.fixture
def x_secrets(monkeypatch):
    monkeypatch.setenv(X_SECRET_ENV["consumer_secret"], X_CONSUMER_SECRET)
    monkeypatch.setenv(X_SECRET_ENV["access_token"], X_ACCESS_TOKEN)


@pytest.fixture
def x_channel(channel, x_secrets):
    """The suite's X channel (our account id 777) with its secrets' variable names set."""
    channel.secret_env = dict(X_SECRET_ENV)
    channel.save(update_fields=["secret_env"])
    return channel


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
