"""Reading one e-mail: raw RFC 5322 bytes in, a ``ParsedMail`` value out.

Pure functions on the standard ``email`` package (``policy.default``); no Django,
no database. Everything here is written to survive real mail: unknown or wrong
charsets, 8-bit headers, broken base64, multiparts without a closing boundary.
Nothing raises on bad bytes; what cannot be decoded is replaced, and the reasons
are listed in ``ParsedMail.defects``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import hashlib
import quopri
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from html.parser import HTMLParser

import nh3

from .base import InboundAttachment

# cases.Message.subject and external ids are CharField(255).
MAX_SUBJECT = 255
MAX_ID = 255


@dataclass(frozen=True)
class ParsedMail:
    """What Caseline keeps of one e-mail.

    ``text`` is what the sender wrote this time: quoted history and the signature
    are trimmed from it. ``quoted_text`` is then the full text as received
    (including what was trimmed), so nothing is lost; it is empty when nothing was
    trimmed. ``html`` is the sanitized HTML body, empty for plain-text mail.
    """

    message_id: str
    from_address: str
    from_name: str
    subject: str
    sent_at: datetime
    text: str
    quoted_text: str = ""
    html: str = ""
    in_reply_to: str = ""
    # Oldest first, as in the header.
    references: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    attachments: tuple[InboundAttachment, ...] = ()
    # Why this mail was written by a machine (auto-reply, bounce...); empty for people.
    automated: str = ""
    defects: tuple[str, ...] = ()
    # Bounces: the Message-ID of our mail that could not be delivered, and why.
    bounced_message_id: str = ""
    bounce_reason: str = ""

    @property
    def thread_keys(self) -> tuple[str, ...]:
        """Ids that place this mail in a conversation: In-Reply-To, then References newest first."""
        keys: list[str] = []
        for key in (self.in_reply_to, *reversed(self.references)):
            if key and key not in keys and key != self.message_id:
                keys.append(key)
        return tuple(keys)


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


# --- Auto-replies and bounces ---------------------------------------------------------

_ROBOT_LOCALPARTS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|auto-?reply|autoresponder)([+\-.].*)?$"
)


_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|abwesenheitsnotiz|"
    r"réponse automatique|respuesta automática|risposta automatica|automatisch antwoord|"
    r"autosvar|automaattinen vastaus|odpowiedź automatyczna)",
    re.IGNORECASE,
)


def automated_reason(msg: Message, from_address: str) -> str:
    """Why ``msg`` was sent by a machine rather than a person; '' for a person's mail."""
    auto_submitted = header_text(msg, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    content_type = msg.get_content_type()
    if content_type == "multipart/report":
        report = (msg.get_param("report-type") or "").lower()
        return f"report ({report or 'unknown type'})"
    localpart = from_address.split("@", 1)[0]
    if localpart in {"mailer-daemon", "postmaster"}:
        return f"bounce from {from_address}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"):
        if header_text(msg, name):
            return f"{name} header"
    precedence = header_text(msg, "Precedence").lower()
    if precedence in {"junk", "auto_reply"}:
        return f"Precedence: {precedence}"
    subject = header_text(msg, "Subject")
    if _AUTO_SUBJECT.match(subject) and (precedence or header_text(msg, "X-Auto-Response-Suppress")):
        return f"auto-reply ({subject[:60]})"
    if precedence in {"bulk", "list"}:
        # People write through mailing lists too (Precedence: list or bulk). Without
        # a person behind it: a robot sender, or a newsletter that answers nothing.
        if _ROBOT_LOCALPARTS.match(localpart):
            return f"Precedence: {precedence} from {from_address}"
        is_reply = bool(_plain_header(msg, "In-Reply-To") or _plain_header(msg, "References"))
        # A discussion list names where to post (List-Post, RFC 2369); a newsletter does not.
        list_post = header_text(msg, "List-Post").lower()
        if header_text(msg, "List-Unsubscribe") and not is_reply and list_post in {"", "no"}:
            return f"Precedence: {precedence}, a mailing"
    return ""


def _bounce_details(msg: Message) -> tuple[str, str]:
    """For a delivery-status report: the Message-ID of the returned mail and the reason."""
    returned_id, reason = "", ""
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in part.get_payload() if part.is_multipart() else []:
                action = str(block.get("Action", "")).strip().lower()
                diagnostic = str(block.get("Diagnostic-Code", "") or block.get("Status", "")).strip()
                if action == "failed" and not reason:
                    reason = diagnostic or "delivery failed"
        elif content_type in {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}:
            returned = part.get_payload(0) if part.is_multipart() else _parse_bytes(_payload_bytes(part))
            if not returned_id and returned is not None:
                returned_id = normalize_message_id(header_text(returned, "Message-ID"))
    return returned_id, _clean(re.sub(r"\s+", " ", reason))


