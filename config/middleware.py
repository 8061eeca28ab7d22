"""Site-wide request rules that belong to no single app: the second factor.

Two rules, asked by every door a signed-in user comes through (desk and admin pages,
the API with a session, the desk socket):

- **A user who has a second factor must have used it in this session.** Whoever signs in
  through allauth's flow with a TOTP authenticator is asked for a code before the session
  is signed in; the Django admin's own login is routed through that flow too
  (``config/urls.py``). Any other way into a session (an old admin login, a session made
  by hand) has no record of the factor, and is signed out and sent to sign in again.
  Whether the user had a factor is noted in the session when it signs in
  (:func:`note_factor_at_sign_in`), so the rule costs no query per request; a user who
  sets up a factor during the session is not thrown out of it.
- **A role may require a second factor** (``MFA_REQUIRED_ROLES``, e.g.
  ``supervisor,admin``): a signed-in user of such a role who has no TOTP authenticator is
  sent to set one up (allauth's MFA pages) before anything else.

A session signed in through SSO satisfies both: the identity provider enforces its own
factors. API requests are answered 403 with a ``code`` that says which rule; the account
pages (sign in and out, the MFA set-up, re-authentication), webhooks and static files are
never affected.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

# Paths a user who still owes a second factor may reach.
# /i18n/: the language chooser (a cookie) works on the set-up page too.
OPEN_PREFIXES = ("/accounts/", "/webhooks/", "/static/", "/media/", "/i18n/")

# The session's note of whether its user had a second factor when it signed in:
# ``[user id, had one]``.
FACTOR_AT_SIGN_IN = "caseline_factor_at_sign_in"

# What a user still owes: a factor to set up, or the one they have, for this session.
SET_UP = "mfa_required"
CHALLENGE = "mfa_not_completed"


def mfa_required(user) -> bool:
    """Whether ``user``'s role is one that must have a TOTP authenticator."""
    required = settings.MFA_REQUIRED_ROLES
    if not required or not (user and user.is_authenticated):
        return False
    from cases.permissions import role_of

    return role_of(user) in required


def _has_factor(user) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def _sign_in_methods(session, user) -> set[str]:
    """The ways this session's user proved who they are (allauth's records of it)."""
    from allauth.account.authentication import get_authentication_records

    try:
        records = get_authentication_records(_SessionOnly(session), user)
    except Exception:  # a session without the records
        return set()
    return {record.get("method") for record in records}


class _SessionOnly:
    """What allauth's record reader needs of a request: its session."""

    def __init__(self, session):
        self.session = session if session is not None else {}


def second_factor_owed(session, user) -> str | None:
    """``SET_UP``, ``CHALLENGE`` or ``None``: what ``user`` still owes in ``session``.

    ``session`` is a request's session or a socket scope's (or ``None``).
    """
    if not (user and user.is_authenticated):
        return None
    methods = _sign_in_methods(session, user)
    if methods & {"mfa", "socialaccount"}:
        return None
    if mfa_required(user) and not _has_factor(user):
        return SET_UP
    noted = session.get(FACTOR_AT_SIGN_IN) if session is not None else None
    if not (isinstance(noted, list) and len(noted) == 2 and noted[0] == user.pk):
        # A session from before the note was kept, or one made without signing in.
        noted = [user.pk, _has_factor(user)]
        if session is not None:
            session[FACTOR_AT_SIGN_IN] = noted
    return CHALLENGE if noted[1] else None


def note_factor_at_sign_in(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: note in the session whether the user has a factor."""
    if request is not None and hasattr(request, "session"):
        request.session[FACTOR_AT_SIGN_IN] = [user.pk, _has_factor(user)]


class MfaEnforcementMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(OPEN_PREFIXES):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                owed = second_factor_owed(request.session, user)
                if owed == SET_UP:
                    return self._send_to_set_up(request)
                if owed == CHALLENGE:
                    return self._sign_out(request)
        return self.get_response(request)

    def _send_to_set_up(self, request: HttpRequest) -> HttpResponse:
        setup = reverse("mfa_activate_totp")
        if request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": f"Your role requires two-factor authentication: set it up at {setup} first.",
                    "code": SET_UP,
                },
                status=403,
            )
        return self._go(request, setup)

    def _sign_out(self, request: HttpRequest) -> HttpResponse:
        """A session that skipped the user's second factor is ended, not served."""
        logout(request)
        login = reverse("account_login")
        if request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": f"This session did not complete two-factor authentication: sign in at {login}.",
                    "code": CHALLENGE,
                },
                status=403,
            )
        return self._go(request, f"{login}?{urlencode({'next': request.get_full_path()})}")

    @staticmethod
    def _go(request: HttpRequest, url: str) -> HttpResponse:
        if request.headers.get("HX-Request"):
            # htmx would follow a redirect inside the page fragment: tell it to load the page.
            return HttpResponse(status=204, headers={"HX-Redirect": url})
        return redirect(url)
