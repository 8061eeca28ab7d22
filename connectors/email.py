"""E-mail: raw MIME in from an ESP's inbound webhook (or the IMAP poller), replies out by SMTP.

Inbound, the webhook body carries the whole message as sent, in one of the raw-MIME
forms django-anymail's inbound webhooks read:

- Mailgun, route ``forward()`` to a URL ending in ``mime``: multipart form, field
  ``body-mime``; signed with ``timestamp``, ``token`` and ``signature`` (HMAC-SHA256).
- SendGrid Inbound Parse with "POST the raw, full MIME message": form field ``email``.
- Postmark inbound with "Include raw email content in JSON payload": JSON ``RawEmail``.
- Amazon SES receipt rule with an SNS action: the SNS notification whose message
  carries ``content`` (base64 or UTF-8).
- Anything else is read as the message itself (``message/rfc822``, an ``.eml`` file,
  what the IMAP poller stores).

Requests are checked against the channel's secrets (roles in ``channel.secret_env``):
``webhook_secret`` is the HTTP basic auth ``user:password`` the ESP is configured with
(every ESP above supports it); ``webhook_signing_key`` additionally checks Mailgun's
HMAC. At least one is required. ``connectors.mime`` reads the message itself.

Outbound, ``send`` mails the reply through Django's e-mail backend (SMTP or an
anymail ESP backend) from the channel's address, threaded under the message it
answers, with the case reference in the subject.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import smtplib
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser, BytesParser
from email.utils import formataddr

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from customers.identifiers import normalize_email

from . import mime
from .base import (
    DeliveryUpdate,
    InboundMessage,
    ParseError,
    ParseResult,
    SendError,
    SendResult,
    SignatureError,
)
from .forms import form_pairs

logger = logging.getLogger(__name__)

# Form fields that carry the raw message: Mailgun "mime" forward, SendGrid "send raw".
RAW_MIME_FIELDS = ("body-mime", "email")
_REPLY_PREFIX = re.compile(
    r"^\s*((re|aw|sv|vs|antw|ref|fwd?|wg|tr|rv)\s*(\[\d+\])?\s*[:：]\s*)+", re.IGNORECASE
)


class NotAMail(Exception):
    """A delivery that carries no message (an SNS subscription handshake...): ignored."""


# --- Request bodies -------------------------------------------------------------------


def _boundary(body: bytes, content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type or "", re.IGNORECASE)
    if match:
        return match.group(1).strip().encode("latin-1", "replace")
    # The stored content type may have lost its parameters: the body starts with it.
    first = body.lstrip(b"\r\n").split(b"\n", 1)[0].strip()
    return first[2:] if first.startswith(b"--") and len(first) > 2 else None


def form_fields(body: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a form body (multipart or urlencoded) as bytes; first value wins.

    Multipart is read with the ``email`` parser: a form-data body is MIME, and this
    keeps a field's bytes exactly as posted whatever their size.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    fields: dict[str, bytes] = {}
    if media_type == "application/x-www-form-urlencoded":
        for name, value in form_pairs(body):
            fields.setdefault(name.decode("utf-8", "replace"), value)
        return fields
    boundary = _boundary(body, content_type)
    if not boundary:
        raise ParseError("Content-Type: a multipart form body without a boundary.")
    envelope = b'Content-Type: multipart/form-data; boundary="' + boundary + b'"\r\n\r\n'
    form = BytesParser(policy=policy.compat32).parsebytes(envelope + body)
    for part in form.get_payload() if form.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if not name or part.is_multipart():
            continue
        name = name if isinstance(name, str) else str(name[2])
        fields.setdefault(name, part.get_payload(decode=True) or b"")
    return fields


def raw_mime(body: bytes, content_type: str) -> bytes:
    """The raw RFC 5322 message inside a stored webhook body; ``ParseError`` when absent."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields = form_fields(body, content_type)
        for name in RAW_MIME_FIELDS:
            if fields.get(name, b"").strip():
                return fields[name]
        raise ParseError(
            "The form has no raw message: expected a body-mime field (Mailgun forward to a "
            "'mime' URL) or an email field (SendGrid Inbound Parse with 'send raw')."
        )
    # Amazon SNS posts its JSON as text/plain.
    if media_type == "application/json" or (media_type in ("", "text/plain") and body.lstrip()[:1] == b"{"):
        return _raw_mime_from_json(body)
    if not body.strip():
        raise ParseError("The e-mail is empty.")
    return body


