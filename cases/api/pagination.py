"""Keyset ("cursor") pagination: every page, however deep, costs one indexed range query.

A cursor is the last row's sort key, base64-encoded JSON; the next page holds the rows
strictly after it. No OFFSET and no COUNT, so the 100,000th page costs what the first does.
Only forward links are given (``next``); a client restarts from the first page to go back.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from operator import or_

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Q
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from cases.errors import ServiceError


@dataclass(frozen=True)
class Key:
    """One column of the sort order. The last key of an order must be unique and never null (the id)."""

    field: str
    descending: bool = False
    # Nullable columns sort their nulls last, whichever the direction.
    nullable: bool = False

    def order(self):
        expression = F(self.field)
        if self.nullable:
            return expression.desc(nulls_last=True) if self.descending else expression.asc(nulls_last=True)
        return expression.desc() if self.descending else expression.asc()

    def beyond(self, value) -> Q | None:
        """Rows strictly after ``value`` on this column (None: nothing sorts after a null)."""
        if value is None:
            return None
        q = Q(**{f"{self.field}__{'lt' if self.descending else 'gt'}": value})
        if self.nullable:
            q |= Q(**{f"{self.field}__isnull": True})
        return q

    def equal(self, value) -> Q:
        return Q(**{f"{self.field}__isnull": True}) if value is None else Q(**{self.field: value})


def after(keys: tuple[Key, ...], values: list) -> Q:
    """Rows strictly after the row whose sort key is ``values``, in the order ``keys`` define."""
    terms, prefix = [], Q()
    for key, value in zip(keys, values, strict=True):
        beyond = key.beyond(value)
        if beyond is not None:
            terms.append(prefix & beyond)
        prefix &= key.equal(value)
    return reduce(or_, terms) if terms else Q(pk__in=[])


class KeysetPagination(BasePagination):
    """Forward-only keyset pages of ``limit`` rows (default 50, at most 200) in the order of ``keys``."""

    keys: tuple[Key, ...] = (Key("id"),)
    default_limit = 50
    max_limit = 200
    limit_query_param = "limit"
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        limit = self._limit(request)
        queryset = queryset.order_by(*(key.order() for key in self.keys))
        raw = request.query_params.get(self.cursor_query_param)
        if raw:
            queryset = queryset.filter(after(self.keys, self._decode(raw, queryset.model)))
        rows = list(queryset[: limit + 1])
        self.next_values = self._values(rows[limit - 1]) if len(rows) > limit else None
        return rows[:limit]

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "results": data})

    def get_next_link(self) -> str | None:
        if self.next_values is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self._encode(self.next_values))

    def _limit(self, request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw in (None, ""):
            return self.default_limit
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= self.max_limit:
            raise ServiceError(
                f"limit is a whole number from 1 to {self.max_limit}.", code="invalid", field="limit"
            )
        return limit

    def _values(self, row) -> list:
        values = []
        for key in self.keys:
            value = getattr(row, key.field)
            values.append(value.isoformat() if hasattr(value, "isoformat") else value)
        return values

    @staticmethod
    def _encode(values: list) -> str:
        return (
            base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")
        )

    def _decode(self, raw: str, model) -> list:
        try:
            values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            if not isinstance(values, list) or len(values) != len(self.keys):
                raise ValueError("wrong length")
            decoded = []
            for key, value in zip(self.keys, values, strict=True):
                if value is None and not key.nullable:
                    raise ValueError("null key")
                if value is not None and (
                    not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) > 40
                ):
                    raise ValueError("bad value")
                if isinstance(value, int) and not -(2**63) < value < 2**63:
                    raise ValueError("out of range")
                field = model._meta.get_field(key.field.removesuffix("_id"))
                value = None if value is None else field.to_python(value)
                if isinstance(value, datetime):
                    value = value.astimezone(UTC)  # the database refuses far-out offsets
                decoded.append(value)
            return decoded
        except (
            ValueError,
            TypeError,
            OverflowError,
            binascii.Error,
            UnicodeDecodeError,
            DjangoValidationError,
        ) as exc:
            raise ServiceError(
                "The cursor is not one this API gave out.", code="invalid_cursor", field="cursor"
            ) from exc

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The `next` link's cursor: where the page starts.",
                "schema": {"type": "string"},
            },
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {self.default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
        ]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "format": "uri", "nullable": True},
                "results": schema,
            },
        }


class CasePagination(KeysetPagination):
    """Cases by due time, soonest first (cases without a running clock last), newest first on ties."""

    keys = (Key("due_at", nullable=True), Key("id", descending=True))


class MessagePagination(KeysetPagination):
    """Messages in time order."""

    keys = (Key("sent_at"), Key("id"))


class NewestFirstPagination(KeysetPagination):
    """Logs, newest first."""

    keys = (Key("id", descending=True),)
