"""Bodies and attachments: the walk over a message's MIME structure.

A part's bytes whatever its transfer encoding (``_payload_bytes``) and its text in its
charset, ``format=flowed`` joined (``_part_text``, ``unflow``); which parts are the body
(the plain text and the richest HTML of an alternative, the root of a related) and which
are attachments, with safe file names and Content-IDs (``_collect``, ``_attachment``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from ..base import InboundAttachment
from .charsets import _clean, _fix_mojibake, decode_text
from .headers import MAX_SUBJECT, _raw_header, decode_header_text, normalize_message_id

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
