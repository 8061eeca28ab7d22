"""Signing in by e-mail, and allauth's pages rendered inside the desk layout."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from tests.desk.conftest import PASSWORD, open_case

LAYOUT_MARKERS = ('class="topbar"', "css/caseline.css", "vendor/htmx.min.js", "js/desk.js")


def in_layout(body: str) -> bool:
    leaked_template_syntax = "{#" in body or "{%" in body
    return all(marker in body for marker in LAYOUT_MARKERS) and not leaked_template_syntax


def test_login_page_is_ours(client, db):
    body = client.get(reverse("account_login")).content.decode()

    assert in_layout(body)
    assert 'type="email"' in body and 'type="password"' in body
    assert "sign up" not in body.lower()  # invite only
    assert "<script>" not in body and "style=" not in body  # the CSP allows neither


def test_login_by_email_shows_my_cases_only(client, agent, other_agent, channel):
    mine = open_case(channel=channel, assignee=agent)
    theirs = open_case(channel=channel, assignee=other_agent)

    response = client.post(
        reverse("account_login"), {"login": "AGENT@example.test", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("desk:queue")
    body = response.content.decode()
    assert mine.reference in body
    assert theirs.reference not in body
    assert re.search(r'<span class="role"[^>]*>Agent</span>', body)
    assert "Social Care" in body  # the department in the top bar
    assert "Sign out" in body
    assert ">Admin<" not in body


def test_wrong_password_is_refused(client, agent):
    response = client.post(reverse("account_login"), {"login": "agent@example.test", "password": "nope"})

    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_admin_sees_the_admin_link(client, db):
    from tests import factories

    admin = factories.UserFactory(username="boss", email="boss@example.test", is_staff=True)
    client.force_login(admin)

    body = client.get(reverse("desk:queue")).content.decode()

    assert '<span class="role" title="Your role">Admin</span>' in body
    assert f'href="{reverse("admin:index")}"' in body


def test_sign_out_is_a_post(client, agent):
    client.force_login(agent)

    page = client.get(reverse("account_logout"))
    response = client.post(reverse("account_logout"), follow=True)

    assert in_layout(page.content.decode())
    assert response.redirect_chain[-1][0] == reverse("account_login")
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("name", ["account_reset_password", "account_reset_password_done"])
def test_password_reset_pages_use_the_layout(client, db, name):
    response = client.get(reverse(name))

    assert response.status_code == 200
    assert in_layout(response.content.decode())


def test_second_factor_page_uses_the_layout(client, agent):
    TOTP.activate(agent, generate_totp_secret())

    response = client.post(
        reverse("account_login"), {"login": "agent@example.test", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("mfa_authenticate")
    body = response.content.decode()
    assert in_layout(body)
    assert "authenticator code" in body
    assert "_auth_user_id" not in client.session
