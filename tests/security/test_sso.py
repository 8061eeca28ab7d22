"""SSO through allauth's OpenID Connect provider, configured from the environment, against a
fake identity provider on 127.0.0.1 (discovery, token and userinfo endpoints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from tests import factories

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db
PROVIDER_ID = "company"
CLIENT_ID = "caseline-desk"


class FakeIdentityProvider:
    """Discovery, token and userinfo endpoints of an OpenID Connect provider."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.userinfo = {"sub": "u-1", "email": "", "email_verified": True, "name": "Sam Supervisor"}
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, payload, status=200):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                idp.requests.append(("GET", self.path, dict(self.headers)))
                if self.path == "/realms/care/.well-known/openid-configuration":
                    base = idp.url + "/realms/care"
                    self._json(
                        {
                            "issuer": base,
                            "authorization_endpoint": base + "/authorize",
                            "token_endpoint": base + "/token",
                            "userinfo_endpoint": base + "/userinfo",
                            "jwks_uri": base + "/jwks",
                            "token_endpoint_auth_methods_supported": ["client_secret_post"],
                        }
                    )
                elif self.path == "/realms/care/userinfo":
                    self._json(idp.userinfo)
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                idp.requests.append(("POST", self.path, {k: v[0] for k, v in form.items()}))
                if self.path == "/realms/care/token" and form.get("code") == ["the-code"]:
                    self._json({"access_token": "at-1", "token_type": "Bearer", "expires_in": 60})
                else:
                    self._json({"error": "invalid_grant"}, 400)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp(settings):
    with FakeIdentityProvider() as server:
        settings.SOCIALACCOUNT_PROVIDERS = {
            "openid_connect": {
                "OAUTH_PKCE_ENABLED": True,
                "APPS": [
                    {
                        "provider_id": PROVIDER_ID,
                        "name": "Company SSO",
                        "client_id": CLIENT_ID,
                        "secret": "sso-secret-not-real",
                        "settings": {"server_url": server.url + "/realms/care"},
                    }
                ],
            }
        }
        yield server


def start_sign_in(client) -> dict:
    response = client.post(f"/accounts/oidc/{PROVIDER_ID}/login/")
    assert response.status_code == 302, response.content.decode()[-1000:]
    return response["Location"]


def test_signing_in_sends_the_browser_to_the_provider_with_pkce(client, idp):
    location = start_sign_in(client)

    url = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == idp.url + "/realms/care/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert "openid" in query["scope"].split()
    assert query["redirect_uri"].endswith(f"/accounts/oidc/{PROVIDER_ID}/login/callback/")
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["state"]


def test_an_invited_user_signs_in_through_the_provider(client, idp, agent):
    idp.userinfo["email"] = agent.email
    state = parse_qs(urlsplit(start_sign_in(client)).query)["state"][0]

    response = client.get(
        f"/accounts/oidc/{PROVIDER_ID}/login/callback/", {"code": "the-code", "state": state}
    )

    assert response.status_code == 302, response.content.decode()[-1500:]
    assert response["Location"] == reverse("desk:queue")
    assert client.get(reverse("desk:queue")).status_code == 200
    token_request = next(r for r in idp.requests if r[0] == "POST")
    assert token_request[2]["code_verifier"]  # PKCE
    assert token_request[2]["client_id"] == CLIENT_ID


def test_a_stranger_is_not_signed_up_by_the_provider(client, idp):
    idp.userinfo["email"] = "stranger@example.test"
    state = parse_qs(urlsplit(start_sign_in(client)).query)["state"][0]

    client.get(f"/accounts/oidc/{PROVIDER_ID}/login/callback/", {"code": "the-code", "state": state})

    assert client.get(reverse("desk:queue")).status_code == 302  # still signed out
    assert not factories.UserFactory._meta.model.objects.filter(email="stranger@example.test").exists()


def test_a_forged_callback_signs_nobody_in(client, idp, agent):
    idp.userinfo["email"] = agent.email
    start_sign_in(client)

    client.get(f"/accounts/oidc/{PROVIDER_ID}/login/callback/", {"code": "the-code", "state": "forged"})

    assert client.get(reverse("desk:queue")).status_code == 302


def test_the_login_page_offers_sso_when_configured(client, idp):
    body = client.get(reverse("account_login")).content.decode()

    assert f"/accounts/oidc/{PROVIDER_ID}/login/" in body
    assert "Company SSO" in body


def run_check(**env):
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "DEBUG": "false"}
    code = (
        "import django, json, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
        "django.setup(); from django.conf import settings; print(json.dumps(settings.SOCIALACCOUNT_PROVIDERS))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "SECRET_KEY": "check-only", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sso_is_configured_from_the_environment():
    result = run_check(
        OIDC_PROVIDER_ID="company",
        OIDC_SERVER_URL="https://id.example.com/realms/care",
        OIDC_CLIENT_ID="desk",
        OIDC_CLIENT_SECRET="s3cret",
    )
    assert result.returncode == 0, result.stderr
    app = json.loads(result.stdout)["openid_connect"]["APPS"][0]
    assert app["provider_id"] == "company" and app["client_id"] == "desk" and app["secret"] == "s3cret"
    assert app["settings"]["server_url"] == "https://id.example.com/realms/care"

    assert json.loads(run_check().stdout) == {}
    half = run_check(OIDC_PROVIDER_ID="company", OIDC_SERVER_URL="https://id.example.com")
    assert half.returncode != 0
    assert "OIDC_CLIENT_ID" in half.stderr and "OIDC_CLIENT_SECRET" in half.stderr
