"""Meta's platforms: Facebook pages (Messenger and feed comments), Instagram, WhatsApp Cloud API.

One webhook format for all of them: a GET handshake (``hub.mode``, ``hub.verify_token``,
``hub.challenge``), POSTs signed with ``X-Hub-Signature-256`` (hex HMAC-SHA256 of the
raw body keyed with the app secret), and a JSON body ``{"object": ..., "entry": [...]}``.
Meta gives no delivery id, so a digest of the body stands in for one.

What each ``object`` produces (channel kind in brackets; any other object is ignored):

``page`` (facebook)
    ``entry[].messaging[]`` Messenger events: ``message`` -> a private ``dm``
    (``is_echo`` when the page wrote it), ``postback`` -> a ``dm`` whose text is the
    button title, ``delivery`` -> ``delivered`` updates of the listed mids. Read
    receipts (a watermark only), reactions, opt-ins, referrals, edits and unsent
    messages are ignored.
    ``entry[].changes[]`` with field ``feed``: a comment added -> a public
    ``comment`` threaded under its post (the page's own comments are echoes). Posts,
    likes, edits and removals are ignored.
``instagram`` (instagram)
    ``entry[].messaging[]`` Instagram direct messages, read as Messenger's (a ``read``
    with a ``mid`` -> a ``read`` update); ``entry[].changes[]`` with field
    ``comments`` -> a public ``comment`` threaded under its media.
``whatsapp_business_account`` (whatsapp)
    ``entry[].changes[].value`` of field ``messages`` for the channel's phone number
    id: ``messages[]`` -> private ``dm`` (media become ``whatsapp-media:<id>``
    attachments, ``context.id`` is the message answered), ``statuses[]`` ->
    sent / delivered / read / failed updates. Reactions, edits, deletions, system
    notices, group messages and other fields (calls, templates, preferences) are ignored.

Entries for another page, Instagram account or phone number than the channel's
``account_id`` are skipped, so one Meta app may serve several channels. A body that
is not what Meta documents raises ``ParseError`` naming the field.

Replies go out through the Graph API: Messenger and Instagram messages to
``/me/messages``, comment replies to ``/{comment-id}/comments`` (Facebook) or
``/{comment-id}/replies`` (Instagram), WhatsApp messages to ``/{phone-number-id}/messages``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from ..base import (
    ParseError,
    ParseResult,
    SendError,
    SendResult,
    SignatureError,
)
from .messenger import read_page_entry
from .reading import Reader, field_list, field_obj, field_text, field_when
from .whatsapp import read_whatsapp_entry

GRAPH_URL = "https://graph.facebook.com"
GRAPH_VERSION = "v21.0"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
SIGNATURE_HEADER = "X-Hub-Signature-256"

# Which channel kind reads which webhook object, and the identity platform it yields.
OBJECT_KINDS = {"page": "facebook", "instagram": "instagram", "whatsapp_business_account": "whatsapp"}

# Graph error codes that mean "slow down": application, user, page and API-call
# throttling, plus WhatsApp's account, spam and per-recipient rate limits.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
# "Unknown error" and "service temporarily unavailable": worth another try.
TRANSIENT_CODES = frozenset({1, 2})


# --- handshake and signature ------------------------------------------------------------------


def challenge(request, channel) -> HttpResponse | None:
    """Answer Meta's subscription handshake; None for any request that is not one."""
    if request.method != "GET" or "hub.mode" not in request.GET:
        return None
    try:
        expected = channel.secret("verify_token")
    except ImproperlyConfigured:
        return HttpResponse("Verify token not configured.", status=403, content_type="text/plain")
    given = request.GET.get("hub.verify_token", "")
    if request.GET.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        given.encode(), expected.encode()
    ):
        return HttpResponse("Verify token mismatch.", status=403, content_type="text/plain")
    return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")


def signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(request, channel) -> None:
    """Raise ``SignatureError`` unless the body is signed with the channel's app secret."""
    given = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not given:
        raise SignatureError(f"{SIGNATURE_HEADER} header is missing.")
    try:
        secret = channel.secret("app_secret")
    except ImproperlyConfigured as exc:
        raise SignatureError(f"Cannot check the signature: {exc}") from exc
    if not hmac.compare_digest(given.lower().encode(), signature(request.body, secret).encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body.")


def delivery_id(request, channel) -> str:
    """Meta sends no delivery id: the SHA-256 of the raw body identifies a re-delivery."""
    return hashlib.sha256(request.body).hexdigest()


def event_times(body: bytes) -> list[datetime]:
    """The times Meta gave the events of a body, for the replay window: each entry's
    ``time``, Messenger and Instagram events' ``timestamp``, WhatsApp messages' and
    statuses' ``timestamp``. Meta signs the body only, so these are the only times
    there are. Unreadable values are skipped; never raises.
    """
    try:
        payload = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    entries = payload.get("entry") if isinstance(payload, dict) else None
    found: list[datetime] = []

    def add(value) -> None:
        if value is None:
            return
        with contextlib.suppress(ParseError, TypeError, ValueError, OverflowError):
            found.append(field_when(value, "time"))

    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        add(entry.get("time"))
        for event in entry.get("messaging") if isinstance(entry.get("messaging"), list) else []:
            if isinstance(event, dict):
                add(event.get("timestamp"))
        for change in entry.get("changes") if isinstance(entry.get("changes"), list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            add(value.get("created_time"))
            for key in ("messages", "statuses"):
                items = value.get(key)
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict):
                        add(item.get("timestamp"))
    return found


def parse(event, channel) -> ParseResult:
    """Read a stored Meta webhook body into messages and delivery updates."""
    try:
        payload = json.loads(bytes(event.body))
    except ValueError as exc:
        raise ParseError(f"Body is not valid JSON: {exc}") from exc
    payload = field_obj(payload, "body")
    kind = OBJECT_KINDS.get(field_text(payload.get("object"), "object"))
    if kind is None:
        return ParseResult(ignored_reason=f"Object {payload.get('object')!r} is not one Caseline reads.")
    if channel.kind != kind:
        return ParseResult(
            ignored_reason=f"Object {payload['object']!r} belongs to a {kind} channel, "
            f"not to {channel.kind} channel {channel.slug!r}."
        )
    entries = field_list(payload.get("entry"), "entry", required=True)
    reader = Reader(channel)
    if not entries:
        reader.skip("The body has no entries.")
    for index, raw in enumerate(entries):
        path = f"entry[{index}]"
        entry = field_obj(raw, path)
        if kind == "whatsapp":
            read_whatsapp_entry(reader, entry, path)
        else:
            read_page_entry(reader, entry, path, platform=kind)
    return reader.result()


# --- sending ----------------------------------------------------------------------------------


def send(message, channel) -> SendResult:
    """Deliver one outbound message through the Graph API.

    Raises ``SendError``: retryable for throttling (with the wait Meta asks for),
    5xx answers and network failures; not retryable for anything Meta refused.
    """
    text = (message.text or "").strip()
    if not text:
        raise SendError("The message has no text to send.", retryable=False)
    try:
        token = channel.secret("access_token")
    except ImproperlyConfigured as exc:
        raise SendError(str(exc), retryable=False) from exc
    path, payload, read_id = _graph_request(message, channel, text)
    body = _post(channel, path, payload, token)
    external_id = read_id(body)
    if not external_id:
        raise SendError(f"The Graph API accepted the message but returned no id: {body}", retryable=False)
    return SendResult(external_id=str(external_id), sent_at=datetime.now(UTC))


def _graph_request(message, channel, text: str):
    """The path, JSON body and id reader for this message on this channel."""
    if channel.kind == "whatsapp":
        if not channel.account_id:
            raise SendError(f"Channel {channel.slug!r} has no phone number id (account_id).", retryable=False)
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _recipient(message, channel).lstrip("+"),
            "type": "text",
            "text": {"body": text, "preview_url": False},
        }
        answered = _answered_id(message)
        if answered:
            payload["context"] = {"message_id": answered}
        return f"{channel.account_id}/messages", payload, _whatsapp_message_id
    if channel.kind not in ("facebook", "instagram"):
        raise SendError(f"Channel kind {channel.kind!r} is not a Meta channel.", retryable=False)
    if message.kind == "comment" or message.is_public:
        comment_id = _answered_id(message)
        if not comment_id:
            raise SendError("A public reply needs the comment it answers.", retryable=False)
        edge = "replies" if channel.kind == "instagram" else "comments"
        return f"{comment_id}/{edge}", {"message": text}, lambda body: body.get("id")
    payload = {
        "recipient": {"id": _recipient(message, channel)},
        "message": {"text": text},
        "messaging_type": "RESPONSE",
    }
    return "me/messages", payload, lambda body: body.get("message_id")


