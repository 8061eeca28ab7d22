"""REST API authentication with personal tokens: ``Authorization: Token <key>``."""

from __future__ import annotations

from rest_framework import HTTP_HEADER_ENCODING, exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS

from .api_tokens import api_token_authenticate


class ReadOnlyToken(exceptions.PermissionDenied):
    default_detail = "This token may only read."
    default_code = "read_only_token"


class ApiTokenAuthentication(BaseAuthentication):
    """Authenticate by a personal API token; ``request.auth`` is the ApiToken.

    A read-scoped token is refused (403) on any unsafe method, whatever the endpoint.
    Token requests need no CSRF token: the key is not sent by browsers on their own.
    """

    keyword = "Token"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode(HTTP_HEADER_ENCODING):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Token <key>' with one key.")
        try:
            key = header[1].decode(HTTP_HEADER_ENCODING)
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from exc
        token = api_token_authenticate(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        if token.read_only and request.method not in SAFE_METHODS:
            raise ReadOnlyToken()
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
