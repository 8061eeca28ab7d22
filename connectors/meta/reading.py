"""Reading Meta's webhook bodies: typed access to fields that names the field on a
mistake, and the reader that collects messages and updates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..base import (
    DeliveryUpdate,
    InboundMessage,
    ParseError,
    ParseResult,
)

WHATSAPP_STATES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    # A voice message listened to: it was read.
    "played": "read",
    "failed": "failed",
}

# Messenger attachment types whose URL points at a file of that family.
ATTACHMENT_FAMILIES = {"image": "image/*", "video": "video/*", "audio": "audio/*"}
WHATSAPP_MEDIA_TYPES = ("image", "document", "audio", "video", "sticker", "voice")


def field_obj(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ParseError(f"{path} is missing or not an object.")
    return value


def field_list(value: Any, path: str, *, required: bool = False) -> list:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{path} is missing or not a list.")
    return value


def field_text(value: Any, path: str) -> str:
    """An optional string field; numbers are accepted as ids, anything else is an error."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParseError(f"{path} is not a string.")
    return str(value)


def field_opt_id(value: Any, path: str) -> str:
    """An optional platform id ("" when absent)."""
    return field_text(value, path).strip()


def field_id(value: Any, path: str) -> str:
    """A required platform id."""
    text = field_opt_id(value, path)
    if not text:
        raise ParseError(f"{path} is missing.")
    return text


def field_when(value: Any, path: str) -> datetime:
    """A Unix time in seconds or milliseconds (Messenger uses both), or a Graph API
    ISO 8601 time (``2024-06-13T12:16:40+0000``), as an aware datetime."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    elif isinstance(value, str):
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise ParseError(f"{path} is not a Unix timestamp or an ISO 8601 time.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{path} is missing or not a Unix timestamp.")
    seconds = value / 1000 if value > 100_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ParseError(f"{path} is out of range.") from exc


class Reader:
    """Collects what one body yields; entries it skips leave a reason."""

    def __init__(self, channel):
        self.channel = channel
        self.messages: list[InboundMessage] = []
        self.updates: list[DeliveryUpdate] = []
        self.reasons: list[str] = []
        self._seen_messages: set[str] = set()
        self._seen_updates: set[tuple[str, str]] = set()

    def add_message(self, message: InboundMessage) -> None:
        # A body may carry the same message twice; the second copy adds nothing.
        if message.external_id not in self._seen_messages:
            self._seen_messages.add(message.external_id)
            self.messages.append(message)

    def add_update(self, update: DeliveryUpdate) -> None:
        key = (update.external_id, update.state)
        if key not in self._seen_updates:
            self._seen_updates.add(key)
            self.updates.append(update)

    def skip(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def is_ours(self, account_id: str) -> bool:
        return not self.channel.account_id or account_id == self.channel.account_id

    def result(self) -> ParseResult:
        if self.messages or self.updates:
            return ParseResult(messages=self.messages, updates=self.updates)
        return ParseResult(ignored_reason="; ".join(self.reasons) or "Nothing to ingest.")