def _raw_mime_from_json(body: bytes) -> bytes:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"The JSON body is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise ParseError("The JSON body is not an object.")
    if isinstance(data.get("RawEmail"), str) and data["RawEmail"].strip():  # Postmark
        return data["RawEmail"].encode("utf-8", "surrogateescape")
    if data.get("Type") == "SubscriptionConfirmation":  # Amazon SNS handshake
        raise NotAMail(f"Amazon SNS subscription confirmation: confirm it at {data.get('SubscribeURL', '')}")
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):  # Amazon SES via SNS
        try:
            notification = json.loads(data["Message"])
        except ValueError as exc:
            raise ParseError(f"Message: the SNS notification's message is not JSON ({exc}).") from exc
        kind = notification.get("notificationType") or notification.get("eventType")
        if kind != "Received":
            raise NotAMail(f"Amazon SES {kind or 'unknown'} notification, not an inbound mail.")
        content = notification.get("content")
        if not isinstance(content, str) or not content:
            raise ParseError(
                "content: the SES notification carries no message (use an SNS receipt action, "
                "not S3, for this channel)."
            )
        encoding = (notification.get("receipt", {}).get("action", {}).get("encoding") or "").upper()
        if encoding == "BASE64":
            try:
                return base64.b64decode(content)
            except (binascii.Error, ValueError) as exc:
                raise ParseError(f"content: not valid base64 ({exc}).") from exc
        return content.encode("utf-8", "surrogateescape")
    if "MessageID" in data or "FromFull" in data:
        raise ParseError(
            "RawEmail: the Postmark inbound JSON carries no raw message; turn on "
            "'Include raw email content in JSON payload' for the inbound stream."
        )
    raise ParseError("The JSON body holds no e-mail (expected Postmark RawEmail or an SES notification).")


def _content_type_of(event) -> str:
    headers = event.headers or {}
    return headers.get("content-type") or headers.get("Content-Type") or event.content_type or ""


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


# --- The connector contract -----------------------------------------------------------


def _basic_auth(request: HttpRequest) -> str | None:
    try:
        scheme, value = request.META["HTTP_AUTHORIZATION"].split(None, 1)
        if scheme.lower() == "basic":
            return base64.b64decode(value.strip()).decode("utf-8")
    except (KeyError, ValueError, binascii.Error, UnicodeDecodeError):
        pass
    return None


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def verify(request: HttpRequest, channel) -> None:
    """The ESP's basic-auth secret and/or Mailgun's HMAC; ``SignatureError`` when wrong."""
    roles = channel.secret_env or {}
    checked = False
    if "webhook_secret" in roles:
        expected = channel.secret("webhook_secret")
        given = _basic_auth(request)
        if given is None:
            raise SignatureError("Authorization: basic auth credentials are missing.")
        if not constant_time_compare(given, expected):
            raise SignatureError("Authorization: wrong basic auth credentials.")
        checked = True
    if "webhook_signing_key" in roles:
        key = channel.secret("webhook_signing_key")
        try:
            fields = form_fields(request.body, request.META.get("CONTENT_TYPE", ""))
        except ParseError as exc:
            raise SignatureError(f"signature: the body is not a signed Mailgun form ({exc}).") from exc
        timestamp, token, signature = (
            fields.get(name, b"").decode("ascii", "replace") for name in ("timestamp", "token", "signature")
        )
        if not (timestamp and token and signature):
            raise SignatureError("signature: Mailgun's timestamp, token and signature fields are required.")
        if not constant_time_compare(signature, mailgun_signature(key, timestamp, token)):
            raise SignatureError("signature: the Mailgun signature does not match.")
        checked = True
    if not checked:
        # No secret configured: refuse rather than accept anyone's mail (raises ImproperlyConfigured).
        channel.secret("webhook_secret")


def challenge(request: HttpRequest, channel) -> None:
    return None


def delivery_id(request: HttpRequest, channel) -> str:
    """The message's Message-ID, so the same mail by webhook and by IMAP is stored once."""
    body = request.body
    try:
        return mime_delivery_id(raw_mime(body, request.META.get("CONTENT_TYPE", "")))
    except (ParseError, NotAMail):
        return "sha256:" + hashlib.sha256(body).hexdigest()


def parse(event, channel) -> ParseResult:
    """Read the stored delivery: one e-mail message, ignored for auto-replies and bounces."""
    try:
        raw = raw_mime(bytes(event.body), _content_type_of(event))
    except NotAMail as exc:
        return ParseResult(ignored_reason=str(exc))
    return parse_raw(raw, channel)


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
