"""Messenger and Instagram entries: messages, postbacks, deliveries and reads, feed and
media comments."""

from __future__ import annotations

from typing import Any

from ..base import (
    DeliveryUpdate,
    InboundAttachment,
    InboundMessage,
)
from .reading import (
    ATTACHMENT_FAMILIES,
    Reader,
    field_id,
    field_list,
    field_obj,
    field_opt_id,
    field_text,
    field_when,
)


def read_page_entry(reader: Reader, entry: dict, path: str, *, platform: str) -> None:
    account = field_id(entry.get("id"), f"{path}.id")
    if not reader.is_ours(account):
        reader.skip(f"Entry for account {account}, not this channel's {reader.channel.account_id}.")
        return
    events = field_list(entry.get("messaging"), f"{path}.messaging")
    changes = field_list(entry.get("changes"), f"{path}.changes")
    if entry.get("standby") is not None:
        reader.skip("Standby events belong to the app in control of the thread.")
    if not events and not changes and entry.get("standby") is None:
        reader.skip("Entry without messaging events or changes.")
    for index, raw in enumerate(events):
        _read_messaging(
            reader, field_obj(raw, f"{path}.messaging[{index}]"), f"{path}.messaging[{index}]", platform
        )
    for index, raw in enumerate(changes):
        change_path = f"{path}.changes[{index}]"
        change = field_obj(raw, change_path)
        field = field_text(change.get("field"), f"{change_path}.field")
        value = field_obj(change.get("value"), f"{change_path}.value")
        if platform == "facebook" and field == "feed":
            _read_feed_change(reader, value, f"{change_path}.value")
        elif platform == "instagram" and field == "comments":
            _read_instagram_comment(reader, value, f"{change_path}.value", entry.get("time"), f"{path}.time")
        else:
            reader.skip(f"Change field {field!r} is not read.")


def _read_messaging(reader: Reader, event: dict, path: str, platform: str) -> None:
    if "message" in event:
        _read_dm(reader, event, path, platform)
    elif "postback" in event:
        _read_postback(reader, event, path, platform)
    elif "delivery" in event:
        delivery = field_obj(event["delivery"], f"{path}.delivery")
        mids = field_list(delivery.get("mids"), f"{path}.delivery.mids")
        if not mids:
            reader.skip("Delivery receipt with a watermark only.")
            return
        at = field_when(delivery.get("watermark") or event.get("timestamp"), f"{path}.delivery.watermark")
        for index, mid in enumerate(mids):
            reader.add_update(
                DeliveryUpdate(field_id(mid, f"{path}.delivery.mids[{index}]"), "delivered", at=at)
            )
    elif "read" in event:
        read = field_obj(event["read"], f"{path}.read")
        mid = field_opt_id(read.get("mid"), f"{path}.read.mid")
        if not mid:  # Messenger reports a watermark, not which messages were read.
            reader.skip("Read receipt with a watermark only.")
            return
        at = field_when(event.get("timestamp"), f"{path}.timestamp")
        reader.add_update(DeliveryUpdate(mid, "read", at=at))
    else:
        known = ("reaction", "optin", "referral", "account_linking", "message_edit", "policy_enforcement")
        kind = next((name for name in known if name in event), "unknown")
        reader.skip(f"Messaging event {kind!r} is not ingested.")


