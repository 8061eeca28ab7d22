"""Reading ``application/x-www-form-urlencoded`` bodies as platforms send them."""

from __future__ import annotations

from urllib.parse import parse_qsl


def form_pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    """The ``(name, value)`` pairs of a form body, as the bytes that were encoded.

    ``parse_qsl`` refuses bytes outside ASCII, raw or percent-encoded. Latin-1 maps
    each byte to one character and back, so reading through it keeps every value's
    bytes exactly (UTF-8 or not); callers decode them as they need.
    """
    text = body.strip().decode("latin-1")
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1")
    ]
