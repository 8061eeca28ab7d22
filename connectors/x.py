"""X (formerly Twitter): Account Activity webhooks in, API v2 out.

Inbound, the Account Activity API posts one JSON envelope per batch of events for
the subscribed account (``for_user_id``): ``tweet_create_events`` (mentions, replies,
quotes, and our own posts), ``direct_message_events`` (with a ``users`` map of
profiles), and activity we keep but do not ingest (favourites, follows, typing, read
receipts, deletions...). The newer X Activity API envelope (``data.event_type`` with
a v2 ``payload``) is read too. Requests are signed: ``x-twitter-webhooks-signature``
is ``sha256=`` + base64 HMAC-SHA256 of the raw body keyed by the app's consumer
secret, and a GET with ``crc_token`` must be answered with the same HMAC of the token.

Post and DM text arrives with ``&``, ``<`` and ``>`` escaped as HTML entities; ``parse``
decodes exactly those, once (``text_decode``). The stored body stays as X sent it, and
``send`` posts plain text, which X escapes itself.

Anything our own account wrote (``channel.account_id``, else ``for_user_id``) comes
back as an echo (``is_echo``) addressed to the customer it went to.

Outbound, ``send`` posts to API v2: ``POST /2/tweets`` (a public reply with
``reply.in_reply_to_tweet_id``) and ``POST /2/dm_conversations/with/:id/messages``.

Secrets (roles in ``channel.secret_env``): ``consumer_secret`` (webhooks) and
``access_token`` (a user-context bearer token for sending).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import mimetypes
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse

from .base import (
    InboundAttachment,
    InboundMessage,
    ParseError,
    ParseResult,
    SendError,
    SendResult,
    SignatureError,
)

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
DEFAULT_API_BASE = "https://api.x.com"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
TWEET_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"

# Account Activity keys that carry nothing to ingest, and what they are.
IGNORED_EVENTS = {
    "favorite_events": "favourites",
    "follow_events": "follows",
    "block_events": "blocks",
    "mute_events": "mutes",
    "direct_message_indicate_typing_events": "typing indicators",
    "direct_message_mark_read_events": "read receipts",
    "tweet_delete_events": "post deletions",
    "user_event": "app permission changes",
}
MESSAGE_EVENTS = ("tweet_create_events", "direct_message_events")
# Envelope keys that are not events.
ENVELOPE_KEYS = frozenset({"for_user_id", "user_has_blocked", "users", "apps", "source"})
# X Activity API event types that carry customer messages.
ACTIVITY_POSTS = frozenset({"post.create", "post.mention.create", "post.reply.create", "post.quote.create"})
ACTIVITY_DMS = frozenset({"dm.received", "dm.sent"})


# X escapes "&", "<" and ">" in post and DM text ("&amp;", "&lt;", "&gt;") and nothing else.
# The order matters: "&amp;" goes last, so "&amp;lt;" (a customer who typed "&lt;") becomes
# "&lt;" and not "<".
_X_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


# --- webhook security ------------------------------------------------------------------


def signature(secret: str, message: bytes) -> str:
    """``sha256=`` + base64 HMAC-SHA256 of ``message`` keyed by ``secret``: X's signature format."""
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def challenge(request: HttpRequest, channel) -> HttpResponse | None:
    """Answer X's CRC check: ``{"response_token": "sha256=..."}`` for the ``crc_token`` sent."""
    token = request.GET.get("crc_token", "")
    if not token:
        return JsonResponse({"error": "crc_token is required."}, status=400)
    return JsonResponse({"response_token": signature(channel.secret("consumer_secret"), token.encode())})


def verify(request: HttpRequest, channel) -> None:
    """Check ``x-twitter-webhooks-signature`` over the raw body, in constant time."""
    given = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not given:
        raise SignatureError(f"The {SIGNATURE_HEADER} header is missing.")
    expected = signature(channel.secret("consumer_secret"), request.body)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape")):
        raise SignatureError(f"The {SIGNATURE_HEADER} header does not match the body.")


def delivery_id(request: HttpRequest, channel) -> str:
    """X gives no delivery id: the SHA-256 of the body stands in (a re-delivery is byte-identical)."""
    return hashlib.sha256(request.body).hexdigest()


