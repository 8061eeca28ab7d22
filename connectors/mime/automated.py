"""Auto-replies and bounces: why a mail was written by a machine (``automated_reason``:
Auto-Submitted, reports, robot senders, auto-reply subjects, mailings) and, for a
delivery-status report, which of our mails bounced and why (``_bounce_details``).
"""

from __future__ import annotations

import re
from email.message import Message

from .charsets import _clean
from .headers import _parse_bytes, _plain_header, header_text, normalize_message_id
from .parts import _payload_bytes

# --- Auto-replies and bounces ---------------------------------------------------------

_ROBOT_LOCALPARTS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|auto-?reply|autoresponder)([+\-.].*)?$"
)


_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|abwesenheitsnotiz|"
    r"réponse automatique|respuesta automática|risposta automatica|automatisch antwoord|"
    r"autosvar|automaattinen vastaus|odpowiedź automatyczna)",
    re.IGNORECASE,
)


def automated_reason(msg: Message, from_address: str) -> str:
    """Why ``msg`` was sent by a machine rather than a person; '' for a person's mail."""
    auto_submitted = header_text(msg, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    content_type = msg.get_content_type()
    if content_type == "multipart/report":
        report = (msg.get_param("report-type") or "").lower()
        return f"report ({report or 'unknown type'})"
    localpart = from_address.split("@", 1)[0]
    if localpart in {"mailer-daemon", "postmaster"}:
        return f"bounce from {from_address}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"):
        if header_text(msg, name):
            return f"{name} header"
    precedence = header_text(msg, "Precedence").lower()
    if precedence in {"junk", "auto_reply"}:
        return f"Precedence: {precedence}"
    subject = header_text(msg, "Subject")
    if _AUTO_SUBJECT.match(subject) and (precedence or header_text(msg, "X-Auto-Response-Suppress")):
        return f"auto-reply ({subject[:60]})"
    if precedence in {"bulk", "list"}:
        # People write through mailing lists too (Precedence: list or bulk). Without
        # a person behind it: a robot sender, or a newsletter that answers nothing.
        if _ROBOT_LOCALPARTS.match(localpart):
            return f"Precedence: {precedence} from {from_address}"
        is_reply = bool(_plain_header(msg, "In-Reply-To") or _plain_header(msg, "References"))
        # A discussion list names where to post (List-Post, RFC 2369); a newsletter does not.
        list_post = header_text(msg, "List-Post").lower()
        if header_text(msg, "List-Unsubscribe") and not is_reply and list_post in {"", "no"}:
            return f"Precedence: {precedence}, a mailing"
    return ""


def _bounce_details(msg: Message) -> tuple[str, str]:
    """For a delivery-status report: the Message-ID of the returned mail and the reason."""
    returned_id, reason = "", ""
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in part.get_payload() if part.is_multipart() else []:
                action = str(block.get("Action", "")).strip().lower()
                diagnostic = str(block.get("Diagnostic-Code", "") or block.get("Status", "")).strip()
                if action == "failed" and not reason:
                    reason = diagnostic or "delivery failed"
        elif content_type in {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}:
            returned = part.get_payload(0) if part.is_multipart() else _parse_bytes(_payload_bytes(part))
            if not returned_id and returned is not None:
                returned_id = normalize_message_id(header_text(returned, "Message-ID"))
    return returned_id, _clean(re.sub(r"\s+", " ", reason))