def _whatsapp_message_id(body: dict) -> str:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return messages[0].get("id") or ""
    return ""


def _answered_id(message) -> str:
    """The platform id of the message this reply answers, if any."""
    parent = message.reply_to if message.reply_to_id else None
    return (parent.external_id if parent is not None else "") or message.in_reply_to_external_id


def _recipient(message, channel) -> str:
    """Who the reply goes to: its identity, else the last person who wrote on the case here."""
    identity = message.identity
    if identity is None:
        latest = (
            message.case.messages.filter(direction="in", channel=channel, identity__isnull=False)
            .select_related("identity")
            .order_by("-sent_at", "-id")
            .first()
        )
        identity = latest.identity if latest else None
    if identity is None or not identity.platform_id:
        raise SendError(
            f"No recipient: case {message.case.reference} has no customer on {channel}.", retryable=False
        )
    return identity.platform_id


def _post(channel, path: str, payload: dict, token: str) -> dict:
    base = (channel.api_base_url or getattr(settings, "META_GRAPH_URL", "") or GRAPH_URL).rstrip("/")
    version = getattr(settings, "META_GRAPH_VERSION", "") or GRAPH_VERSION
    url = f"{base}/{version}/{path}"
    try:
        response = httpx.post(
            url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
    except httpx.TimeoutException as exc:
        raise SendError(f"The Graph API did not answer in time ({exc.__class__.__name__}).") from exc
    except httpx.HTTPError as exc:
        raise SendError(f"The Graph API could not be reached: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    if response.is_success and error is None:
        return body
    _raise_for(response, error or {})
    return body  # pragma: no cover - _raise_for always raises


def _raise_for(response: httpx.Response, error: dict) -> None:
    status = response.status_code
    code = error.get("code")
    text = str(error.get("message") or f"HTTP {status} from the Graph API")
    details = [f"code {code}"] if code is not None else []
    if error.get("error_subcode"):
        details.append(f"subcode {error['error_subcode']}")
    if error.get("fbtrace_id"):
        details.append(f"fbtrace_id {error['fbtrace_id']}")
    message = f"{text} ({', '.join(details)})" if details else text
    if status == 429 or code in RATE_LIMIT_CODES:
        raise SendError(message, retryable=True, retry_after=_retry_after(response), status=status)
    if status >= 500 or code in TRANSIENT_CODES or error.get("is_transient") is True:
        raise SendError(message, retryable=True, retry_after=_retry_after(response), status=status)
    raise SendError(message, retryable=False, status=status)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds Meta asks us to wait: ``Retry-After``, else the business use case estimate."""
    header = response.headers.get("Retry-After", "").strip()
    if header:
        if header.isdigit():
            return float(header)
        try:
            return max(0.0, (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            pass
    usage = response.headers.get("X-Business-Use-Case-Usage", "")
    try:
        buckets = json.loads(usage) if usage else {}
        minutes = [
            float(item.get("estimated_time_to_regain_access") or 0)
            for items in buckets.values()
            for item in items
            if isinstance(item, dict)
        ]
    except (ValueError, AttributeError, TypeError):
        return None
    longest = max(minutes, default=0)
    return longest * 60 if longest else None
