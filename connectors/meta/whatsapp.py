"""WhatsApp Cloud API entries: messages with their media and contacts, and statuses."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from customers.identifiers import normalize_platform_id

from ..base import (
    DeliveryUpdate,
    InboundAttachment,
    InboundMessage,
    ParseError,
)
from .reading import (
    WHATSAPP_MEDIA_TYPES,
    WHATSAPP_STATES,
    Reader,
    field_id,
    field_list,
    field_obj,
    field_opt_id,
    field_text,
    field_when,
)


def read_whatsapp_entry(reader: Reader, entry: dict, path: str) -> None:
    changes = field_list(entry.get("changes"), f"{path}.changes")
    if not changes:
        reader.skip("Entry without changes.")
    for index, raw in enumerate(changes):
        change_path = f"{path}.changes[{index}]"
        change = field_obj(raw, change_path)
        field = field_text(change.get("field"), f"{change_path}.field")
        if field != "messages":
            reader.skip(f"Change field {field!r} is not read.")
            continue
        value_path = f"{change_path}.value"
        value = field_obj(change.get("value"), value_path)
        metadata = field_obj(value.get("metadata"), f"{value_path}.metadata")
        number_id = field_id(metadata.get("phone_number_id"), f"{value_path}.metadata.phone_number_id")
        if not reader.is_ours(number_id):
            reader.skip(f"Phone number id {number_id} is not this channel's {reader.channel.account_id}.")
            continue
        contacts = _whatsapp_contacts(value, f"{value_path}.contacts")
        messages = field_list(value.get("messages"), f"{value_path}.messages")
        statuses = field_list(value.get("statuses"), f"{value_path}.statuses")
        for number, raw_message in enumerate(messages):
            message_path = f"{value_path}.messages[{number}]"
            _read_whatsapp_message(reader, field_obj(raw_message, message_path), message_path, contacts)
        for number, raw_status in enumerate(statuses):
            status_path = f"{value_path}.statuses[{number}]"
            _read_whatsapp_status(reader, field_obj(raw_status, status_path), status_path)
        if not messages and not statuses:
            errors = _error_text(value.get("errors"), f"{value_path}.errors")
            reader.skip(
                f"WhatsApp reported an error: {errors}" if errors else "Change without messages or statuses."
            )


def _whatsapp_contacts(value: dict, path: str) -> dict[str, dict]:
    contacts = {}
    for index, raw in enumerate(field_list(value.get("contacts"), path)):
        contact = field_obj(raw, f"{path}[{index}]")
        wa_id = field_opt_id(contact.get("wa_id"), f"{path}[{index}].wa_id")
        if wa_id:
            contacts[wa_id] = contact
    return contacts


def _read_whatsapp_message(reader: Reader, message: dict, path: str, contacts: dict[str, dict]) -> None:
    wamid = field_id(message.get("id"), f"{path}.id")
    kind = field_text(message.get("type"), f"{path}.type")
    if kind in ("reaction", "revoke", "edit", "system", "request_welcome", "ephemeral"):
        reader.skip(f"WhatsApp {kind} message is not ingested.")
        return
    if message.get("group_id") is not None:
        reader.skip("WhatsApp group messages are not ingested.")
        return
    wa_id = field_opt_id(message.get("from"), f"{path}.from")
    if not wa_id:
        user_id = field_opt_id(message.get("from_user_id"), f"{path}.from_user_id")
        if user_id:
            raise ParseError(f"{path}.from is missing: only a business-scoped user id ({user_id}) was given.")
        raise ParseError(f"{path}.from is missing.")
    try:
        author_id = normalize_platform_id("whatsapp", "+" + wa_id if wa_id.isdigit() else wa_id)
    except ValidationError as exc:
        raise ParseError(f"{path}.from {wa_id!r} is not a WhatsApp phone number.") from exc
    sent_at = field_when(message.get("timestamp"), f"{path}.timestamp")
    text, attachments = _whatsapp_content(message, kind, path)
    context = message.get("context")
    reply_to = ""
    if context is not None:
        reply_to = field_opt_id(field_obj(context, f"{path}.context").get("id"), f"{path}.context.id")
    contact = contacts.get(wa_id, {})
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    reader.add_message(
        InboundMessage(
            platform="whatsapp",
            external_id=wamid,
            author_id=author_id,
            author_name=field_text(profile.get("name"), f"{path}.contacts.profile.name"),
            author_handle=field_text(profile.get("username"), f"{path}.contacts.profile.username"),
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
    part = field_obj(body, f"{path}.{kind}") if body is not None else {}
    if kind == "text":
        return field_text(part.get("body"), f"{path}.text.body"), []
    if kind in WHATSAPP_MEDIA_TYPES:
        media_id = field_opt_id(part.get("id"), f"{path}.{kind}.id")
        url = f"whatsapp-media:{media_id}" if media_id else field_text(part.get("url"), f"{path}.{kind}.url")
        if not url:
            raise ParseError(f"{path}.{kind}.id is missing.")
        attachment = InboundAttachment(
            filename=field_text(part.get("filename"), f"{path}.{kind}.filename"),
            content_type=field_text(part.get("mime_type"), f"{path}.{kind}.mime_type"),
            url=url,
        )
        return field_text(part.get("caption"), f"{path}.{kind}.caption"), [attachment]
    if kind == "location":
        place = ", ".join(
            field_text(part.get(key), f"{path}.location.{key}")
            for key in ("name", "address")
            if part.get(key)
        )
        point = f"{part.get('latitude')}, {part.get('longitude')}"
        return f"Location: {place} ({point})" if place else f"Location: {point}", []
    if kind == "interactive":
        choice_kind = field_text(part.get("type"), f"{path}.interactive.type")
        choice = part.get(choice_kind)
        choice = field_obj(choice, f"{path}.interactive.{choice_kind}") if choice is not None else {}
        text = field_text(
            choice.get("title") or choice.get("body"), f"{path}.interactive.{choice_kind}.title"
        )
        return text or "[Interactive reply]", []
    if kind == "button":
        return field_text(part.get("text") or part.get("payload"), f"{path}.button.text"), []
    # Unsupported and any type Caseline does not know: keep the customer's words if any.
    fallback = message.get("text")
    text = (
        field_text(field_obj(fallback, f"{path}.text").get("body"), f"{path}.text.body")
        if fallback is not None
        else ""
    )
    problem = _error_text(message.get("errors"), f"{path}.errors")
    return text or f"[{kind or 'Unknown'} message{': ' + problem if problem else ''}]", []


def _shared_contacts(cards: Any, path: str) -> str:
    lines = []
    for index, raw in enumerate(field_list(cards, path, required=True)):
        card = field_obj(raw, f"{path}[{index}]")
        name = card.get("name") if isinstance(card.get("name"), dict) else {}
        phones = card.get("phones") if isinstance(card.get("phones"), list) else []
        numbers = [str(p["phone"]) for p in phones if isinstance(p, dict) and p.get("phone")]
        lines.append(" ".join(str(x) for x in [name.get("formatted_name", ""), *numbers] if x))
    return "Shared contacts: " + "; ".join(line for line in lines if line)


def _read_whatsapp_status(reader: Reader, status: dict, path: str) -> None:
    wamid = field_id(status.get("id"), f"{path}.id")
    name = field_text(status.get("status"), f"{path}.status")
    state = WHATSAPP_STATES.get(name)
    if state is None:
        reader.skip(f"WhatsApp status {name!r} is not tracked.")
        return
    reader.add_update(
        DeliveryUpdate(
            external_id=wamid,
            state=state,
            at=field_when(status.get("timestamp"), f"{path}.timestamp"),
            error=_error_text(status.get("errors"), f"{path}.errors"),
        )
    )


def _error_text(errors: Any, path: str) -> str:
    """WhatsApp's ``errors[]`` as one line: code, title and details."""
    lines = []
    for index, raw in enumerate(field_list(errors, path)):
        error = field_obj(raw, f"{path}[{index}]")
        data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        where = f"{path}[{index}]"
        parts = (
            field_text(error.get("title"), f"{where}.title"),
            field_text(error.get("message"), f"{where}.message"),
            field_text(data.get("details"), f"{where}.error_data.details"),
            field_text(error.get("details"), f"{where}.details"),
        )
        words = " — ".join(dict.fromkeys(part.strip() for part in parts if part and part.strip()))
        code = error.get("code")
        lines.append(f"{words} (code {code})" if code is not None else words)
    return "; ".join(line for line in lines if line)