# --- Bodies ---------------------------------------------------------------------------


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding gives what is readable
        data = None
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, str):
            data = payload.encode("utf-8", "surrogateescape")
        elif isinstance(payload, list):
            chunks = []
            for sub in payload:
                try:
                    chunks.append(sub.as_bytes())
                except Exception:  # noqa: BLE001
                    chunks.append(str(sub).encode("utf-8", "replace"))
            data = b"".join(chunks)
        else:
            data = b""
    return data


def _part_text(part: Message) -> str:
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    text = decode_text(_payload_bytes(part), charset).replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_type() == "text/plain" and (part.get_param("format") or "").lower() == "flowed":
        text = unflow(text, delsp=(part.get_param("delsp") or "").lower() == "yes")
    return _clean(text)


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join the soft line breaks of ``format=flowed`` text (RFC 3676)."""
    lines_out: list[str] = []
    paragraph: str | None = None
    paragraph_depth = 0

    def finish() -> None:
        nonlocal paragraph
        if paragraph is not None:
            prefix = ">" * paragraph_depth + (" " if paragraph_depth else "")
            lines_out.append(prefix + paragraph)
        paragraph = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if paragraph is not None and depth != paragraph_depth:
            finish()
        if paragraph is None:
            paragraph, paragraph_depth = content, depth
        else:
            paragraph += content
        if not flowed:
            finish()
    finish()
    return "\n".join(lines_out)


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        name = ""
    name = str(name)
    if "=?" in name:
        name = decode_header_text(name)
    name = _fix_mojibake(_clean(name))
    # Never a path: only the last component, no control characters.
    name = re.split(r"[\\/]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().strip(".")
    return name[:MAX_SUBJECT]


def _content_id(part: Message) -> str:
    raw = _raw_header(part, "Content-ID")
    return normalize_message_id(decode_header_text(raw)) if raw else ""


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:  # noqa: BLE001
        return ""


@dataclass
class _Body:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)


def _attachment(part: Message, index: int) -> InboundAttachment:
    content_type = part.get_content_type()
    name = _filename(part)
    if not name:
        extension = {
            "message/rfc822": "eml",
            "text/calendar": "ics",
            "text/plain": "txt",
            "text/html": "html",
            "message/rfc822-headers": "txt",
            "text/rfc822-headers": "txt",
            "message/delivery-status": "txt",
        }.get(content_type, content_type.split("/")[-1][:10] or "bin")
        name = f"part-{index}.{extension}"
    return InboundAttachment(
        filename=name, content_type=content_type, content=_payload_bytes(part), content_id=_content_id(part)
    )


def _collect(part: Message, body: _Body, counter: list[int]) -> None:
    counter[0] += 1
    content_type = part.get_content_type()
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        subtype = part.get_content_subtype()
        if content_type.startswith("message/"):
            body.attachments.append(_attachment(part, counter[0]))
        elif subtype == "alternative":
            _collect_alternative(children, body, counter)
        elif subtype == "related" and children:
            start = normalize_message_id(part.get_param("start") or "")
            root = next((c for c in children if start and _content_id(c) == start), children[0])
            _collect(root, body, counter)
            for child in children:
                if child is not root:
                    body.attachments.append(_attachment(child, counter[0]))
                    counter[0] += 1
        else:
            # mixed, signed, report, digest, or a subtype we don't know: in order.
            for child in children:
                _collect(child, body, counter)
        return
    disposition = _disposition(part)
    is_body_text = content_type in {"text/plain", "text/html"} or content_type.startswith("multipart/")
    if is_body_text and disposition != "attachment" and not _filename(part):
        if content_type == "text/html":
            body.htmls.append(_part_text(part))
        else:
            # Includes a multipart with no boundary: its body is read as text.
            body.texts.append(_part_text(part))
        return
    body.attachments.append(_attachment(part, counter[0]))


def _collect_alternative(children: list[Message], body: _Body, counter: list[int]) -> None:
    """multipart/alternative: the plain text for ``text``, the richest HTML for ``html``."""
    options = []
    for child in children:
        option = _Body()
        _collect(child, option, counter)
        options.append(option)
    with_text = [o for o in options if any(t.strip() for t in o.texts)]
    with_html = [o for o in options if any(h.strip() for h in o.htmls)]
    chosen_text = with_text[0] if with_text else None
    chosen_html = with_html[-1] if with_html else None
    if chosen_text:
        body.texts.extend(chosen_text.texts)
    if chosen_html:
        body.htmls.extend(chosen_html.htmls)
    for option in (chosen_text, chosen_html):
        if option:
            body.attachments.extend(a for a in option.attachments if a not in body.attachments)
    if not chosen_text and not chosen_html and options:
        body.texts.extend(options[0].texts)
        body.attachments.extend(options[0].attachments)


# --- HTML -----------------------------------------------------------------------------

SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
    "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
}  # fmt: skip
SAFE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
}
# Kept so the agent screen can fold quoted history.
SAFE_CLASSES = {"div": {"gmail_quote"}, "blockquote": {"gmail_quote"}}


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    # Images only from the mail itself (cid:): remote images are tracking pixels.
    if element == "img" and attribute == "src" and not value.strip().lower().startswith("cid:"):
        return None
    return value


def sanitize_html(html: str) -> str:
    """HTML safe to show an agent: a small tag set, no scripts, styles, handlers or remote images."""
    if not html.strip():
        return ""
    return nh3.clean(
        html,
        tags=SAFE_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript", "iframe", "object"},
        attributes=SAFE_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        allowed_classes=SAFE_CLASSES,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript", "xml"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote_depth = 0
        self.line_depth = 0
        self.skip = 0
        self.pre = 0

    def _newline(self) -> None:
        text = "".join(self.current)
        if not self.pre:
            text = re.sub(r"[ \t\r\n\f\xa0]+", " ", text).strip()
        prefix = "> " * self.line_depth
        self.lines.append((prefix + text).rstrip())
        self.current = []
        self.line_depth = self.quote_depth

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self._newline()
        elif tag in _BLOCK_TAGS:
            if "".join(self.current).strip():
                self._newline()
            if tag == "blockquote":
                self.quote_depth += 1
                self.line_depth = self.quote_depth
            elif tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.current.append("- ")
            elif tag in {"td", "th"}:
                self.current.append(" ")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            if "".join(self.current).strip() or tag in {"p", "div", "tr", "h1", "h2", "h3"}:
                self._newline()
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
                self.line_depth = self.quote_depth
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.skip:
            return
        if not "".join(self.current).strip():
            self.line_depth = self.quote_depth
        if self.pre:
            for i, chunk in enumerate(data.split("\n")):
                if i:
                    self._newline()
                self.current.append(chunk)
        else:
            self.current.append(data)

    def text(self) -> str:
        self._newline()
        text = "\n".join(self.lines)
        text = re.sub(r"\n(?:[ >]*\n){2,}", "\n\n", text)
        return text.strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body; blockquotes become ``>`` lines."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; this is belt and braces
        return re.sub(r"<[^>]*>", " ", html)
    return extractor.text().replace("\xa0", " ")


# --- Quoted history -------------------------------------------------------------------

_ATTRIBUTION = re.compile(
    r"^\s*(-{2,}\s*)?(On|Am|Le|El|Il|Op|Em|W dniu|Den|Dne|På|Pe|În|Vào|Στις|В|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b.{3,300}"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|pisze|skrev|napsal\(a\)|napsal|"
    r"написал\(а\)|написал|написала|kirjoitti|yazdı|írta|έγραψε|a scris|đã viết)"
    # English and French end on the verb; German, Dutch, Danish name the writer after it.
    r"(\s*:?|\b.{1,120}:)\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(-{2,}\s*)?(On|Am|Le|El|Il|Op|Em|W dniu|Den|Dne|På|Pe|În|Vào|Στις|В|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b",
    re.IGNORECASE,
)
_ATTRIBUTION_END = re.compile(
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|pisze|skrev|napsal|написал\(а\)|"
    r"написал|написала|kirjoitti|yazdı|írta|έγραψε|a scris|写道|寫道|のメッセージ)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Oprindelig meddelelse|"
    r"Opprinnelig melding|Alkuperäinen viesti|Wiadomość oryginalna|Исходное сообщение|"
    r"Mensagem original|Původní zpráva)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^\s*\*?(From|Von|De|Da|Van|Från|Fra|Od|Lähettäjä|От|Kimden|Feladó)\s*:", re.IGNORECASE
)
_HEADER_SENT = re.compile(
    r"^\s*\*?(Sent|Date|Gesendet|Datum|Envoyé|Enviado|Enviada|Fecha|Inviato|Data|Verzonden|Skickat|"
    r"Sendt|Wysłano|Отправлено|Дата|Lähetetty|Gönderildi|Elküldve)\s*:",
    re.IGNORECASE,
)
_HEADER_TO = re.compile(
    r"^\s*\*?(To|An|À|A|Para|Aan|Till|Til|Do|Кому|Vastaanottaja|Kime|Címzett|Subject|Betreff|Objet|"
    r"Asunto|Oggetto|Onderwerp|Ämne|Emne|Temat|Тема|Assunto|Aihe|Konu|Tárgy)\s*:",
    re.IGNORECASE,
)
_HEADER_CC = re.compile(r"^\s*\*?(Cc|Kopie|Cci|Bcc)\s*:", re.IGNORECASE)
_FORWARD_LINE = re.compile(
    r"^\s*(-{2,}\s*(Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado)"
    r"|Begin forwarded message:)",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|wg|tr|rv|enc|doorst)\s*:", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*(_{10,}|-{10,}|={10,})\s*$")


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _is_header_line(line: str) -> bool:
    return bool(
        _HEADER_FROM.match(line)
        or _HEADER_SENT.match(line)
        or _HEADER_TO.match(line)
        or _HEADER_CC.match(line)
    )


def _is_outlook_header(lines: list[str], i: int) -> bool:
    """A block of quoted headers (From:, Sent:/Date:, To:/Subject:) in any order starts at ``i``."""
    if not _is_header_line(lines[i]) or (i > 0 and _is_header_line(lines[i - 1])):
        return False
    block = []
    for line in lines[i : i + 7]:
        if not _is_header_line(line):
            break
        block.append(line)
    return (
        any(_HEADER_FROM.match(x) for x in block)
        and any(_HEADER_SENT.match(x) for x in block)
        and any(_HEADER_TO.match(x) for x in block)
    )


def _hard_break(lines: list[str], forwarded: bool) -> int | None:
    """Index where unprefixed quoted history starts (Outlook, Yahoo, "On ... wrote:" + text)."""
    for i, line in enumerate(lines):
        if _is_quote(line):
            continue
        if _ORIGINAL_MESSAGE.match(line):
            return i
        if _is_outlook_header(lines, i) and not forwarded:
            previous = next((j for j in range(i - 1, -1, -1) if lines[j].strip()), None)
            if previous is not None and _FORWARD_LINE.match(lines[previous]):
                continue
            return previous if previous is not None and _SEPARATOR.match(lines[previous]) else i
        attribution = _attribution_at(lines, i)
        if attribution is not None:
            following = next((x for x in lines[i + attribution :] if x.strip()), "")
            if not _is_quote(following):
                return i
    return None


def _attribution_at(lines: list[str], i: int) -> int | None:
    """Number of lines (1 or 2) of an "On <date>, <name> wrote:" line starting at ``i``."""
    line = lines[i].strip()
    if not line or len(line) > 400:
        return None
    if _ATTRIBUTION.match(line) or (_ATTRIBUTION_END.search(line) and re.search(r"\d|@", line)):
        return 1
    # Clients wrap a long attribution; its first line starts like one ("On ...", a date).
    if i + 1 < len(lines) and lines[i + 1].strip() and _ATTRIBUTION_START.match(line):
        joined = line + " " + lines[i + 1].strip()
        if _ATTRIBUTION.match(joined) or _ATTRIBUTION_END.search(joined):
            return 2
    return None


def _quote_block_start(lines: list[str], start: int) -> int:
    """Extend a ``>`` block at ``start`` upwards over blank lines and its attribution line(s)."""
    j = start
    while j > 0 and not lines[j - 1].strip():
        j -= 1
    for size in (2, 1):
        k = j - size
        if k >= 0 and _attribution_at(lines, k) == size:
            return k
    if j > 0 and lines[j - 1].rstrip().endswith((":", "：")) and len(lines[j - 1]) < 300:
        return j - 1
    return start


def split_quoted(text: str, *, subject: str = "") -> tuple[str, bool]:
    """(what the sender wrote this time, whether anything was trimmed).

    Trims: a trailing ``>`` block with its "On ... wrote:" line, a leading one
    (bottom-posted replies), Outlook / Yahoo "Original Message" and From:/Sent:
    header blocks, and the signature after a ``-- `` line. ``>`` blocks between
    the sender's own lines (inline answers) stay. A forwarded message is the
    sender's content: never trimmed.
    """
    lines = text.split("\n")
    forwarded = bool(_FORWARD_SUBJECT.match(subject or ""))
    cut = _hard_break(lines, forwarded)
    visible = lines[:cut] if cut is not None else list(lines)

    # Trailing quote block (top-posting): everything after the last line of new text.
    content = [i for i, line in enumerate(visible) if line.strip() and not _is_quote(line)]
    quoted = [i for i, line in enumerate(visible) if _is_quote(line)]
    if quoted and (not content or quoted[-1] > content[-1]):
        first_trailing = min(i for i in quoted if not content or i > content[-1])
        visible = visible[: _quote_block_start(visible, first_trailing)]
    # Leading quote block (bottom-posting): attribution and quote, then only new text.
    head, saw_quote = 0, False
    while head < len(visible):
        line = visible[head]
        if not line.strip() or _is_quote(line):
            saw_quote = saw_quote or _is_quote(line)
            head += 1
            continue
        size = _attribution_at(visible, head)
        if size is None:
            break
        head += size
    if saw_quote and head < len(visible) and not any(_is_quote(x) for x in visible[head:]):
        visible = visible[head:]
    # Signature.
    for i, line in enumerate(visible):
        if line.rstrip("\r") in ("-- ", "--") and i > 0:
            visible = visible[:i]
            break
    result = "\n".join(visible).strip()
    if not result:
        return text.strip(), False
    return result, result != text.strip()


# --- The whole mail -------------------------------------------------------------------


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


def _repair_boundary(raw: bytes, msg: EmailMessage) -> EmailMessage | None:
    """A multipart whose declared boundary never occurs: re-read it with the one the body uses."""
    if msg.get_content_maintype() != "multipart" or not any(
        type(d).__name__ == "StartBoundaryNotFoundDefect" for d in msg.defects
    ):
        return None
    match = re.search(rb"\r?\n\r?\n", raw)
    if not match:
        return None
    head, body = raw[: match.start()], raw[match.start() :]
    found = re.search(rb"^--([^\s]{1,70})[ \t]*\r?\n(?i:content-)", body, re.MULTILINE)
    declared = msg.get_boundary()
    if not found or not declared or found.group(1).endswith(b"--"):
        return None
    fixed_head = head.replace(declared.encode("ascii", "surrogateescape"), found.group(1), 1)
    return _parse_bytes(fixed_head + body)


def parse_mail(raw: bytes, *, now: datetime | None = None) -> ParsedMail:
    """Read one e-mail. Never raises on malformed content; see ``ParsedMail.defects``."""
    now = now or datetime.now(UTC)
    msg = _parse_bytes(raw)
    defects = [type(d).__name__ for d in msg.defects]
    repaired = _repair_boundary(raw, msg)
    if repaired is not None:
        msg = repaired
        defects.append("multipart boundary repaired")

    senders = _addresses(msg, "From") or _addresses(msg, "Sender") or _addresses(msg, "Reply-To")
    from_name, from_address = senders[0] if senders else ("", "")
    if not senders:
        defects.append("no sender address")

    subject = header_text(msg, "Subject")[:MAX_SUBJECT]
    raw_id = _plain_header(msg, "Message-ID")
    message_id = normalize_message_id(raw_id) if raw_id else ""
    in_reply_to_ids = message_ids(_plain_header(msg, "In-Reply-To"))
    references = tuple(message_ids(_plain_header(msg, "References")))

    sent_at = _header_date(msg, "Date")
    if sent_at is None:
        defects.append("Date missing or unreadable")
        sent_at = _received_date(msg) or now
    elif sent_at > now + timedelta(days=1):
        defects.append("Date in the future")
        sent_at = now

    body = _Body()
    _collect(msg, body, [0])
    for part in msg.walk():
        defects.extend(type(d).__name__ for d in getattr(part, "defects", []) if part is not msg)

    plain = "\n".join(t for t in body.texts if t.strip()).strip()
    raw_html = "\n".join(body.htmls)
    html = _clean(sanitize_html(raw_html)) if raw_html.strip() else ""
    full_text = plain or (html_to_text(raw_html) if raw_html.strip() else "")
    full_text = _clean(full_text.replace("\xa0", " "))
    visible, trimmed = split_quoted(full_text, subject=subject)

    automated = automated_reason(msg, from_address)
    bounced_id, bounce_reason = ("", "")
    if automated and (msg.get_param("report-type") or "").lower() == "delivery-status":
        bounced_id, bounce_reason = _bounce_details(msg)

    return ParsedMail(
        message_id=message_id,
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        sent_at=sent_at,
        text=visible,
        quoted_text=full_text if trimmed else "",
        html=html,
        in_reply_to=in_reply_to_ids[0] if in_reply_to_ids else "",
        references=references,
        to=tuple(addr for _, addr in _addresses(msg, "To")),
        attachments=tuple(body.attachments),
        automated=automated,
        defects=tuple(dict.fromkeys(defects)),
        bounced_message_id=bounced_id,
        bounce_reason=bounce_reason,
    )
