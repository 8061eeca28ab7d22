"""The second factor, at every door.

MFA enforceable per role (MFA_REQUIRED_ROLES): a user of such a role without a TOTP
authenticator reaches no desk, admin or API page until it is set up. A user who has a
factor reaches none with a session that did not use it (``test_doors.py`` in this folder
tries every door)."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.urls import reverse

from tests import factories
from tests.desk.conftest import PASSWORD, open_case

pytestmark = pytest.mark.django_db

SETUP = "/accounts/2fa/totp/activate/"


def current_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def sign_in_with_code(client, user, secret: str) -> None:
    """Sign in as the desk's form does: the password, then a code from the authenticator."""
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")
    response = client.post(reverse("mfa_authenticate"), {"code": current_code(secret)})
    assert response.status_code == 302, response.content.decode()[-800:]
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.fixture
def required(settings):
    settings.MFA_REQUIRED_ROLES = ["supervisor", "admin"]


@pytest.fixture
def admin_user(db):
    return factories.UserFactory(username="admin", email="admin@example.test", is_staff=True)


def test_the_setup_page_is_where_it_is_expected():
    assert reverse("mfa_activate_totp") == SETUP


@pytest.mark.parametrize("path", ["/desk/", "/admin/", "/"])
def test_a_supervisor_without_totp_is_sent_to_set_it_up(client, supervisor, required, path):
    client.force_login(supervisor)

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == SETUP


def test_an_admin_without_totp_is_sent_to_set_it_up(client, admin_user, required):
    client.force_login(admin_user)

    assert client.get("/desk/")["Location"] == SETUP


def test_the_api_answers_403_saying_why(client, supervisor, required):
    client.force_login(supervisor)

    response = client.get("/api/v1/cases/")

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"


def test_an_htmx_request_is_told_to_load_the_setup_page(client, supervisor, channel, required):
    case = open_case(channel=channel)
    client.force_login(supervisor)

    response = client.post(reverse("desk:case_claim", args=[case.reference]), headers={"HX-Request": "true"})

    assert response.status_code == 204
    assert response["HX-Redirect"] == SETUP
    case.refresh_from_db()
    assert case.assignee is None  # the action did not run


def test_account_pages_and_webhooks_stay_reachable(client, supervisor, required):
    client.force_login(supervisor)

    assert client.get(SETUP).status_code in (200, 302)
    assert not client.get(SETUP).get("Location", "").startswith(SETUP)
    assert client.post(reverse("account_logout")).status_code == 302
    assert client.get("/webhooks/no-such-channel/").status_code == 404


def test_roles_not_listed_are_not_asked(client, agent, required):
    client.force_login(agent)

    assert client.get("/desk/").status_code == 200


def test_nothing_is_enforced_without_the_setting(client, supervisor, settings):
    settings.MFA_REQUIRED_ROLES = []
    client.force_login(supervisor)

    assert client.get("/desk/").status_code == 200


def test_with_totp_used_at_sign_in_the_desk_opens(client, supervisor, required):
    secret = generate_totp_secret()
    TOTP.activate(supervisor, secret)
    sign_in_with_code(client, supervisor, secret)

    assert client.get("/desk/").status_code == 200


def test_a_session_signed_in_through_sso_is_accepted(client, supervisor, required):
    client.force_login(supervisor)
    session = client.session
    session["account_authentication_methods"] = [
        {"method": "socialaccount", "at": time.time(), "provider": "company", "uid": "s-1"}
    ]
    session["account_authentication_methods_user"] = str(supervisor.pk)
    session.save()

    assert client.get("/desk/").status_code == 200


def test_a_supervisor_signs_in_sets_up_totp_and_reaches_the_desk(client, supervisor, required):
    # when they sign in through the form, they land on the set-up page, not the desk
    response = client.post(
        reverse("account_login"), {"login": supervisor.email, "password": PASSWORD}, follow=True
    )
    assert [url for url, _ in response.redirect_chain][:2] == ["/desk/", SETUP]
    assert client.get("/desk/")["Location"] == SETUP

    # when they confirm their password (allauth asks before adding a factor) and open the page
    reauthenticate = response.redirect_chain[-1][0]
    assert reauthenticate.startswith(reverse("account_reauthenticate"))
    response = client.post(reauthenticate, {"password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == SETUP and response.status_code == 200

    # and confirm a code from their authenticator app
    secret = client.session[SECRET_SESSION_KEY]
    response = client.post(SETUP, {"code": current_code(secret)})
    assert response.status_code == 302, response.content.decode()[-1500:]

    # then they have a TOTP authenticator and the desk opens
    assert Authenticator.objects.filter(user=supervisor, type=Authenticator.Type.TOTP).exists()
    assert client.get("/desk/").status_code == 200
