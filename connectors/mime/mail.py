"""The whole mail: ``parse_mail`` reads raw bytes into a ``ParsedMail``, repairing a
multipart whose declared boundary never occurs, with the headers (``headers``), body and
attachments (``parts``), HTML (``html_text``), quoted history (``quotes``) and robots
(``automated``) each read by its own module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from ..base import InboundAttachment
from .automated import _bounce_details, automated_reason
from .charsets import _clean
from .headers import (
    MAX_SUBJECT,
    _addresses,
    _header_date,
    _parse_bytes,
    _plain_header,
    _received_date,
    header_text,
    message_ids,
    normalize_message_id,
)
from .html_text import html_to_text, sanitize_html
from .parts import _Body, _collect
from .quotes import split_quoted


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


# --- The whole mail -------------------------------------------------------------------


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
