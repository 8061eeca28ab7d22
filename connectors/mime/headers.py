"""Headers: one header's value as clean text, Message-IDs, addresses and dates.

RFC 2047 encoded words and 8-bit bytes in any charset (``decode_header_text``,
``header_text``), the fast path for plain machine-made headers (``_plain_header``,
``plain_message_id``, ``_plain_mailbox``), Message-IDs as Caseline stores them
(``normalize_message_id``, ``message_ids``), address headers (``_addresses``) and dates
(``_header_date``, ``_received_date``). The parser's policy that remembers parsed header
values (``_POLICY``, ``_parse_bytes``) is here too: every reader of a message uses it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import quopri
import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from .charsets import _FOLD, _SURROGATES, _clean, _fix_mojibake, decode_text

# cases.Message.subject and external ids are CharField(255).
MAX_SUBJECT = 255
MAX_ID = 255


# --- Headers --------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")


def _word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "Bb":
        payload = payload.rstrip("=")
        try:
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return payload.encode("ascii", "replace")
    return quopri.decodestring(payload.replace("_", " ").encode("ascii", "replace"), header=True)


def decode_header_text(raw: str) -> str:
    """Decode a raw header value: 8-bit bytes and RFC 2047 encoded words, any charset."""
    if _SURROGATES.search(raw):
        raw = decode_text(raw.encode("ascii", "surrogateescape"), None)
    raw = re.sub(r"\r?\n(?=[ \t])", "", raw)
    # Whitespace between two adjacent encoded words is not part of the text (RFC 2047 6.2).
    raw = _BETWEEN_WORDS.sub(r"\1\2", raw)
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = None
    position = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            out.append(decode_text(b"".join(pending), pending_charset))
        pending, pending_charset = [], None

    for match in _ENCODED_WORD.finditer(raw):
        if match.start() > position:
            flush()
            out.append(raw[position : match.start()])
        charset = match.group(1).split("*", 1)[0]
        if pending and charset.lower() != (pending_charset or "").lower():
            flush()
        pending_charset = charset
        # Joined before decoding: senders split multi-byte characters across words.
        pending.append(_word_bytes(match.group(2), match.group(3)))
        position = match.end()
    flush()
    out.append(raw[position:])
    return _clean("".join(out))


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return value
    return None


def header_text(msg: Message, name: str) -> str:
    """One header as clean text (folded lines joined); '' when absent."""
    raw = _raw_header(msg, name)
    if raw is None:
        return ""
    try:
        value = str(msg[name])
    except Exception:  # noqa: BLE001 - any header the parser chokes on is decoded by hand
        value = None
    if value is None or "\ufffd" in value or _SURROGATES.search(value):
        value = decode_header_text(raw)
    value = _fix_mojibake(_clean(value))
    return _unfold(value)


def _plain_header(msg: Message, name: str) -> str:
    """A header of machine-made ASCII (message ids, a date) as it came, folded lines joined;
    through ``header_text`` when it carries anything else. The policy's parse of such a
    header (an RFC 5322 grammar walk) cost more than the rest of reading a short mail."""
    raw = _raw_header(msg, name)
    if raw is None:
        return ""
    if not raw.isascii() or "=?" in raw or "\x00" in raw:
        return header_text(msg, name)
    return _unfold(raw)


def _unfold(value: str) -> str:
    """A header's folded lines joined into one."""
    return _FOLD.sub(" ", value).strip()


def normalize_message_id(value: str) -> str:
    """``<abc@example.com>`` -> ``abc@example.com``; too-long ids become a stable digest."""
    value = (value or "").strip()
    match = re.search(r"<([^<>]+)>", value)
    if match:
        value = match.group(1)
    elif value:
        value = value.split()[0]
    value = re.sub(r"\s+", "", value)
    if len(value) > MAX_ID:
        value = "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


