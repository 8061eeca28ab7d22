"""Personal API tokens: shown once, hashed at rest, listed by prefix, revocable, scoped, rate-limited."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from connectors import api_tokens
from connectors.models import ApiToken

from .conftest import session_client, token_client


def test_a_new_key_is_shown_once_and_only_its_digest_is_kept(world):
    client = session_client(world.agent)
    created = client.post("/api/v1/tokens/", {"name": "Reporting", "scope": "read"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {str(value) for value in token.__dict__.values()}
    assert key.startswith(token.prefix) and len(token.prefix) == 12
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert {row["prefix"] for row in listed} >= {token.prefix}
    assert all("key" not in row for row in listed)
    assert key not in client.get(f"/api/v1/tokens/{token.pk}/").content.decode()


def test_a_token_authenticates_and_a_revoked_one_does_not(world):
    created = session_client(world.agent).post("/api/v1/tokens/", {"name": "Bot"}, format="json").json()
    client = token_client(created["key"])
    assert client.get("/api/v1/cases/").status_code == 200
    assert session_client(world.agent).delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    response = client.get("/api/v1/cases/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Token"
    assert ApiToken.objects.get(pk=created["id"]).revoked_at is not None


@pytest.mark.parametrize("header", ["Token clt_not-a-real-key", "Token", "Token a b", "token clt_x"])
def test_a_bad_token_header_is_a_401(world, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/cases/").status_code == 401


def test_a_read_only_token_reads_but_never_writes(world):
    client = token_client(world.readonly_key)
    assert client.get(f"/api/v1/cases/{world.case.pk}/").status_code == 200
    response = client.post(f"/api/v1/cases/{world.case.pk}/note/", {"text": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "read_only_token"
    assert not world.case.messages.filter(direction="note").exists()


def test_last_used_is_written_at_most_once_a_minute(world, django_assert_num_queries):
    client = token_client(world.write_key)
    token = ApiToken.objects.get(key_hash=api_tokens.key_digest(world.write_key))
    assert token.last_used_at is None
    client.get("/api/v1/departments/")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(3):  # token, memberships, page: no write
        client.get("/api/v1/departments/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    with django_assert_num_queries(4):  # ... and one conditional UPDATE
        client.get("/api/v1/departments/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_tokens_are_managed_while_signed_in_not_with_a_token(world):
    response = token_client(world.write_key).post("/api/v1/tokens/", {"name": "More"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_permitted"


def test_nobody_revokes_someone_elses_token(world):
    token = ApiToken.objects.get(key_hash=api_tokens.key_digest(world.write_key))
    assert session_client(world.supervisor).delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_an_inactive_users_token_stops_working(world):
    world.agent.is_active = False
    world.agent.save()
    assert token_client(world.write_key).get("/api/v1/cases/").status_code == 401


def test_token_requests_are_rate_limited_per_token(world, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_token": "3/min", "api_token_write": "1/min"},
    }
    client = token_client(world.write_key)
    assert [client.get("/api/v1/departments/").status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get("/api/v1/departments/")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "throttled"
    assert int(limited["Retry-After"]) > 0
    # Another token has its own budget; a session user is not counted at all.
    assert token_client(world.readonly_key).get("/api/v1/departments/").status_code == 200
    assert [session_client(world.agent).get("/api/v1/departments/").status_code for _ in range(5)] == [
        200
    ] * 5


def test_writes_have_their_own_smaller_budget(world, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_token_write": "1/min"},
    }
    client = token_client(world.write_key)
    url = f"/api/v1/cases/{world.case.pk}/note/"
    assert client.post(url, {"text": "one"}, format="json").status_code == 200
    assert client.post(url, {"text": "two"}, format="json").status_code == 429
    assert client.get(url.replace("note/", "")).status_code == 200


def test_token_creation_is_rate_limited_per_user(world, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_token_create": "2/hour"},
    }
    client = session_client(world.agent)
    codes = [client.post("/api/v1/tokens/", {"name": f"t{i}"}, format="json").status_code for i in range(3)]
    assert codes == [201, 201, 429]
