"""Charsets: bytes declared in some charset (often wrongly) decoded to text without raising.

``decode_text`` reads a body or header's bytes by its declared label, trying UTF-8 behind
the Latin labels and a superset behind the East Asian ones, and reading a stray byte as
Windows-1252; ``_fix_mojibake`` undoes UTF-8 read as Latin-1, and ``_clean`` makes text
safe to store.
"""

from __future__ import annotations

import codecs
import re

# --- Charsets -------------------------------------------------------------------------


def _cp1252_for_invalid_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    # Mail that says UTF-8 but carries a stray Windows-1252 byte (a pasted quote mark,
    # a signature from another client): read just those bytes as Windows-1252.
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error("mime-cp1252-fallback", _cp1252_for_invalid_bytes)

# Labels that are, in practice, often UTF-8 or Windows-1252 in disguise. The WHATWG
# encoding standard reads all of them as Windows-1252.
_LATIN_LABELS = {"ascii", "latin_1", "iso8859_1", "cp1252", "iso8859_15"}
# Declared charset -> a superset that decodes what senders actually put in it.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_jp": "euc_jis_2004",
    "iso2022_jp": "iso2022_jp_ext",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "iso8859_8_i": "iso8859_8",
    "tis_620": "cp874",
}


def _codec(charset: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when unknown or not text."""
    label = (charset or "").strip().strip("\"'").lower()
    if not label or label in {"unknown", "unknown-8bit", "x-unknown", "default", "8bit"}:
        return None
    if label == "iso-8859-8-i":
        label = "iso-8859-8"
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    # Non-text codecs (base64, rot13, zlib...) are never a body's charset.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name.replace("-", "_")


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode ``data`` declared as ``charset``; never raises.

    Unknown labels and the Latin/ASCII labels (often wrong) are tried as UTF-8 first;
    bytes that fit no rule are read as Windows-1252 or replaced.
    """
    codec = _codec(charset)
    if codec is None or codec in _LATIN_LABELS:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if codec is None:
            return data.decode("utf-8", errors="mime-cp1252-fallback")
        return data.decode("cp1252" if codec != "iso8859_15" else codec, errors="replace")
    if codec == "utf_8":
        return data.decode("utf-8", errors="mime-cp1252-fallback")
    # The declared charset, a superset senders use under its name, or UTF-8 mislabelled.
    for candidate in (codec, _SUPERSETS.get(codec), "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return data.decode(codec, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="mime-cp1252-fallback")


# Characters UTF-8 bytes become when read as Latin-1 / Windows-1252; lone surrogates (bytes
# no charset could decode). Searched with a pattern: a loop over the characters of a long
# mail costs more than the rest of reading it.
_SINGLE_BYTE_CHARS = re.compile("[\x80-\xff€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_FOLD = re.compile(r"\s*[\r\n]+\s*")


def _fix_mojibake(value: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1 / Windows-1252 (``cafÃ©`` -> ``café``)."""
    if value.isascii() or not _SINGLE_BYTE_CHARS.search(value):
        return value
    for single_byte in ("latin-1", "cp1252"):
        try:
            fixed = value.encode(single_byte).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if fixed != value:
            return fixed
    return value


def _clean(value: str) -> str:
    """Text safe to store: no lone surrogates, no NUL (PostgreSQL refuses it)."""
    if not value.isascii() and _SURROGATES.search(value):
        value = decode_text(value.encode("utf-8", "surrogateescape"), None)
    return value.replace("\x00", "")