# A header block of plain header lines only (a name of printable ASCII, a colon, the value,
# folded lines), ended by its blank line: what the parser reads without a defect.
_PLAIN_HEADER_BLOCK = re.compile(rb"(?:[!-9;-~]+:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)+\r?\n")
_MESSAGE_ID_LINE = re.compile(rb"^message-id:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)


def plain_message_id(raw: bytes) -> str | None:
    """The normalized Message-ID of raw message bytes, read straight from a plain header block.

    '' when such a block has no Message-ID. None when the block is anything else (a mbox
    ``From`` line, a line that is no header, no blank line after it) or the id is more than
    ASCII: the caller then parses the message, which gives the same id for a plain one. Saves
    the parser's pass over every header where only one is wanted (a webhook's delivery id).
    """
    block = _PLAIN_HEADER_BLOCK.match(raw)
    if block is None:
        return None
    found = _MESSAGE_ID_LINE.search(raw, 0, block.end())
    if found is None:
        return ""
    value = found.group(1)
    if not value.isascii() or b"=?" in value or b"\x00" in value:
        return None
    return normalize_message_id(_unfold(value.decode("ascii")))


def message_ids(value: str) -> list[str]:
    """All Message-IDs in a References / In-Reply-To value, in header order."""
    found = re.findall(r"<[^<>]+>", value or "")
    if not found:
        found = [token for token in (value or "").split() if "@" in token]
    ids: list[str] = []
    for token in found:
        normalized = normalize_message_id(token)
        if normalized and normalized not in ids:
            ids.append(normalized)
    return ids


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_ADDR_SPEC = rf"{_DOT_ATOM}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# One mailbox of the common shapes, on one line: ``addr``, ``<addr>``, ``Name <addr>`` or
# ``"Any name" <addr>``, in printable ASCII; the name plain words (no dots, comments,
# groups, encoded words).
_PLAIN_MAILBOX = re.compile(
    rf'[ \t]*(?:(?:"(?P<quoted>[\x20\x21\x23-\x5b\x5d-\x7e]*)"|(?P<words>(?:{_ATEXT}+[ \t]+)*{_ATEXT}+)?)[ \t]*'
    rf"<(?P<bracketed>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))[ \t]*"
)


def _plain_mailbox(raw: str) -> tuple[str, str] | None:
    """(display name, address) of a header holding one mailbox of the common shapes, read
    directly; None for anything else. The policy's grammar walk gives the same pair for
    these and costs more than the rest of reading a short mail."""
    match = _PLAIN_MAILBOX.fullmatch(raw) if "=?" not in raw else None
    if match is None:
        return None
    if match["bare"]:
        return "", match["bare"]
    display = match["quoted"] if match["quoted"] is not None else " ".join((match["words"] or "").split())
    return _clean(display), match["bracketed"]


def _policy_addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs as the policy's grammar reads them; [] when it fails."""
    try:
        return [
            (_clean(address.display_name or ""), address.addr_spec)
            for address in msg[name].addresses
            if address.addr_spec and "@" in address.addr_spec
        ]
    except Exception:  # noqa: BLE001 - the caller falls back to the tolerant parser
        return []


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header."""
    raw = _raw_header(msg, name)
    if raw is None:
        return []
    plain = _plain_mailbox(raw)
    pairs = [plain] if plain is not None else _policy_addresses(msg, name)
    if not pairs or any("\ufffd" in n for n, _ in pairs):
        text = decode_text(raw.encode("ascii", "surrogateescape"), None)
        pairs = [
            (decode_header_text(display), addr)
            for display, addr in getaddresses([text.replace("\r", "").replace("\n", "")])
            if "@" in addr
        ]
    cleaned = []
    for display, addr in pairs:
        addr = _clean(addr).strip().strip("<>").lower()
        display = _fix_mojibake(display).strip().strip("\"'").strip()
        if display.lower() == addr:
            display = ""
        cleaned.append((display, addr))
    return cleaned


def _header_date(msg: Message, name: str) -> datetime | None:
    when = None
    plain = _plain_header(msg, name)
    if plain:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            when = parsedate_to_datetime(plain)
    if when is None:
        try:
            header = msg[name]
            when = getattr(header, "datetime", None)
        except Exception:  # noqa: BLE001
            when = None
    if when is None:
        raw = _raw_header(msg, name)
        try:
            when = parsedate_to_datetime(decode_header_text(raw)) if raw else None
        except (TypeError, ValueError, IndexError):
            when = None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def _received_date(msg: Message) -> datetime | None:
    """When our side received the mail: the date of the topmost Received header."""
    for key, value in msg.raw_items():
        if key.lower() == "received" and ";" in value:
            try:
                when = parsedate_to_datetime(decode_header_text(value.rsplit(";", 1)[1]))
            except (TypeError, ValueError, IndexError):
                return None
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


class _RememberedHeaders(HeaderRegistry):
    """``policy.default``'s header factory, remembering what it parsed.

    The policy parses a header again every time it is read (a part's Content-Type on
    each ``get_content_type`` call, say), and most mail repeats the same few header
    values; parsed headers are immutable values, so one parse serves every read of
    every mail with that (name, value)."""

    def __init__(self):
        super().__init__()
        self._parse = lru_cache(maxsize=2048)(super().__call__)

    def __call__(self, name, value):
        return self._parse(name, value)


_POLICY = policy.default.clone(header_factory=_RememberedHeaders())


def _parse_bytes(raw: bytes) -> EmailMessage:
    return BytesParser(policy=_POLICY).parsebytes(raw)
