"""OpenAPI details drf-spectacular cannot guess: the token scheme and the error responses."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from .serializers import ErrorSerializer


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "connectors.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A personal API token: `Authorization: Token <key>`.",
        }


ERRORS = {
    "400": "Invalid input; `field` names it.",
    "401": "Not signed in, or an unknown or revoked token.",
    "403": "Not permitted (`not_permitted`), or a read-only token on a change (`read_only_token`).",
    "404": "No such object, or one you may not see.",
    "409": "A conflict: `stale_draft`, `already_claimed`, `in_use`...",
    "429": "Too many requests with this token; see Retry-After.",
}


class CaselineAutoSchema(AutoSchema):
    """Every operation documents the one error shape for the statuses it can answer with."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        error = self.resolve_serializer(ErrorSerializer, "response")
        statuses = ["400", "401", "403", "429"]
        if "{" in path:
            statuses.append("404")
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            statuses.append("409")
        for status in sorted(statuses):
            operation["responses"].setdefault(
                status,
                {"content": {"application/json": {"schema": error.ref}}, "description": ERRORS[status]},
            )
        return operation
