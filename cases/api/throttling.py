"""Rate limits for requests made with API tokens (scoped DRF throttles, counted per token).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]`` when set, else the
defaults here. Signed-in pages and their session requests are not throttled by these.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


def _token(request):
    from connectors.models import ApiToken

    return request.auth if isinstance(request.auth, ApiToken) else None


class _ConfiguredRateThrottle(SimpleRateThrottle):
    default_rate = "60/min"

    def get_rate(self) -> str:
        # Read the setting on each use (not at import), so a changed setting applies.
        return (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope) or self.default_rate


class TokenRateThrottle(_ConfiguredRateThrottle):
    """Every request made with a token."""

    scope = "api_token"
    default_rate = "1200/min"

    def get_cache_key(self, request, view) -> str | None:
        token = _token(request)
        return None if token is None else self.cache_format % {"scope": self.scope, "ident": token.pk}


class TokenWriteRateThrottle(_ConfiguredRateThrottle):
    """Changes made with a token (POST, PUT, PATCH, DELETE)."""

    scope = "api_token_write"
    default_rate = "300/min"

    def get_cache_key(self, request, view) -> str | None:
        token = _token(request)
        if token is None or request.method in SAFE_METHODS:
            return None
        return self.cache_format % {"scope": self.scope, "ident": token.pk}


class TokenCreateRateThrottle(_ConfiguredRateThrottle):
    """Creating tokens, per user."""

    scope = "api_token_create"
    default_rate = "20/hour"

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST" or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
