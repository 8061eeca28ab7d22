"""The IMAP poller: unseen mail in an e-mail channel's mailbox goes into the inbox.

Each unseen message is fetched without marking it (``BODY.PEEK[]``), stored as an
``InboundEvent`` through the same inbox service as the webhooks (one transaction per
message, de-duplicated on the Message-ID, so a mail that also came by webhook is
stored once), and only then flagged ``\\Seen``. A crash between the two fetches the
mail again next time, and the inbox drops the duplicate: no mail is lost or doubled.

Secrets (roles in ``channel.secret_env``): ``imap_host`` (``host``, ``host:port``, or a
URL ``imaps://host:993``, ``imap+starttls://host:143``, ``imap://host:143`` for plain
IMAP on a trusted network), ``imap_user`` and ``imap_password``. Optional
``imap_folder`` (default ``INBOX``).
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from . import email as email_connector
from .inbox import inbound_event_store
from .models import Channel

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = "INBOX"
# Messages taken per channel and run; the rest wait for the next run.
MAX_PER_POLL = 200
TIMEOUT_SECONDS = 30
PORTS = {"imaps": 993, "imap": 143, "imap+starttls": 143}


@dataclass
class PollResult:
    """What one run did for one channel."""

    channel: str
    unseen: int = 0
    stored: int = 0
    duplicates: int = 0
    error: str = ""


@dataclass(frozen=True)
class Mailbox:
    scheme: str
    host: str
    port: int
    user: str
    password: str
    folder: str


def mailbox_for(channel: Channel) -> Mailbox:
    """Where the channel's mail is; ``ImproperlyConfigured`` naming a missing secret."""
    raw = channel.secret("imap_host").strip()
    parts = urlsplit(raw if "://" in raw else f"imaps://{raw}")
    scheme = parts.scheme.lower()
    if scheme not in PORTS or not parts.hostname:
        raise ImproperlyConfigured(
            f"Channel {channel.slug!r}: imap_host {raw!r} is not host[:port] or an imap(s):// URL."
        )
    folder = channel.secret("imap_folder") if "imap_folder" in (channel.secret_env or {}) else DEFAULT_FOLDER
    return Mailbox(
        scheme=scheme,
        host=parts.hostname,
        port=parts.port or PORTS[scheme],
        user=channel.secret("imap_user"),
        password=channel.secret("imap_password"),
        folder=folder,
    )


def _connect(mailbox: Mailbox) -> imaplib.IMAP4:
    if mailbox.scheme == "imaps":
        return imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=ssl.create_default_context(), timeout=TIMEOUT_SECONDS
        )
    client = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=TIMEOUT_SECONDS)
    if mailbox.scheme == "imap+starttls":
        client.starttls(ssl_context=ssl.create_default_context())
    return client


def _check(response: tuple, doing: str):
    status, data = response
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise imaplib.IMAP4.error(f"{status} {detail}".strip())
    return data


def _message_bytes(data: list) -> bytes | None:
    """The literal of a FETCH response: ``[(b'1 (UID 7 BODY[] {n}', b'<message>'), b')']``."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _store(channel: Channel, raw: bytes, *, uid: str, folder: str) -> bool:
    """Put one fetched message in the inbox; True when it was new."""
    _event, created = inbound_event_store(
        channel=channel,
        delivery_id=email_connector.mime_delivery_id(raw),
        body=raw,
        headers={"content-type": "message/rfc822", "x-imap-folder": folder, "x-imap-uid": uid},
        content_type="message/rfc822",
    )
    return created


def mailbox_poll(*, channel: Channel, limit: int = MAX_PER_POLL) -> PollResult:
    """Fetch the channel's unseen mail into the inbox, then flag each stored message seen.

    Each message is stored in its own transaction (and queued for processing after it
    commits) before it is flagged. IMAP and network errors end the run for this channel
    and are returned in ``error``; what was stored before stays stored.
    """
    result = PollResult(channel=channel.slug)
    mailbox = mailbox_for(channel)
    client = None
    step = f"connect to {mailbox.host}:{mailbox.port}"
    try:
        client = _connect(mailbox)
        step = "LOGIN"
        _check(client.login(mailbox.user, mailbox.password), step)
        step = f"SELECT {mailbox.folder}"
        _check(client.select(_quoted(mailbox.folder)), step)
        step = "UID SEARCH UNSEEN"
        found = _check(client.uid("SEARCH", "UNSEEN"), step)
        uids = [uid.decode("ascii") for uid in (found[0] or b"").split()]
        result.unseen = len(uids)
        for uid in uids[:limit]:
            step = f"UID FETCH {uid}"
            raw = _message_bytes(_check(client.uid("FETCH", uid, "(BODY.PEEK[])"), step))
            if raw is None:
                logger.warning("IMAP %s: message %s came back without a body", channel.slug, uid)
                continue
            if _store(channel, raw, uid=uid, folder=mailbox.folder):
                result.stored += 1
            else:
                result.duplicates += 1
            step = f"UID STORE {uid}"
            _check(client.uid("STORE", uid, "+FLAGS", "(\\Seen)"), step)
    except (imaplib.IMAP4.error, OSError) as exc:
        # imaplib's errors carry the server's bytes; an OSError reads best as str().
        raw = exc.args[0] if exc.args else b""
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(exc)
        result.error = f"{step} failed: {exc.__class__.__name__}: {detail}"
        logger.warning("IMAP poll of %s: %s", channel.slug, result.error)
    finally:
        if client is not None:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()
    return result


def _quoted(folder: str) -> str:
    return folder if re.fullmatch(r"[A-Za-z0-9._/-]+", folder) else '"' + folder.replace('"', '\\"') + '"'


def imap_channels(slug: str | None = None):
    """Active e-mail channels that name an IMAP mailbox (all, or the one with ``slug``)."""
    channels = Channel.objects.filter(kind=Channel.Kind.EMAIL, is_active=True).order_by("pk")
    if slug:
        channels = channels.filter(slug=slug)
    return [c for c in channels if "imap_host" in (c.secret_env or {})]


def poll_imap_channels(*, slug: str | None = None) -> list[PollResult]:
    """Poll every IMAP e-mail channel once (the periodic task and ``manage.py poll_imap``).

    A channel that fails (server down, bad password, missing secret) is reported in
    its result and does not stop the others.
    """
    results = []
    for channel in imap_channels(slug):
        try:
            results.append(mailbox_poll(channel=channel))
        except ImproperlyConfigured as exc:
            logger.error("IMAP poll of %s: %s", channel.slug, exc)
            results.append(PollResult(channel=channel.slug, error=f"ImproperlyConfigured: {exc}"))
    return results
