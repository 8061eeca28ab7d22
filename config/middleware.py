"""Site-wide request rules that belong to no single app.

``MfaEnforcementMiddleware``: an admin may require a second factor for some roles
(``MFA_REQUIRED_ROLES``, e.g. ``supervisor,admin``). A signed-in user of such a role who
has no TOTP authenticator is sent to set one up (allauth's MFA pages) before any desk,
admin or API page; API requests get a 403 that says so. The account pages themselves
(sign out, the MFA set-up, re-authentication) stay reachable, and webhooks and static
files are never affected.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

# Paths a user who still has to set up MFA may reach.
OPEN_PREFIXES = ("/accounts/", "/webhooks/", "/static/", "/media/")


def mfa_required(user) -> bool:
    """Whether ``user``'s role is one that must have a TOTP authenticator."""
    required = settings.MFA_REQUIRED_ROLES
    if not required or not (user and user.is_authenticated):
        return False
    from cases.permissions import role_of

    return role_of(user) in required


def mfa_missing(request: HttpRequest, user) -> bool:
    """True when ``user`` must have a second factor and this session has none.

    A session signed in through SSO is accepted: the identity provider enforces its
    own factors. Consumers and other entry points that are not pages (websockets) ask
    this too, with the session of their scope.
    """
    if not mfa_required(user):
        return False
    if _signed_in_with_sso(request, user):
        return False
    from allauth.mfa.models import Authenticator

    return not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def _signed_in_with_sso(request: HttpRequest, user) -> bool:
    from allauth.account.authentication import get_authentication_records

    try:
        records = get_authentication_records(request, user)
    except Exception:  # a session without the records: not SSO
        return False
    return any(record.get("method") == "socialaccount" for record in records)


class MfaEnforcementMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.MFA_REQUIRED_ROLES and not request.path.startswith(OPEN_PREFIXES):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and mfa_missing(request, user):
                return self._refuse(request)
        return self.get_response(request)

    def _refuse(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": "Your role requires two-factor authentication: set it up at "
                    + reverse("mfa_activate_totp")
                    + " first.",
                    "code": "mfa_required",
                },
                status=403,
            )
        setup = reverse("mfa_activate_totp")
        if request.headers.get("HX-Request"):
            # htmx would follow a redirect inside the page fragment: tell it to load the page.
            return HttpResponse(status=204, headers={"HX-Redirect": setup})
        return redirect(setup)
