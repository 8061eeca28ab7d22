"""Phone: Twilio's form-encoded voice webhooks in; a finished call becomes a ``call`` message.

Point the number's status callback (``StatusCallback`` with the ``completed`` event,
plus recording status callbacks if calls are recorded) at ``/webhooks/<slug>/``.

Every request carries ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the
account's auth token (role ``auth_token`` in ``channel.secret_env``), of the full URL
Twilio called (``settings.PUBLIC_URL`` + path + query) followed by each POST
parameter's name and value, sorted by name.

What becomes a message (external id = ``CallSid``, so one message per call):

- ``CallStatus=completed``: a call from ``From`` with its ``CallDuration`` and
  ``RecordingUrl`` when Twilio sent one. Calls we placed (``Direction`` outbound-api or
  outbound-dial) are echoes from our number to ``To``.
- ``busy``, ``no-answer``, ``failed``, ``canceled``: a missed call, duration 0.

A recording status callback (``RecordingSid`` with ``RecordingStatus`` and no
``CallStatus``) that says ``completed`` is a ``MessageUpdate``: ingest attaches its
``RecordingUrl`` to the call's message (external id ``CallSid``), idempotently; while
that message is not stored yet the event fails with that reason, and ``replay_inbox``
attaches it later. A recording still in progress, absent or failed is ignored with the
reason.

Ignored (kept in the inbox with the reason): ``queued``/``ringing``/``in-progress``
(the call is not over, and the one message per call is written when it is), and calls
from a withheld number (no one to put the call on). Phone lines send nothing: agents
log calls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from customers.identifiers import normalize_phone

from .base import InboundMessage, MessageUpdate, ParseError, ParseResult, SendError, SignatureError
from .forms import form_pairs

SIGNATURE_HEADER = "HTTP_X_TWILIO_SIGNATURE"
UNFINISHED = {"queued", "initiated", "ringing", "in-progress"}
MISSED = {"busy": "busy", "no-answer": "not answered", "failed": "failed", "canceled": "cancelled"}
OUTBOUND_DIRECTIONS = {"outbound-api", "outbound-dial"}
# A caller who withheld their number: words, or Twilio's keypad spellings of
# ANONYMOUS, RESTRICTED, UNAVAILABLE and BLOCKED.
WITHHELD = {
    "", "anonymous", "restricted", "unknown", "unavailable", "private", "blocked",
    "+266696687", "+7378742833", "+86282452253", "+2562533",
}  # fmt: skip


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature over ``url`` and the POST ``params``."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _params(body: bytes) -> list[tuple[str, str]]:
    return [
        (name.decode("utf-8", "replace"), value.decode("utf-8", "replace"))
        for name, value in form_pairs(body)
    ]


def _form(body: bytes) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in _params(body):
        form.setdefault(name, value)
    return form


def verify(request: HttpRequest, channel) -> None:
    """Check ``X-Twilio-Signature``; ``SignatureError`` when missing or wrong."""
    given = request.META.get(SIGNATURE_HEADER, "")
    if not given:
        raise SignatureError("X-Twilio-Signature header is missing.")
    token = channel.secret("auth_token")
    url = settings.PUBLIC_URL + request.get_full_path()
    params = _params(request.body) if request.method == "POST" else []
    if not constant_time_compare(given, signature(token, url, params)):
        raise SignatureError("X-Twilio-Signature does not match.")


def challenge(request: HttpRequest, channel) -> None:
    return None


def delivery_id(request: HttpRequest, channel) -> str:
    """``CallSid:CallStatus``: each status callback of a call is its own delivery."""
    form = _form(request.body)
    return _delivery_key(form) or "sha256:" + hashlib.sha256(request.body).hexdigest()


def _delivery_key(form: dict[str, str]) -> str:
    call_sid = form.get("CallSid", "")
    if not call_sid:
        return ""
    if form.get("RecordingSid") and not form.get("CallStatus"):
        return f"{call_sid}:recording:{form['RecordingSid']}:{form.get('RecordingStatus', '')}"
    return f"{call_sid}:{form.get('CallStatus', '')}"


def _number(form: dict[str, str], name: str) -> str:
    raw = form.get(name, "").strip()
    if raw.lower() in WITHHELD or raw.startswith("client:") or raw.startswith("sip:"):
        return ""
    try:
        return normalize_phone(raw)
    except ValidationError as exc:
        raise ParseError(f"{name}: {raw!r} is not a phone number.") from exc


def _when(form: dict[str, str], duration: int) -> datetime:
    """When the call started: the callback's Timestamp (its end) less the duration."""
    try:
        ended = parsedate_to_datetime(form["Timestamp"])
    except (KeyError, TypeError, ValueError, IndexError):
        ended = datetime.now(UTC)
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)
    return ended - timedelta(seconds=duration)