def _read_dm(reader: Reader, event: dict, path: str, platform: str) -> None:
    message = field_obj(event["message"], f"{path}.message")
    mid = field_id(message.get("mid"), f"{path}.message.mid")
    if message.get("is_deleted"):
        reader.skip("Unsent (deleted) message.")
        return
    sender = field_id(field_obj(event.get("sender"), f"{path}.sender").get("id"), f"{path}.sender.id")
    recipient = field_opt_id(
        field_obj(event.get("recipient"), f"{path}.recipient").get("id"), f"{path}.recipient.id"
    )
    sent_at = field_when(event.get("timestamp"), f"{path}.timestamp")
    text = field_text(message.get("text"), f"{path}.message.text")
    attachments, notes = _messenger_attachments(message, f"{path}.message.attachments")
    text = "\n".join(part for part in (text, *notes) if part)
    reply_to = ""
    if message.get("reply_to") is not None:
        reply_to = field_opt_id(
            field_obj(message["reply_to"], f"{path}.message.reply_to").get("mid"),
            f"{path}.message.reply_to.mid",
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
    for index, raw in enumerate(field_list(message.get("attachments"), path)):
        item = field_obj(raw, f"{path}[{index}]")
        kind = field_text(item.get("type"), f"{path}[{index}].type") or "file"
        payload = item.get("payload")
        payload = field_obj(payload, f"{path}[{index}].payload") if payload is not None else {}
        url = field_text(payload.get("url"), f"{path}[{index}].payload.url")
        if kind == "location" and isinstance(payload.get("coordinates"), dict):
            point = payload["coordinates"]
            notes.append(f"Location: {point.get('lat')}, {point.get('long')}")
        elif url.startswith(("https://", "http://")):
            attachments.append(
                InboundAttachment(
                    filename=field_text(payload.get("title"), f"{path}[{index}].payload.title"),
                    content_type=ATTACHMENT_FAMILIES.get(kind, ""),
                    url=url,
                )
            )
        else:
            notes.append(f"[{kind.replace('_', ' ')}]")
    return attachments, notes


def _read_postback(reader: Reader, event: dict, path: str, platform: str) -> None:
    """A tapped button: what the customer chose, as a message from them."""
    postback = field_obj(event["postback"], f"{path}.postback")
    sender = field_id(field_obj(event.get("sender"), f"{path}.sender").get("id"), f"{path}.sender.id")
    timestamp = event.get("timestamp")
    sent_at = field_when(timestamp, f"{path}.timestamp")
    title = field_text(postback.get("title"), f"{path}.postback.title")
    payload = field_text(postback.get("payload"), f"{path}.postback.payload")
    # Older postbacks carry no mid; sender and time identify a re-delivery just as well.
    mid = field_opt_id(postback.get("mid"), f"{path}.postback.mid") or f"postback:{sender}:{timestamp}"
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


def _read_feed_change(reader: Reader, value: dict, path: str) -> None:
    item = field_text(value.get("item"), f"{path}.item")
    verb = field_text(value.get("verb"), f"{path}.verb")
    if item != "comment":
        reader.skip(f"Feed {item or 'change'} {verb} is not ingested.".replace("  ", " "))
        return
    if verb != "add":
        reader.skip(f"Feed comment {verb or 'change'} is not ingested.")
        return
    comment_id = field_id(value.get("comment_id"), f"{path}.comment_id")
    post_id = field_id(value.get("post_id"), f"{path}.post_id")
    parent_id = field_opt_id(value.get("parent_id"), f"{path}.parent_id")
    author = field_obj(value.get("from"), f"{path}.from")
    author_id = field_id(author.get("id"), f"{path}.from.id")
    attachments = []
    for key in ("photo", "video"):
        url = field_text(value.get(key), f"{path}.{key}")
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
            author_name=field_text(author.get("name"), f"{path}.from.name"),
            kind="comment",
            sent_at=field_when(value.get("created_time"), f"{path}.created_time"),
            text=field_text(value.get("message"), f"{path}.message"),
            is_public=True,
            # A top-level comment's parent is the post itself.
            reply_to_external_id=parent_id if parent_id and parent_id != post_id else "",
            thread_keys=(post_id,),
            attachments=tuple(attachments),
            is_echo=author_id == reader.channel.account_id,
        )
    )


def _read_instagram_comment(reader: Reader, value: dict, path: str, entry_time: Any, time_path: str) -> None:
    comment_id = field_id(value.get("id"), f"{path}.id")
    author = field_obj(value.get("from"), f"{path}.from")
    author_id = field_id(author.get("id"), f"{path}.from.id")
    media_id = field_id(field_obj(value.get("media"), f"{path}.media").get("id"), f"{path}.media.id")
    # Comment webhooks carry no time of their own; the entry's is when Meta saw it.
    stamp, stamp_path = (
        (value["timestamp"], f"{path}.timestamp") if "timestamp" in value else (entry_time, time_path)
    )
    reader.add_message(
        InboundMessage(
            platform="instagram",
            external_id=comment_id,
            author_id=author_id,
            author_handle=field_text(author.get("username"), f"{path}.from.username"),
            kind="comment",
            sent_at=field_when(stamp, stamp_path),
            text=field_text(value.get("text"), f"{path}.text"),
            is_public=True,
            reply_to_external_id=field_opt_id(value.get("parent_id"), f"{path}.parent_id"),
            thread_keys=(media_id,),
            is_echo=author_id == reader.channel.account_id,
        )
    )
