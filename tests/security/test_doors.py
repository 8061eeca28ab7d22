"""Every door a signed-in session comes through asks the same of the second factor.

The doors: the desk's pages, the Django admin, the API with a session, the desk socket.
The sessions: one that used the user's TOTP at sign-in (let in), one that signed in with
the password alone (as Django's own admin login did: refused and signed out), and one of
a user whose role requires a factor they have not set up (sent to set it up).
"""

from __future__ import annotations

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from channels_app.consumers import DeskConsumer
from tests.desk.conftest import PASSWORD
from tests.security.test_mfa import SETUP, sign_in_with_code

# The socket reads the database from its own thread: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "/accounts/login/"


@pytest.fixture
def staff_supervisor(supervisor):
    supervisor.is_staff = True
    supervisor.is_superuser = True
    supervisor.save()
    return supervisor


@pytest.fixture
def secret(staff_supervisor):
    secret = generate_totp_secret()
    TOTP.activate(staff_supervisor, secret)
    return secret


def socket_close_code(client, user) -> int | None:
    """``None`` when the desk socket opens for this client's session, else its close code."""
    communicator = WebsocketCommunicator(DeskConsumer.as_asgi(), "/ws/desk/")
    communicator.scope["user"] = user
    communicator.scope["session"] = SessionStore(
        session_key=client.cookies[settings.SESSION_COOKIE_NAME].value
    )

    async def connect():
        ok, code = await communicator.connect()
        await communicator.disconnect()
        return None if ok else code

    return async_to_sync(connect)()


def test_the_admin_login_is_the_desk_login(client, staff_supervisor, secret):
    # The admin's own form is not served: it sends you to the sign-in with the second factor.
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)

    # and posting the password to it signs nobody in
    response = client.post("/admin/login/", {"username": staff_supervisor.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session
    assert client.get("/desk/")["Location"].startswith(LOGIN)


def test_a_session_that_skipped_the_factor_is_refused_at_every_door(client, staff_supervisor, secret):
    # Signed in with the password alone, through Django's own login (as the admin form did).
    assert client.login(username=staff_supervisor.username, password=PASSWORD)

    assert socket_close_code(client, staff_supervisor) == 4403
    api = client.get("/api/v1/cases/")
    assert api.status_code == 403 and api.json()["code"] == "mfa_not_completed"

    # the session is ended, not only this request refused
    assert "_auth_user_id" not in client.session
    assert client.login(username=staff_supervisor.username, password=PASSWORD)
    admin = client.get("/admin/")
    assert admin.status_code == 302 and admin["Location"] == f"{LOGIN}?next=%2Fadmin%2F"
    assert client.login(username=staff_supervisor.username, password=PASSWORD)
    desk = client.get("/desk/", headers={"HX-Request": "true"})
    assert desk.status_code == 204 and desk["HX-Redirect"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session


def test_a_session_that_used_the_factor_opens_every_door(client, staff_supervisor, secret):
    sign_in_with_code(client, staff_supervisor, secret)

    assert client.get("/desk/").status_code == 200
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/v1/cases/").status_code == 200
    assert socket_close_code(client, staff_supervisor) is None


def test_setting_up_a_factor_mid_session_does_not_end_the_session(client, agent):
    client.force_login(agent)
    TOTP.activate(agent, generate_totp_secret())  # as the set-up page does, in this session

    assert client.get("/desk/").status_code == 200
    assert socket_close_code(client, agent) is None


def test_a_role_that_requires_a_factor_is_sent_to_set_it_up_at_every_door(client, staff_supervisor, settings):
    settings.MFA_REQUIRED_ROLES = ["supervisor", "admin"]
    assert client.login(username=staff_supervisor.username, password=PASSWORD)

    assert client.get("/desk/")["Location"] == SETUP
    assert client.get("/admin/")["Location"] == SETUP
    api = client.get("/api/v1/cases/")
    assert api.status_code == 403 and api.json()["code"] == "mfa_required"
    assert socket_close_code(client, staff_supervisor) == 4403
    assert client.session["_auth_user_id"] == str(staff_supervisor.pk)  # kept: they may set it up


def test_an_api_token_is_not_a_session_and_is_not_asked(client, staff_supervisor, secret):
    from connectors import api_tokens

    _, key = api_tokens.api_token_create(user=staff_supervisor, name="integration")

    # An integration's token is its own credential: no session, nothing to challenge.
    response = client.get("/api/v1/cases/", headers={"Authorization": f"Token {key}"})

    assert response.status_code == 200