def event_times(body: bytes) -> list[datetime]:
    """The times X gave the events of a body (posts' ``created_at``, DMs'
    ``created_timestamp``), for the replay window; whatever cannot be read is skipped.

    X signs the body only, with no timestamp of its own, so these are the only times
    there are. Never raises: a hostile body just yields fewer times.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(payload, dict):
        return []
    found: list[datetime] = []

    def add(reader, value) -> None:
        with contextlib.suppress(ParseError, TypeError, ValueError, OverflowError):
            found.append(reader(value, where="replay check"))

    tweets = payload.get("tweet_create_events")
    for tweet in tweets if isinstance(tweets, list) else []:
        if isinstance(tweet, dict):
            add(_tweet_time, tweet.get("created_at"))
    dm_lists = [payload.get("direct_message_events")]
    data = payload.get("data")
    if isinstance(data, dict) and isinstance(data.get("payload"), dict):
        post = data["payload"]
        if post.get("created_at"):
            add(_iso_time, post.get("created_at"))
        dm_lists.append(post.get("direct_message_events"))
    for dms in dm_lists:
        for dm in dms if isinstance(dms, list) else []:
            if isinstance(dm, dict) and dm.get("created_timestamp") is not None:
                add(_millis, dm.get("created_timestamp"))
    return found


# --- parsing ---------------------------------------------------------------------------


def text_decode(text: str) -> str:
    """Post or DM text as the author typed it: X's ``&amp;``, ``&lt;`` and ``&gt;`` decoded, once.

    Exactly the inverse of X's escaping, not ``html.unescape``: that undoes HTML's, a far
    larger set (two thousand named references, numeric ones, and legacy names such as
    ``&reg`` or ``&not`` even without their semicolon), so any "&" that X did not add
    itself would be rewritten into a character nobody typed ("?id=5&region=eu" into
    "?id=5®ion=eu", "&#39;" into an apostrophe). X's entity indices and
    ``display_text_range`` count characters of the unescaped text, so they fit the text
    this returns. Text without "&" (nearly all of it) costs one ``in`` check.
    """
    if "&" not in text:
        return text
    for entity, char in _X_ENTITIES:
        text = text.replace(entity, char)
    return text


def parse(event, channel) -> ParseResult:
    """Read a stored webhook body into messages; ``ParseError`` names what is wrong with it."""
    try:
        payload = json.loads(bytes(event.body).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ParseError(f"The body is not UTF-8 text: {exc}.") from exc
    except ValueError as exc:
        raise ParseError(f"The body is not JSON: {exc}.") from exc
    if not isinstance(payload, dict):
        raise ParseError(f"The body is a JSON {type(payload).__name__}, not an object.")
    try:
        data = payload.get("data")
        if isinstance(data, dict) and "event_type" in data:
            return _parse_activity(data, channel)
        return _parse_account_activity(payload, channel)
    except ParseError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ParseError(f"Unexpected structure: {type(exc).__name__}: {exc}.") from exc


def _parse_account_activity(payload: dict, channel) -> ParseResult:
    for_user_id = _id(payload.get("for_user_id"))
    if for_user_id and channel.account_id and for_user_id != channel.account_id:
        return ParseResult(
            ignored_reason=f"Events for X account {for_user_id}, not this channel's account {channel.account_id}."
        )
    own = channel.account_id or for_user_id
    result = ParseResult()
    skipped: list[str] = []
    users = payload.get("users", {})
    if not isinstance(users, dict):
        raise ParseError("users is not an object.")

    tweets = _list(payload, "tweet_create_events")
    for index, tweet in enumerate(tweets):
        where = f"tweet_create_events[{index}]"
        if not isinstance(tweet, dict):
            raise ParseError(f"{where} is not an object.")
        if tweet.get("retweeted_status"):
            skipped.append(f"repost {_id(tweet.get('id_str') or tweet.get('id'))}")
            continue
        result.messages.append(_tweet_v1(tweet, own=own, where=where))

    for index, dm in enumerate(_list(payload, "direct_message_events")):
        message = _direct_message(dm, users=users, own=own, where=f"direct_message_events[{index}]")
        if message is None:
            skipped.append(f"direct message event of type {dm.get('type')!r}")
        else:
            result.messages.append(message)

    present = [key for key in payload if key not in ENVELOPE_KEYS]
    known = [key for key in present if key in IGNORED_EVENTS or key in MESSAGE_EVENTS]
    if not known and not (for_user_id and any(key.endswith("_events") for key in present)):
        raise ParseError(f"Not an Account Activity event: no event key among {sorted(payload) or 'nothing'}.")
    for key in present:
        if key in IGNORED_EVENTS:
            skipped.append(IGNORED_EVENTS[key])
        elif key not in MESSAGE_EVENTS:
            skipped.append(f"unhandled event type {key}")
    if not result.messages:
        what = ", ".join(dict.fromkeys(skipped)) or "empty " + ", ".join(present)
        result.ignored_reason = f"Nothing to ingest: {what}."
    return result


def _tweet_v1(tweet: dict, *, own: str, where: str) -> InboundMessage:
    """A v1.1 Tweet object (Account Activity) as an InboundMessage."""
    tweet_id = _id(tweet.get("id_str") or tweet.get("id"))
    if not tweet_id:
        raise ParseError(f"{where}: id_str is missing.")
    user = tweet.get("user")
    if not isinstance(user, dict):
        raise ParseError(f"{where} ({tweet_id}): user is missing.")
    author_id = _id(user.get("id_str") or user.get("id"))
    if not author_id:
        raise ParseError(f"{where} ({tweet_id}): user.id_str is missing.")
    extended = tweet.get("extended_tweet") if isinstance(tweet.get("extended_tweet"), dict) else {}
    text = (
        extended.get("full_text")
        if tweet.get("truncated") and extended.get("full_text")
        else tweet.get("full_text") or tweet.get("text") or extended.get("full_text") or ""
    )
    thread_keys = []
    quoted_text = ""
    quoted_id = _id(tweet.get("quoted_status_id_str") or tweet.get("quoted_status_id"))
    if quoted_id:
        thread_keys.append(quoted_id)
        quoted = tweet.get("quoted_status")
        if isinstance(quoted, dict):
            quoted_extended = quoted.get("extended_tweet") or {}
            quoted_text = (
                quoted_extended.get("full_text") or quoted.get("full_text") or quoted.get("text") or ""
            )
    is_echo = bool(own) and author_id == own
    media = (
        (extended.get("extended_entities") or {}).get("media")
        or (tweet.get("extended_entities") or {}).get("media")
        or (extended.get("entities") or {}).get("media")
        or (tweet.get("entities") or {}).get("media")
        or []
    )
    return InboundMessage(
        platform="x",
        external_id=tweet_id,
        author_id=author_id,
        kind="post",
        sent_at=_tweet_time(tweet.get("created_at"), where=f"{where} ({tweet_id})"),
        text=text_decode(text),
        is_public=True,
        author_handle=user.get("screen_name") or "",
        author_name=user.get("name") or "",
        author_follower_count=_count(user.get("followers_count")),
        author_verified=bool(user.get("verified")),
        author_profile=_profile_v1(user),
        reply_to_external_id=_id(
            tweet.get("in_reply_to_status_id_str") or tweet.get("in_reply_to_status_id")
        ),
        thread_keys=tuple(thread_keys),
        quoted_text=text_decode(quoted_text),
        attachments=tuple(_media_attachment(m) for m in media if isinstance(m, dict)),
        is_echo=is_echo,
        recipient_id=_id(tweet.get("in_reply_to_user_id_str") or tweet.get("in_reply_to_user_id"))
        if is_echo
        else "",
    )


def _direct_message(dm, *, users: dict, own: str, where: str) -> InboundMessage | None:
    """A ``message_create`` direct message event; None for other DM event types."""
    if not isinstance(dm, dict):
        raise ParseError(f"{where} is not an object.")
    if dm.get("type") != "message_create":
        return None
    dm_id = _id(dm.get("id"))
    if not dm_id:
        raise ParseError(f"{where}: id is missing.")
    create = dm.get("message_create")
    if not isinstance(create, dict):
        raise ParseError(f"{where} ({dm_id}): message_create is missing.")
    sender = _id(create.get("sender_id"))
    recipient = _id((create.get("target") or {}).get("recipient_id"))
    if not sender:
        raise ParseError(f"{where} ({dm_id}): message_create.sender_id is missing.")
    data = create.get("message_data") or {}
    attachment = data.get("attachment") or {}
    attachments = ()
    if attachment.get("type") == "media" and isinstance(attachment.get("media"), dict):
        attachments = (_media_attachment(attachment["media"]),)
    user = users.get(sender) or {}
    user = user.get("data", user) if isinstance(user, dict) else {}
    is_echo = bool(own) and sender == own
    return InboundMessage(
        platform="x",
        external_id=dm_id,
        author_id=sender,
        kind="dm",
        sent_at=_millis(dm.get("created_timestamp"), where=f"{where} ({dm_id})"),
        text=text_decode(data.get("text") or ""),
        is_public=False,
        author_handle=user.get("screen_name") or user.get("username") or "",
        author_name=user.get("name") or "",
        author_follower_count=_count(
            user.get("followers_count", (user.get("public_metrics") or {}).get("followers_count"))
        ),
        author_verified=bool(user.get("verified")),
        author_profile=_profile_v1(user),
        attachments=attachments,
        is_echo=is_echo,
        recipient_id=recipient if is_echo else "",
    )


def _parse_activity(data: dict, channel) -> ParseResult:
    """The X Activity API envelope: ``data.event_type``, ``data.payload``, ``data.includes``."""
    event_type = str(data.get("event_type") or "")
    subscribed = _id((data.get("filter") or {}).get("user_id"))
    if subscribed and channel.account_id and subscribed != channel.account_id:
        return ParseResult(
            ignored_reason=f"Events for X account {subscribed}, not this channel's account {channel.account_id}."
        )
    own = channel.account_id or subscribed
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise ParseError(f"{event_type or 'event'}: payload is missing.")
    if event_type in ACTIVITY_POSTS:
        includes = data.get("includes") or {}
        users = {_id(u.get("id")): u for u in includes.get("users") or [] if isinstance(u, dict)}
        posts = {_id(t.get("id")): t for t in includes.get("tweets") or [] if isinstance(t, dict)}
        return ParseResult(messages=[_post_v2(payload, users=users, posts=posts, own=own, where=event_type)])
    if event_type in ACTIVITY_DMS:
        users = payload.get("users") or {}
        messages = []
        for index, dm in enumerate(payload.get("direct_message_events") or []):
            message = _direct_message(dm, users=users, own=own, where=f"{event_type}[{index}]")
            if message is not None:
                messages.append(message)
        if not messages:
            return ParseResult(ignored_reason=f"{event_type} carries no message_create event.")
        return ParseResult(messages=messages)
    if event_type.startswith("chat."):
        return ParseResult(ignored_reason=f"{event_type}: end-to-end encrypted chat, content not readable.")
    if not event_type:
        raise ParseError("data.event_type is empty.")
    return ParseResult(ignored_reason=f"{event_type} events carry no customer message.")


def _post_v2(post: dict, *, users: dict, posts: dict, own: str, where: str) -> InboundMessage:
    """A v2 Post object (X Activity API payload) as an InboundMessage; ``posts`` are the
    envelope's ``includes.tweets`` by id, where a quoted post's text is found."""
    post_id = _id(post.get("id"))
    if not post_id:
        raise ParseError(f"{where}: payload.id is missing.")
    author_id = _id(post.get("author_id"))
    if not author_id:
        raise ParseError(f"{where} ({post_id}): payload.author_id is missing.")
    references = {ref.get("type"): _id(ref.get("id")) for ref in post.get("referenced_tweets") or []}
    reply_to = _id(post.get("in_reply_to_tweet_id")) or references.get("replied_to", "")
    thread_keys = [key for key in (references.get("quoted"), _id(post.get("conversation_id"))) if key]
    if thread_keys and thread_keys[-1] == post_id:
        thread_keys.pop()
    user = users.get(author_id) or {}
    metrics = user.get("public_metrics") or {}
    is_echo = bool(own) and author_id == own
    quoted = posts.get(references.get("quoted") or "") or {}
    return InboundMessage(
        platform="x",
        external_id=post_id,
        author_id=author_id,
        kind="post",
        sent_at=_iso_time(post.get("created_at"), where=f"{where} ({post_id})"),
        text=text_decode(_text_v2(post)),
        is_public=True,
        author_handle=user.get("username") or "",
        author_name=user.get("name") or "",
        author_follower_count=_count(metrics.get("followers_count")),
        author_verified=bool(user.get("verified")),
        author_profile=_profile_v1(user),
        reply_to_external_id=reply_to,
        thread_keys=tuple(dict.fromkeys(thread_keys)),
        quoted_text=text_decode(_text_v2(quoted)),
        is_echo=is_echo,
        recipient_id=_id(post.get("in_reply_to_user_id")) if is_echo else "",
    )


def _text_v2(post: dict) -> str:
    """A v2 Post's whole text: a long post's ``note_tweet.text``, else ``text`` (still escaped)."""
    return (post.get("note_tweet") or {}).get("text") or post.get("text") or ""


def _list(payload: dict, key: str) -> list:
    value = payload.get(key) or []
    if not isinstance(value, list):
        raise ParseError(f"{key} is not a list.")
    return value


def _id(value) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(value).strip()


def _count(value) -> int | None:
    try:
        count = int(value)
    except (TypeError, ValueError):
        return None
    return count if count >= 0 else None


def _tweet_time(value, *, where: str) -> datetime:
    if not value:
        raise ParseError(f"{where}: created_at is missing.")
    try:
        return datetime.strptime(str(value), TWEET_TIME_FORMAT).astimezone(UTC)
    except ValueError as exc:
        raise ParseError(f"{where}: created_at {value!r} is not an X timestamp.") from exc


def _millis(value, *, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise ParseError(f"{where}: created_timestamp {value!r} is not milliseconds since 1970.") from exc


def _iso_time(value, *, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ParseError(f"{where}: created_at {value!r} is not an ISO 8601 time.") from exc
    if parsed.tzinfo is None:
        raise ParseError(f"{where}: created_at {value!r} has no time zone.")
    return parsed.astimezone(UTC)


def _profile_v1(user: dict) -> dict:
    keys = ("profile_image_url_https", "profile_image_url", "location", "description", "protected", "url")
    return {key: user[key] for key in keys if user.get(key) not in (None, "")}


def _media_attachment(media: dict) -> InboundAttachment:
    url = media.get("media_url_https") or media.get("media_url") or media.get("url") or ""
    kind = media.get("type") or ""
    if kind in ("video", "animated_gif"):
        variants = [v for v in (media.get("video_info") or {}).get("variants") or [] if v.get("url")]
        if variants:
            best = max(variants, key=lambda v: v.get("bitrate") or 0)
            url, content_type = best["url"], best.get("content_type") or "video/mp4"
            return InboundAttachment(
                filename=url.rsplit("/", 1)[-1].split("?")[0], content_type=content_type, url=url
            )
    content_type = mimetypes.guess_type(url.split("?")[0])[0] or ""
    return InboundAttachment(
        filename=url.rsplit("/", 1)[-1].split("?")[0], content_type=content_type, url=url
    )


# --- sending ---------------------------------------------------------------------------


def send(message, channel) -> SendResult:
    """Post ``message`` through API v2 and return the id X gave it.

    A DM goes to the message's identity; a public post answers the message it replies
    to. The text goes as the agent wrote it (a quoted "&" or "<" included), never
    entity-escaped: X escapes it itself, so escaping it here would show "&amp;". Rate limits (429), server errors and timeouts raise a retryable ``SendError``
    (``retry_after`` from ``Retry-After`` or ``x-rate-limit-reset``); other refusals
    are final.
    """
    base = (channel.api_base_url or DEFAULT_API_BASE).rstrip("/")
    if message.kind == "dm":
        identity = message.identity
        if identity is None or identity.kind != "x":
            raise SendError("A direct message on X needs the customer's X identity.", retryable=False)
        url = f"{base}/2/dm_conversations/with/{identity.platform_id}/messages"
        body: dict = {"text": message.text}
    else:
        url = f"{base}/2/tweets"
        body = {"text": message.text}
        parent = (
            message.reply_to.external_id if message.reply_to_id else ""
        ) or message.in_reply_to_external_id
        if parent:
            body["reply"] = {"in_reply_to_tweet_id": parent}
    try:
        token = channel.secret("access_token")
    except ImproperlyConfigured as exc:  # nothing a retry would fix
        raise SendError(f"Cannot send on {channel.slug}: {exc}", retryable=False) from exc
    try:
        response = httpx.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "Caseline"},
            timeout=TIMEOUT,
        )
    except httpx.TimeoutException as exc:
        raise SendError(f"X did not answer in time ({type(exc).__name__}).", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise SendError(f"Could not reach X: {exc}", retryable=True) from exc
    if response.status_code == 429:
        raise SendError(
            f"X rate limit reached: {_error_detail(response)}",
            retryable=True,
            retry_after=_retry_after(response),
            status=429,
        )
    if response.status_code >= 500:
        raise SendError(
            f"X server error {response.status_code}: {_error_detail(response)}",
            retryable=True,
            retry_after=_retry_after(response),
            status=response.status_code,
        )
    if response.status_code >= 400:
        raise SendError(
            f"X refused the message ({response.status_code}): {_error_detail(response)}",
            retryable=False,
            status=response.status_code,
        )
    try:
        data = response.json().get("data") or {}
    except (ValueError, AttributeError):
        data = {}
    external_id = _id(data.get("dm_event_id") or data.get("id"))
    if not external_id:
        # It was probably posted: retrying could post twice.
        raise SendError(f"X answered {response.status_code} without a post id.", retryable=False)
    return SendResult(external_id=external_id, sent_at=datetime.now(UTC))


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("message") or first.get("detail") or first)[:300]
        for key in ("detail", "title", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("x-rate-limit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - datetime.now(UTC).timestamp())
        except ValueError:
            return None
    return None
