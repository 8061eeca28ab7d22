"""What every platform connector speaks: verified requests in, InboundMessage values out.

A connector module (``connectors/x.py``, ``meta.py``, ``email.py``, ``voice.py``)
provides these functions, looked up through ``connectors.registry``:

``verify(request, channel) -> None``
    Check the platform's signature over the raw body; raise ``SignatureError``.
``challenge(request, channel) -> HttpResponse | None``
    Answer a GET verification handshake (X CRC, Meta hub.challenge), or None.
``delivery_id(request, channel) -> str``
    The platform's id of this delivery (or a digest of the body) for de-duplication.
``parse(event, channel) -> ParseResult``
    Turn a stored ``InboundEvent`` into messages and delivery updates; raise
    ``ParseError`` for a body it cannot read (the event is then marked failed).
``send(message, channel) -> SendResult``
    Deliver an outbound ``cases.Message``; raise ``SendError`` (``retryable`` and
    ``retry_after`` say whether and when to try again).

Connectors never touch cases or customers directly: ``cases.ingest`` does, from the
values below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class SignatureError(Exception):
    """The request is not from the platform (bad or missing signature, stale timestamp)."""


class ParseError(Exception):
    """A stored event could not be read; the message says what was wrong."""


class SendError(Exception):
    """An outbound message was not delivered."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class InboundAttachment:
    filename: str = ""
    content_type: str = ""
    # Either the bytes (e-mail parts) or where the platform hosts the file.
    content: bytes | None = None
    url: str = ""
    content_id: str = ""


@dataclass(frozen=True)
class InboundMessage:
    """One customer message (or call) as a platform reported it, platform-neutral."""

    # The identity kind of the author: x, facebook, instagram, whatsapp, email, phone.
    platform: str
    external_id: str
    author_id: str
    # post | dm | comment | email | call (cases.Message.Kind values)
    kind: str
    sent_at: datetime
    text: str = ""
    is_public: bool = False
    author_handle: str = ""
    author_name: str = ""
    author_follower_count: int | None = None
    author_verified: bool = False
    author_profile: dict = field(default_factory=dict)
    # The platform id of the message this one answers (tweet, comment, wamid, Message-ID).
    reply_to_external_id: str = ""
    # Further ids that identify the conversation, most specific first (e-mail
    # References, a post id a comment hangs under, a WhatsApp context id).
    thread_keys: tuple[str, ...] = ()
    subject: str = ""
    html: str = ""
    quoted_text: str = ""
    attachments: tuple[InboundAttachment, ...] = ()
    # Written by the company's own account (an echo of our outbound message).
    is_echo: bool = False
    # For echoes: the id of the customer conversation it went to (recipient id).
    recipient_id: str = ""
    call_duration: int | None = None
    recording_url: str = ""


@dataclass(frozen=True)
class DeliveryUpdate:
    """A platform's news about one of our outbound messages (WhatsApp statuses...)."""

    external_id: str
    # cases.Message.Delivery values: sent | delivered | read | failed
    state: str
    at: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class MessageUpdate:
    """News about a message we already stored, sent after it (a call's recording).

    Carried in ``ParseResult.updates`` beside delivery updates; ingest applies it to the
    stored message with this platform id on the channel, idempotently. Empty values
    change nothing.
    """

    external_id: str
    recording_url: str = ""
    # Seconds; set when the platform reports a length with the news.
    call_duration: int | None = None
    at: datetime | None = None


@dataclass
class ParseResult:
    messages: list[InboundMessage] = field(default_factory=list)
    updates: list[DeliveryUpdate] = field(default_factory=list)
    # Set when the event carries nothing to ingest (favourites, typing, follows...).
    ignored_reason: str = ""


@dataclass(frozen=True)
class SendResult:
    external_id: str
    sent_at: datetime | None = None
