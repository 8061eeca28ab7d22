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
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.http import HttpResponse

from customers.identifiers import normalize_platform_id

from .base import (
    DeliveryUpdate,
    InboundAttachment,
    InboundMessage,
    ParseError,
    ParseResult,
    SendError,
    SendResult,
    SignatureError,
)

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

WHATSAPP_STATES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    # A voice message listened to: it was read.
    "played": "read",
    "failed": "failed",
}

# Messenger attachment types whose URL points at a file of that family.
ATTACHMENT_FAMILIES = {"image": "image/*", "video": "video/*", "audio": "audio/*"}
WHATSAPP_MEDIA_TYPES = ("image", "document", "audio", "video", "sticker", "voice")


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
            found.append(_when(value, "time"))

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


# --- reading bodies ---------------------------------------------------------------------------


def _obj(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ParseError(f"{path} is missing or not an object.")
    return value


def _list(value: Any, path: str, *, required: bool = False) -> list:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{path} is missing or not a list.")
    return value


def _text(value: Any, path: str) -> str:
    """An optional string field; numbers are accepted as ids, anything else is an error."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParseError(f"{path} is not a string.")
    return str(value)


def _opt_id(value: Any, path: str) -> str:
    """An optional platform id ("" when absent)."""
    return _text(value, path).strip()


def _id(value: Any, path: str) -> str:
    """A required platform id."""
    text = _opt_id(value, path)
    if not text:
        raise ParseError(f"{path} is missing.")
    return text


def _when(value: Any, path: str) -> datetime:
    """A Unix time in seconds or milliseconds (Messenger uses both), or a Graph API
    ISO 8601 time (``2024-06-13T12:16:40+0000``), as an aware datetime."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    elif isinstance(value, str):
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise ParseError(f"{path} is not a Unix timestamp or an ISO 8601 time.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{path} is missing or not a Unix timestamp.")
    seconds = value / 1000 if value > 100_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ParseError(f"{path} is out of range.") from exc


class _Reader:
    """Collects what one body yields; entries it skips leave a reason."""

    def __init__(self, channel):
        self.channel = channel
        self.messages: list[InboundMessage] = []
        self.updates: list[DeliveryUpdate] = []
        self.reasons: list[str] = []
        self._seen_messages: set[str] = set()
        self._seen_updates: set[tuple[str, str]] = set()

    def add_message(self, message: InboundMessage) -> None:
        # A body may carry the same message twice; the second copy adds nothing.
        if message.external_id not in self._seen_messages:
            self._seen_messages.add(message.external_id)
            self.messages.append(message)

    def add_update(self, update: DeliveryUpdate) -> None:
        key = (update.external_id, update.state)
        if key not in self._seen_updates:
            self._seen_updates.add(key)
            self.updates.append(update)

    def skip(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def is_ours(self, account_id: str) -> bool:
        return not self.channel.account_id or account_id == self.channel.account_id

    def result(self) -> ParseResult:
        if self.messages or self.updates:
            return ParseResult(messages=self.messages, updates=self.updates)
        return ParseResult(ignored_reason="; ".join(self.reasons) or "Nothing to ingest.")


def parse(event, channel) -> ParseResult:
    """Read a stored Meta webhook body into messages and delivery updates."""
    try:
        payload = json.loads(bytes(event.body))
    except ValueError as exc:
        raise ParseError(f"Body is not valid JSON: {exc}") from exc
    payload = _obj(payload, "body")
    kind = OBJECT_KINDS.get(_text(payload.get("object"), "object"))
    if kind is None:
        return ParseResult(ignored_reason=f"Object {payload.get('object')!r} is not one Caseline reads.")
    if channel.kind != kind:
        return ParseResult(
            ignored_reason=f"Object {payload['object']!r} belongs to a {kind} channel, "
            f"not to {channel.kind} channel {channel.slug!r}."
        )
    entries = _list(payload.get("entry"), "entry", required=True)
    reader = _Reader(channel)
    if not entries:
        reader.skip("The body has no entries.")
    for index, raw in enumerate(entries):
        path = f"entry[{index}]"
        entry = _obj(raw, path)
        if kind == "whatsapp":
            _read_whatsapp_entry(reader, entry, path)
        else:
            _read_page_entry(reader, entry, path, platform=kind)
    return reader.result()


# --- Messenger and Instagram ------------------------------------------------------------------


def _read_page_entry(reader: _Reader, entry: dict, path: str, *, platform: str) -> None:
    account = _id(entry.get("id"), f"{path}.id")
    if not reader.is_ours(account):
        reader.skip(f"Entry for account {account}, not this channel's {reader.channel.account_id}.")
        return
    events = _list(entry.get("messaging"), f"{path}.messaging")
    changes = _list(entry.get("changes"), f"{path}.changes")
    if entry.get("standby") is not None:
        reader.skip("Standby events belong to the app in control of the thread.")
    if not events and not changes and entry.get("standby") is None:
        reader.skip("Entry without messaging events or changes.")
    for index, raw in enumerate(events):
        _read_messaging(
            reader, _obj(raw, f"{path}.messaging[{index}]"), f"{path}.messaging[{index}]", platform
        )
    for index, raw in enumerate(changes):
        change_path = f"{path}.changes[{index}]"
        change = _obj(raw, change_path)
        field = _text(change.get("field"), f"{change_path}.field")
        value = _obj(change.get("value"), f"{change_path}.value")
        if platform == "facebook" and field == "feed":
            _read_feed_change(reader, value, f"{change_path}.value")
        elif platform == "instagram" and field == "comments":
            _read_instagram_comment(reader, value, f"{change_path}.value", entry.get("time"), f"{path}.time")
        else:
            reader.skip(f"Change field {field!r} is not read.")


def _read_messaging(reader: _Reader, event: dict, path: str, platform: str) -> None:
    if "message" in event:
        _read_dm(reader, event, path, platform)
    elif "postback" in event:
        _read_postback(reader, event, path, platform)
    elif "delivery" in event:
        delivery = _obj(event["delivery"], f"{path}.delivery")
        mids = _list(delivery.get("mids"), f"{path}.delivery.mids")
        if not mids:
            reader.skip("Delivery receipt with a watermark only.")
            return
        at = _when(delivery.get("watermark") or event.get("timestamp"), f"{path}.delivery.watermark")
        for index, mid in enumerate(mids):
            reader.add_update(DeliveryUpdate(_id(mid, f"{path}.delivery.mids[{index}]"), "delivered", at=at))
    elif "read" in event:
        read = _obj(event["read"], f"{path}.read")
        mid = _opt_id(read.get("mid"), f"{path}.read.mid")
        if not mid:  # Messenger reports a watermark, not which messages were read.
            reader.skip("Read receipt with a watermark only.")
            return
        at = _when(event.get("timestamp"), f"{path}.timestamp")
        reader.add_update(DeliveryUpdate(mid, "read", at=at))
    else:
        known = ("reaction", "optin", "referral", "account_linking", "message_edit", "policy_enforcement")
        kind = next((name for name in known if name in event), "unknown")
        reader.skip(f"Messaging event {kind!r} is not ingested.")


def _read_dm(reader: _Reader, event: dict, path: str, platform: str) -> None:
    message = _obj(event["message"], f"{path}.message")
    mid = _id(message.get("mid"), f"{path}.message.mid")
    if message.get("is_deleted"):
        reader.skip("Unsent (deleted) message.")
        return
    sender = _id(_obj(event.get("sender"), f"{path}.sender").get("id"), f"{path}.sender.id")
    recipient = _opt_id(_obj(event.get("recipient"), f"{path}.recipient").get("id"), f"{path}.recipient.id")
    sent_at = _when(event.get("timestamp"), f"{path}.timestamp")
    text = _text(message.get("text"), f"{path}.message.text")
    attachments, notes = _messenger_attachments(message, f"{path}.message.attachments")
    text = "\n".join(part for part in (text, *notes) if part)
    reply_to = ""
    if message.get("reply_to") is not None:
        reply_to = _opt_id(
            _obj(message["reply_to"], f"{path}.message.reply_to").get("mid"), f"{path}.message.reply_to.mid"
        )
    is_echo = bool(message.get("is_echo")) or sender == reader.channel.account_id
    reader.add_message(
        InboundMessage(
            platform=platform,
            external_id=mid,
            author_id=sender,
            kind="dm",
            sent_at=sent_at,
            text=text,
            is_public=False,
            reply_to_external_id=reply_to,
            thread_keys=(reply_to,) if reply_to else (),
            attachments=tuple(attachments),
            is_echo=is_echo,
            recipient_id=recipient if is_echo else "",
        )
    )


def _messenger_attachments(message: dict, path: str) -> tuple[list[InboundAttachment], list[str]]:
    """Attachments with a URL, and a line of text for those without one (locations, likes)."""
    attachments, notes = [], []
    for index, raw in enumerate(_list(message.get("attachments"), path)):
        item = _obj(raw, f"{path}[{index}]")
        kind = _text(item.get("type"), f"{path}[{index}].type") or "file"
        payload = item.get("payload")
        payload = _obj(payload, f"{path}[{index}].payload") if payload is not None else {}
        url = _text(payload.get("url"), f"{path}[{index}].payload.url")
        if kind == "location" and isinstance(payload.get("coordinates"), dict):
            point = payload["coordinates"]
            notes.append(f"Location: {point.get('lat')}, {point.get('long')}")
        elif url.startswith(("https://", "http://")):
            attachments.append(
                InboundAttachment(
                    filename=_text(payload.get("title"), f"{path}[{index}].payload.title"),
                    content_type=ATTACHMENT_FAMILIES.get(kind, ""),
                    url=url,
                )
            )
        else:
            notes.append(f"[{kind.replace('_', ' ')}]")
    return attachments, notes


def _read_postback(reader: _Reader, event: dict, path: str, platform: str) -> None:
    """A tapped button: what the customer chose, as a message from them."""
    postback = _obj(event["postback"], f"{path}.postback")
    sender = _id(_obj(event.get("sender"), f"{path}.sender").get("id"), f"{path}.sender.id")
    timestamp = event.get("timestamp")
    sent_at = _when(timestamp, f"{path}.timestamp")
    title = _text(postback.get("title"), f"{path}.postback.title")
    payload = _text(postback.get("payload"), f"{path}.postback.payload")
    # Older postbacks carry no mid; sender and time identify a re-delivery just as well.
    mid = _opt_id(postback.get("mid"), f"{path}.postback.mid") or f"postback:{sender}:{timestamp}"
    reader.add_message(
        InboundMessage(
            platform=platform,
            external_id=mid,
            author_id=sender,
            kind="dm",
            sent_at=sent_at,
            text=title or payload,
        )
    )


def _read_feed_change(reader: _Reader, value: dict, path: str) -> None:
    item = _text(value.get("item"), f"{path}.item")
    verb = _text(value.get("verb"), f"{path}.verb")
    if item != "comment":
        reader.skip(f"Feed {item or 'change'} {verb} is not ingested.".replace("  ", " "))
        return
    if verb != "add":
        reader.skip(f"Feed comment {verb or 'change'} is not ingested.")
        return
    comment_id = _id(value.get("comment_id"), f"{path}.comment_id")
    post_id = _id(value.get("post_id"), f"{path}.post_id")
    parent_id = _opt_id(value.get("parent_id"), f"{path}.parent_id")
    author = _obj(value.get("from"), f"{path}.from")
    author_id = _id(author.get("id"), f"{path}.from.id")
    attachments = []
    for key in ("photo", "video"):
        url = _text(value.get(key), f"{path}.{key}")
        if url:
            attachments.append(
                InboundAttachment(
                    content_type=ATTACHMENT_FAMILIES["image" if key == "photo" else key], url=url
                )
            )
    reader.add_message(
        InboundMessage(
            platform="facebook",
            external_id=comment_id,
            author_id=author_id,
            author_name=_text(author.get("name"), f"{path}.from.name"),
            kind="comment",
            sent_at=_when(value.get("created_time"), f"{path}.created_time"),
            text=_text(value.get("message"), f"{path}.message"),
            is_public=True,
            # A top-level comment's parent is the post itself.
            reply_to_external_id=parent_id if parent_id and parent_id != post_id else "",
            thread_keys=(post_id,),
            attachments=tuple(attachments),
            is_echo=author_id == reader.channel.account_id,
        )
    )


def _read_instagram_comment(reader: _Reader, value: dict, path: str, entry_time: Any, time_path: str) -> None:
    comment_id = _id(value.get("id"), f"{path}.id")
    author = _obj(value.get("from"), f"{path}.from")
    author_id = _id(author.get("id"), f"{path}.from.id")
    media_id = _id(_obj(value.get("media"), f"{path}.media").get("id"), f"{path}.media.id")
    # Comment webhooks carry no time of their own; the entry's is when Meta saw it.
    stamp, stamp_path = (
        (value["timestamp"], f"{path}.timestamp") if "timestamp" in value else (entry_time, time_path)
    )
    reader.add_message(
        InboundMessage(
            platform="instagram",
            external_id=comment_id,
            author_id=author_id,
            author_handle=_text(author.get("username"), f"{path}.from.username"),
            kind="comment",
            sent_at=_when(stamp, stamp_path),
            text=_text(value.get("text"), f"{path}.text"),
            is_public=True,
            reply_to_external_id=_opt_id(value.get("parent_id"), f"{path}.parent_id"),
            thread_keys=(media_id,),
            is_echo=author_id == reader.channel.account_id,
        )
    )


# --- WhatsApp ---------------------------------------------------------------------------------


def _read_whatsapp_entry(reader: _Reader, entry: dict, path: str) -> None:
    changes = _list(entry.get("changes"), f"{path}.changes")
    if not changes:
        reader.skip("Entry without changes.")
    for index, raw in enumerate(changes):
        change_path = f"{path}.changes[{index}]"
        change = _obj(raw, change_path)
        field = _text(change.get("field"), f"{change_path}.field")
        if field != "messages":
            reader.skip(f"Change field {field!r} is not read.")
            continue
        value_path = f"{change_path}.value"
        value = _obj(change.get("value"), value_path)
        metadata = _obj(value.get("metadata"), f"{value_path}.metadata")
        number_id = _id(metadata.get("phone_number_id"), f"{value_path}.metadata.phone_number_id")
        if not reader.is_ours(number_id):
            reader.skip(f"Phone number id {number_id} is not this channel's {reader.channel.account_id}.")
            continue
        contacts = _whatsapp_contacts(value, f"{value_path}.contacts")
        messages = _list(value.get("messages"), f"{value_path}.messages")
        statuses = _list(value.get("statuses"), f"{value_path}.statuses")
        for number, raw_message in enumerate(messages):
            message_path = f"{value_path}.messages[{number}]"
            _read_whatsapp_message(reader, _obj(raw_message, message_path), message_path, contacts)
        for number, raw_status in enumerate(statuses):
            status_path = f"{value_path}.statuses[{number}]"
            _read_whatsapp_status(reader, _obj(raw_status, status_path), status_path)
        if not messages and not statuses:
            errors = _error_text(value.get("errors"), f"{value_path}.errors")
            reader.skip(
                f"WhatsApp reported an error: {errors}" if errors else "Change without messages or statuses."
            )


def _whatsapp_contacts(value: dict, path: str) -> dict[str, dict]:
    contacts = {}
    for index, raw in enumerate(_list(value.get("contacts"), path)):
        contact = _obj(raw, f"{path}[{index}]")
        wa_id = _opt_id(contact.get("wa_id"), f"{path}[{index}].wa_id")
        if wa_id:
            contacts[wa_id] = contact
    return contacts


def _read_whatsapp_message(reader: _Reader, message: dict, path: str, contacts: dict[str, dict]) -> None:
    wamid = _id(message.get("id"), f"{path}.id")
    kind = _text(message.get("type"), f"{path}.type")
    if kind in ("reaction", "revoke", "edit", "system", "request_welcome", "ephemeral"):
        reader.skip(f"WhatsApp {kind} message is not ingested.")
        return
    if message.get("group_id") is not None:
        reader.skip("WhatsApp group messages are not ingested.")
        return
    wa_id = _opt_id(message.get("from"), f"{path}.from")
    if not wa_id:
        user_id = _opt_id(message.get("from_user_id"), f"{path}.from_user_id")
        if user_id:
            raise ParseError(f"{path}.from is missing: only a business-scoped user id ({user_id}) was given.")
        raise ParseError(f"{path}.from is missing.")
    try:
        author_id = normalize_platform_id("whatsapp", "+" + wa_id if wa_id.isdigit() else wa_id)
    except ValidationError as exc:
        raise ParseError(f"{path}.from {wa_id!r} is not a WhatsApp phone number.") from exc
    sent_at = _when(message.get("timestamp"), f"{path}.timestamp")
    text, attachments = _whatsapp_content(message, kind, path)
    context = message.get("context")
    reply_to = ""
    if context is not None:
        reply_to = _opt_id(_obj(context, f"{path}.context").get("id"), f"{path}.context.id")
    contact = contacts.get(wa_id, {})
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    reader.add_message(
        InboundMessage(
            platform="whatsapp",
            external_id=wamid,
            author_id=author_id,
            author_name=_text(profile.get("name"), f"{path}.contacts.profile.name"),
            author_handle=_text(profile.get("username"), f"{path}.contacts.profile.username"),
            author_profile={"wa_id": wa_id},
            kind="dm",
            sent_at=sent_at,
            text=text,
            is_public=False,
            reply_to_external_id=reply_to,
            thread_keys=(reply_to,) if reply_to else (),
            attachments=tuple(attachments),
        )
    )


def _whatsapp_content(message: dict, kind: str, path: str) -> tuple[str, list[InboundAttachment]]:
    """The text an agent reads and the media references of one WhatsApp message."""
    body = message.get(kind) if kind else None
    if kind == "contacts":
        return _shared_contacts(body, f"{path}.contacts"), []
    part = _obj(body, f"{path}.{kind}") if body is not None else {}
    if kind == "text":
        return _text(part.get("body"), f"{path}.text.body"), []
    if kind in WHATSAPP_MEDIA_TYPES:
        media_id = _opt_id(part.get("id"), f"{path}.{kind}.id")
        url = f"whatsapp-media:{media_id}" if media_id else _text(part.get("url"), f"{path}.{kind}.url")
        if not url:
            raise ParseError(f"{path}.{kind}.id is missing.")
        attachment = InboundAttachment(
            filename=_text(part.get("filename"), f"{path}.{kind}.filename"),
            content_type=_text(part.get("mime_type"), f"{path}.{kind}.mime_type"),
            url=url,
        )
        return _text(part.get("caption"), f"{path}.{kind}.caption"), [attachment]
    if kind == "location":
        place = ", ".join(
            _text(part.get(key), f"{path}.location.{key}") for key in ("name", "address") if part.get(key)
        )
        point = f"{part.get('latitude')}, {part.get('longitude')}"
        return f"Location: {place} ({point})" if place else f"Location: {point}", []
    if kind == "interactive":
        choice_kind = _text(part.get("type"), f"{path}.interactive.type")
        choice = part.get(choice_kind)
        choice = _obj(choice, f"{path}.interactive.{choice_kind}") if choice is not None else {}
        text = _text(choice.get("title") or choice.get("body"), f"{path}.interactive.{choice_kind}.title")
        return text or "[Interactive reply]", []
    if kind == "button":
        return _text(part.get("text") or part.get("payload"), f"{path}.button.text"), []
    # Unsupported and any type Caseline does not know: keep the customer's words if any.
    fallback = message.get("text")
    text = (
        _text(_obj(fallback, f"{path}.text").get("body"), f"{path}.text.body") if fallback is not None else ""
    )
    problem = _error_text(message.get("errors"), f"{path}.errors")
    return text or f"[{kind or 'Unknown'} message{': ' + problem if problem else ''}]", []


def _shared_contacts(cards: Any, path: str) -> str:
    lines = []
    for index, raw in enumerate(_list(cards, path, required=True)):
        card = _obj(raw, f"{path}[{index}]")
        name = card.get("name") if isinstance(card.get("name"), dict) else {}
        phones = card.get("phones") if isinstance(card.get("phones"), list) else []
        numbers = [str(p["phone"]) for p in phones if isinstance(p, dict) and p.get("phone")]
        lines.append(" ".join(str(x) for x in [name.get("formatted_name", ""), *numbers] if x))
    return "Shared contacts: " + "; ".join(line for line in lines if line)


def _read_whatsapp_status(reader: _Reader, status: dict, path: str) -> None:
    wamid = _id(status.get("id"), f"{path}.id")
    name = _text(status.get("status"), f"{path}.status")
    state = WHATSAPP_STATES.get(name)
    if state is None:
        reader.skip(f"WhatsApp status {name!r} is not tracked.")
        return
    reader.add_update(
        DeliveryUpdate(
            external_id=wamid,
            state=state,
            at=_when(status.get("timestamp"), f"{path}.timestamp"),
            error=_error_text(status.get("errors"), f"{path}.errors"),
        )
    )


def _error_text(errors: Any, path: str) -> str:
    """WhatsApp's ``errors[]`` as one line: code, title and details."""
    lines = []
    for index, raw in enumerate(_list(errors, path)):
        error = _obj(raw, f"{path}[{index}]")
        data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        where = f"{path}[{index}]"
        parts = (
            _text(error.get("title"), f"{where}.title"),
            _text(error.get("message"), f"{where}.message"),
            _text(data.get("details"), f"{where}.error_data.details"),
            _text(error.get("details"), f"{where}.details"),
        )
        words = " — ".join(dict.fromkeys(part.strip() for part in parts if part and part.strip()))
        code = error.get("code")
        lines.append(f"{words} (code {code})" if code is not None else words)
    return "; ".join(line for line in lines if line)


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
