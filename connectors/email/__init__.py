"""E-mail: mail in from an ESP's inbound webhook, a raw-MIME post or the IMAP poller;
replies out by SMTP or an ESP.

Each e-mail channel names who posts its webhook (``Channel.email_provider``):

- An ESP (Mailgun, SendGrid, Postmark, Amazon SES): the request is checked by that
  ESP's django-anymail inbound view with the channel's secrets, plus what anymail does
  not check (Mailgun timestamp freshness, Amazon SNS signatures), then stored as it came;
  the worker reads the stored request with the same view (``esp``). Mailgun forwards to
  a URL ending in ``mime`` or parsed fields, SendGrid Inbound Parse raw or parsed,
  Postmark with or without ``RawEmail``, SES through an SNS receipt action: whatever
  anymail reads.
- Raw MIME (``raw``): the body is the message itself (``message/rfc822``, an ``.eml``
  file), behind the channel's basic auth ``webhook_secret``.

Whatever the door, a ``message/rfc822`` body (what the IMAP poller stores, on any
e-mail channel) is the message itself, and ``connectors.mime`` reads every message.
The delivery id is the message's Message-ID (else a digest of the message), so the
same mail by webhook and by IMAP is stored once.

Outbound, ``send`` mails the reply through Django's e-mail backend (SMTP or an
anymail ESP backend) from the channel's address, threaded under the message it
answers, with the case reference in the subject.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import smtplib
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import formataddr

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from customers.identifiers import normalize_email

from .. import mime
from ..base import (
    DeliveryUpdate,
    InboundMessage,
    ParseError,
    ParseResult,
    SendError,
    SendResult,
    SignatureError,
)
from . import esp
from .esp import NotAMail

logger = logging.getLogger(__name__)

__all__ = ["NotAMail", "challenge", "delivery_id", "parse", "parse_raw", "send", "verify"]

_REPLY_PREFIX = re.compile(
    r"^\s*((re|aw|sv|vs|antw|ref|fwd?|wg|tr|rv)\s*(\[\d+\])?\s*[:：]\s*)+", re.IGNORECASE
)


# --- Delivery ids -----------------------------------------------------------------------


def mime_delivery_id(raw: bytes) -> str:
    """The de-duplication id of a raw message: its Message-ID, else a digest of the bytes."""
    message_id = mime.plain_message_id(raw)
    if message_id is None:
        message_id = parsed_message_id(raw)
    return message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


def parsed_message_id(raw: bytes) -> str:
    """The normalized Message-ID as the header parser reads it; '' when there is none."""
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        return mime.normalize_message_id(mime.header_text(headers, "Message-ID"))
    except Exception:  # noqa: BLE001 - an unreadable header block still gets an id
        return ""


def _stored_content_type(event) -> str:
    headers = event.headers or {}
    return headers.get("content-type") or headers.get("Content-Type") or event.content_type or ""


# --- The connector contract -----------------------------------------------------------


def _basic_auth(request: HttpRequest) -> str | None:
    try:
        scheme, value = request.META["HTTP_AUTHORIZATION"].split(None, 1)
        if scheme.lower() == "basic":
            return base64.b64decode(value.strip()).decode("utf-8")
    except (KeyError, ValueError, binascii.Error, UnicodeDecodeError):
        pass
    return None


def verify(request: HttpRequest, channel) -> None:
    """The channel's ESP's checks (``esp.verify``), or the raw door's basic auth.

    ``SignatureError`` when refused; ``ImproperlyConfigured`` when the channel lacks a
    secret its door needs (no secret at all refuses everything rather than accept
    anyone's mail).
    """
    if channel.email_provider in esp.VIEWS:
        esp.verify(request, channel)
        return
    expected = channel.secret("webhook_secret")
    given = _basic_auth(request)
    if given is None:
        raise SignatureError("Authorization: basic auth credentials are missing.")
    if not constant_time_compare(given, expected):
        raise SignatureError("Authorization: wrong basic auth credentials.")


def challenge(request: HttpRequest, channel) -> None:
    return None


def delivery_id(request: HttpRequest, channel) -> str:
    """The message's Message-ID, so the same mail by webhook and by IMAP is stored once.

    An ESP request is read by its anymail view for it; one that carries no readable mail
    (a handshake, a malformed body) is known by the digest of its body.
    """
    body = request.body
    if not esp.uses_esp(channel, request.META.get("CONTENT_TYPE", "")):
        return mime_delivery_id(body)
    try:
        mails = esp.request_mails(request, channel)
    except (ParseError, NotAMail):
        mails = []
    return mime_delivery_id(mails[0]) if len(mails) == 1 else esp.body_digest(body)


def parse(event, channel) -> ParseResult:
    """Read the stored delivery: its e-mail messages, ignored for auto-replies and bounces."""
    if not esp.uses_esp(channel, _stored_content_type(event)):
        return parse_raw(bytes(event.body), channel)
    try:
        mails = esp.stored_mails(event, channel)
    except NotAMail as exc:
        return ParseResult(ignored_reason=str(exc))
    results = [parse_raw(raw, channel) for raw in mails]
    if len(results) == 1:
        return results[0]
    return ParseResult(
        messages=[m for r in results for m in r.messages],
        updates=[u for r in results for u in r.updates],
        ignored_reason="; ".join(r.ignored_reason for r in results if r.ignored_reason),
    )


def parse_raw(raw: bytes, channel) -> ParseResult:
    """One raw RFC 5322 message as Caseline's ``InboundMessage`` (or why it is not one)."""
    if not raw.strip():
        raise ParseError("The e-mail is empty.")
    mail = mime.parse_mail(raw)
    if not mail.from_address:
        raise ParseError("From: the e-mail names no sender address.")
    try:
        author = normalize_email(mail.from_address)
    except ValidationError as exc:
        raise ParseError(f"From: {mail.from_address!r} is not an e-mail address.") from exc
    if mail.defects:
        logger.info("e-mail %s read with defects: %s", mail.message_id or "(no Message-ID)", mail.defects)
    if mail.automated:
        updates = []
        if mail.bounced_message_id:
            updates.append(
                DeliveryUpdate(
                    external_id=mail.bounced_message_id,
                    state="failed",
                    at=mail.sent_at,
                    error=f"Bounced: {mail.bounce_reason or 'delivery failed'}"[:1000],
                )
            )
        return ParseResult(
            updates=updates, ignored_reason=f"Automated e-mail not ingested: {mail.automated}."
        )

    ours = (channel.account_id or "").strip().lower()
    is_echo = bool(ours) and author == ours
    recipient = next((addr for addr in mail.to if addr != ours), "") if is_echo else ""
    message = InboundMessage(
        platform="email",
        external_id=mail.message_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
        author_id=author,
        kind="email",
        sent_at=mail.sent_at,
        text=mail.text,
        is_public=False,
        author_name=mail.from_name,
        reply_to_external_id=mail.in_reply_to,
        thread_keys=mail.thread_keys,
        subject=mail.subject,
        html=mail.html,
        quoted_text=mail.quoted_text,
        attachments=mail.attachments,
        is_echo=is_echo,
        recipient_id=recipient,
    )
    return ParseResult(messages=[message])


# --- Sending --------------------------------------------------------------------------


def reply_subject(subject: str, reference: str) -> str:
    """``Re: <subject> [#C-7Q4K2]``: one ``Re:``, one reference token."""
    base = _REPLY_PREFIX.sub("", subject or "").strip()
    base = re.sub(rf"\s*\[#{re.escape(reference)}\]", "", base, flags=re.IGNORECASE).strip()
    return f"Re: {base or 'Your request'} [#{reference}]"[: mime.MAX_SUBJECT]


def _answered(message):
    """The customer's e-mail this reply answers: its parent, else their latest on the case."""
    parent = message.reply_to
    if parent is not None and parent.kind == "email":
        return parent
    return (
        message.case.messages.filter(kind="email", direction="in", identity_id=message.identity_id)
        .exclude(external_id="")
        .order_by("-sent_at", "-id")
        .first()
    )


def _bracketed(ids) -> str:
    return " ".join(f"<{i}>" for i in dict.fromkeys(ids) if i and "@" in i and not i.startswith("sha256:"))


def _smtp_error(exc: Exception) -> SendError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()] or [550]
        details = "; ".join(
            f"{rcpt}: {code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
            for rcpt, (code, text) in exc.recipients.items()
        )
        code = max(codes)
        return SendError(f"Recipient refused: {details}", retryable=400 <= code < 500, status=code)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        )
        code = exc.smtp_code
        return SendError(f"SMTP {code}: {text}", retryable=not 500 <= code < 600, status=code)
    return SendError(f"Mail server unreachable: {exc.__class__.__name__}: {exc}", retryable=True)