def parse(event, channel) -> ParseResult:
    """One status callback as a ``call`` message (finished or missed), or why it is ignored."""
    form = _form(bytes(event.body))
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise ParseError("CallSid: the callback names no call.")
    status = form.get("CallStatus", "").strip().lower()
    if not status:
        if form.get("RecordingSid"):
            return _recording(form, call_sid)
        raise ParseError("CallStatus: the callback has no call status.")
    if status in UNFINISHED:
        return ParseResult(ignored_reason=f"Call {call_sid} is {status}; it is recorded once it ends.")
    if status != "completed" and status not in MISSED:
        raise ParseError(f"CallStatus: {status!r} is not a Twilio call status.")

    outbound = form.get("Direction", "").lower() in OUTBOUND_DIRECTIONS
    caller = _number(form, "From")
    callee = _number(form, "To")
    customer = callee if outbound else caller
    if not customer:
        return ParseResult(ignored_reason=f"Call {call_sid}: the customer's number is withheld.")
    try:
        duration = int(form.get("CallDuration") or 0) if status == "completed" else 0
    except ValueError as exc:
        raise ParseError(f"CallDuration: {form.get('CallDuration')!r} is not a number of seconds.") from exc
    if status == "completed":
        text = f"Call to {customer}" if outbound else f"Call from {customer}"
    else:
        text = (
            f"Missed call to {customer} ({MISSED[status]})"
            if outbound
            else (f"Missed call from {customer} ({MISSED[status]})")
        )
    message = InboundMessage(
        platform="phone",
        external_id=call_sid,
        # A call we placed is written by our number; the customer is the one called.
        author_id=(caller or channel.account_id) if outbound else customer,
        kind="call",
        sent_at=_when(form, duration),
        text=text,
        is_public=False,
        author_name="" if outbound else form.get("CallerName", ""),
        call_duration=max(duration, 0),
        recording_url=form.get("RecordingUrl", "") if status == "completed" else "",
        is_echo=outbound,
        recipient_id=customer if outbound else "",
    )
    return ParseResult(messages=[message])


def _recording(form: dict[str, str], call_sid: str) -> ParseResult:
    """A recording status callback: the finished recording's URL for the call's message."""
    recording_status = form.get("RecordingStatus", "").strip().lower()
    url = form.get("RecordingUrl", "").strip()
    if recording_status != "completed" or not url:
        return ParseResult(
            ignored_reason=(
                f"Recording {form['RecordingSid']} of call {call_sid} is {recording_status or 'of unknown status'}"
                f"{': ' + form['ErrorCode'] if form.get('ErrorCode') else ''}; nothing to attach."
            )
        )
    if not url.lower().startswith(("https://", "http://")):
        raise ParseError(f"RecordingUrl: {url!r} is not a URL.")
    try:
        started = parsedate_to_datetime(form["RecordingStartTime"])
    except (KeyError, TypeError, ValueError, IndexError):
        started = None
    return ParseResult(updates=[MessageUpdate(external_id=call_sid, recording_url=url, at=started)])


def send(message, channel):
    raise SendError(
        "A phone line has no messages to send: log the call on the case instead.", retryable=False
    )
