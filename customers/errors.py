"""Errors the customer services raise.

A refusal is a ``ValidationError`` naming the input at fault, so forms and the API show
it like any other invalid input; customers know nothing of the case services' errors.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError


class CustomerRefused(ValidationError):
    """A change to customers or identities that the rules refuse; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str, code: str = "invalid"):
        super().__init__({field: [ValidationError(message, code=code)]})
        self.field = field
        self.reason = message
        self.code = code

    def __str__(self) -> str:
        return self.reason
