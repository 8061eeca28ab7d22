"""One error shape for the whole API: ``{"error": {"code", "message", "field"}}``.

``code`` is machine-readable (``reason_required``, ``stale_draft``, ``not_permitted``,
``already_claimed``, ``not_found``, ``required``, ``invalid_choice``...), ``message`` is
for people, ``field`` names the input at fault (``null`` when no one field is).
Service errors keep their own code and status (see ``cases.errors``).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cases.errors import ServiceError

# DRF's own codes, renamed to the API's vocabulary where it has a word for them.
RENAMED_CODES = {"permission_denied": "not_permitted"}


def error_body(*, code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def first_error(detail, path: tuple[str, ...] = ()) -> tuple[str | None, str, str]:
    """The first (field path, message, code) in a DRF error detail, depth first."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            key_path = path if key in ("non_field_errors", "__all__") else (*path, str(key))
            return first_error(value, key_path)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            nested = isinstance(value, dict | list)
            return first_error(value, (*path, str(index)) if nested else path)
    field = ".".join(path) or None
    return field, str(detail), getattr(detail, "code", None) or "invalid"


def _django_validation(exc: DjangoValidationError) -> exceptions.ValidationError:
    """Django's error, field by field, keeping each message's code."""

    def details(errors) -> list[ErrorDetail]:
        return [ErrorDetail(message, code=error.code or "invalid") for error in errors for message in error]

    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError({key: details(errors) for key, errors in exc.error_dict.items()})
    return exceptions.ValidationError(details(exc.error_list))


def exception_handler(exc, context):
    """Turn any refusal into the one error shape; anything else stays a 500 (and is logged)."""
    if isinstance(exc, ServiceError):
        return Response(error_body(code=exc.code, message=exc.message, field=exc.field), status=exc.status)
    if isinstance(exc, ProtectedError | RestrictedError):
        return Response(
            error_body(code="in_use", message="Other records still use this one; remove or move them first."),
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, IntegrityError):
        return Response(
            error_body(code="conflict", message="That would clash with an existing record."),
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        exc = _django_validation(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = first_error(exc.detail)
    else:
        field = None
        detail = exc.detail
        message = first_error(detail)[1] if isinstance(detail, dict | list) else str(detail)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        code = RENAMED_CODES.get(code, code)
    response.data = error_body(code=code, message=message, field=field)
    return response
