"""Which connector module speaks for which kind of channel."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# Channel.Kind value -> module implementing the contract in connectors.base.
CONNECTORS: dict[str, str] = {
    "x": "connectors.x",
    "facebook": "connectors.meta",
    "instagram": "connectors.meta",
    "whatsapp": "connectors.meta",
    "email": "connectors.email",
    "phone": "connectors.voice",
}


def connector_for(kind: str) -> ModuleType:
    """The connector module for a channel kind; ``LookupError`` for an unknown kind."""
    try:
        return import_module(CONNECTORS[kind])
    except KeyError:
        raise LookupError(f"No connector for channel kind {kind!r}.") from None
