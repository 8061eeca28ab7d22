"""The case timeline, and the links taken from customers' payloads.

Every message of a case in time order with its attachments (``case_page_timeline``, one
statement), and the URLs a page may link to: ``safe_url`` lets only http(s) and our own
media through, for attachments, recordings and the profile links of a customer's
identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import F, Prefetch, QuerySet

from customers.models import Identity

from ..models import Attachment, Case, Message

# --- Links taken from customers' payloads -----------------------------------------------------------


def safe_url(url: str | None) -> str:
    r"""``url`` when a page may link to it, else ``""``.

    Allowed: ``http``/``https`` URLs with a host, and paths under our own ``MEDIA_URL``
    (stored attachments). Everything else a payload might carry -- ``javascript:``,
    ``data:``, ``vbscript:``, protocol-relative ``//host``, backslash tricks, and URLs with
    control characters or whitespace a browser would drop before reading the scheme
    (``java\tscript:``) -- gives ``""``, so it can never reach an ``href`` or ``src``.
    """
    text = (url or "").strip()
    if not text or "\\" in text or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() in ("http", "https"):
        return text if parts.hostname else ""
    media = "/" + settings.MEDIA_URL.lstrip("/")
    if not parts.scheme and not parts.netloc and text.startswith(media) and not text.startswith("//"):
        return text
    return ""


@dataclass(frozen=True)
class AttachmentLink:
    """An attachment as a timeline entry shows it; ``href`` is empty when its URL is not safe to link."""

    pk: int
    filename: str
    href: str
    size: int | None


def _attachment_link(
    *, pk: int, file: str, external_url: str, filename: str, size: int | None
) -> AttachmentLink:
    stored = Attachment._meta.get_field("file").storage.url(file) if file else ""
    return AttachmentLink(pk=pk, filename=filename, href=safe_url(stored or external_url), size=size)


def _with_links(message: Message, attachments: list[AttachmentLink]) -> Message:
    """Set what a timeline entry links to: its attachments and its recording, each checked by
    :func:`safe_url`."""
    message.attachment_links = attachments
    message.recording_href = safe_url(message.recording_url)
    return message


_ATTACHMENT_COLUMNS = ("id", "file", "external_url", "filename", "size")


def case_page_timeline(*, case: Case) -> list[Message]:
    """The case page's timeline: every message in time order with author, identity, channel and
    its attachments (as ``attachment_links``), in one statement.

    Attachments come from a LEFT JOIN (a row per attachment, most messages have none)
    rather than a second query; links pass :func:`safe_url`.
    """
    rows = (
        Message.objects.filter(case=case)
        .select_related("channel", "identity", "author")
        .annotate(**{f"attachment_{name}": F(f"attachments__{name}") for name in _ATTACHMENT_COLUMNS})
        .order_by("sent_at", "id", "attachment_id")
    )
    messages: list[Message] = []
    for row in rows:
        if not messages or messages[-1].pk != row.pk:
            messages.append(_with_links(row, []))
        if row.attachment_id is not None:
            messages[-1].attachment_links.append(
                _attachment_link(
                    **{
                        name if name != "id" else "pk": getattr(row, f"attachment_{name}")
                        for name in _ATTACHMENT_COLUMNS
                    }
                )
            )
    return messages


def case_timeline(*, case: Case) -> QuerySet[Message]:
    """Every message of ``case`` in time order, with author, identity, channel and attachments."""
    return (
        Message.objects.filter(case=case)
        .select_related("channel", "identity", "author")
        .prefetch_related(Prefetch("attachments"))
        .order_by("sent_at", "id")
    )


def _with_profile_links(identity: Identity) -> Identity:
    """Set ``profile_href``: the profile link the platform reported, checked by :func:`safe_url`
    (the profile is whatever the payload said). Avatars are not shown: the pages' CSP keeps
    images to our own origin."""
    profile = identity.profile if isinstance(identity.profile, dict) else {}
    links = (
        safe_url(value)
        for key in ("url", "profile_url", "link")
        if isinstance(value := profile.get(key), str)
    )
    identity.profile_href = next((link for link in links if link), "")
    return identity


def customer_identities(*, customer) -> list[Identity]:
    return [_with_profile_links(i) for i in customer.identities.order_by("kind", "handle", "platform_id")]