def _esp_error(exc: Exception) -> SendError:
    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

    if isinstance(exc, AnymailRecipientsRefused):
        return SendError(f"Recipient refused: {exc}", retryable=False)
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        retryable = status is None or status == 429 or status >= 500
        return SendError(f"ESP error: {exc}", retryable=retryable, status=status)
    return SendError(f"ESP error: {exc}", retryable=False)


def send(message, channel) -> SendResult:
    """Mail ``message`` to the customer's address; its Message-ID is the returned external id.

    The Message-ID is derived from the message's idempotency key, so a retry after an
    unclear failure sends the same id and mail clients show one message, not two.
    """
    from anymail.exceptions import AnymailError

    identity = message.identity
    if identity is None or identity.kind != "email":
        raise SendError("The reply has no e-mail address to go to.", retryable=False)
    sender = (channel.account_id or "").strip()
    if "@" not in sender:
        raise SendError(
            f"Channel {channel.slug}: account_id {sender!r} is not an e-mail address.", retryable=False
        )
    domain = sender.rsplit("@", 1)[1]
    message_id = f"<{message.idempotency_key}@{domain}>"
    parent = _answered(message)
    headers = {"Message-ID": message_id}
    if parent is not None and "@" in parent.external_id:
        headers["In-Reply-To"] = f"<{parent.external_id}>"
        headers["References"] = _bracketed(
            [parent.thread_key, parent.in_reply_to_external_id, parent.external_id]
        )
    subject = reply_subject(
        (parent.subject if parent is not None else "") or message.subject or message.case.subject,
        message.case.reference,
    )
    mail = EmailMultiAlternatives(
        subject=subject,
        body=message.text,
        from_email=formataddr((channel.name, sender)),
        to=[identity.platform_id],
        headers=headers,
    )
    for attachment in message.attachments.all():
        if attachment.file:
            with attachment.file.open("rb") as handle:
                mail.attach(
                    attachment.filename or "attachment", handle.read(), attachment.content_type or None
                )
    try:
        mail.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise _smtp_error(exc) from exc
    except AnymailError as exc:
        raise _esp_error(exc) from exc
    return SendResult(external_id=mime.normalize_message_id(message_id), sent_at=datetime.now(UTC))
