"""Errors the services raise; pages, the API and sockets turn them into messages."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the rules refuse. ``code`` is machine-readable, ``field`` names the input at fault."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field = field


class NotPermitted(ServiceError):
    code = "not_permitted"
    status = 403


class ReasonRequired(ServiceError):
    code = "reason_required"

    def __init__(self, message: str = "A reason is required.", **kwargs):
        kwargs.setdefault("field", "reason")
        super().__init__(message, **kwargs)


class AlreadyClaimed(ServiceError):
    code = "already_claimed"
    status = 409


class StaleDraft(ServiceError):
    code = "stale_draft"
    status = 409
