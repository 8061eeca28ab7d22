"""Quoted history: ``split_quoted`` trims what a reply quotes (``>`` blocks with their
"On ... wrote:" line in many languages, Outlook and Yahoo header blocks) and the signature
from what the sender wrote this time; a forwarded message is never trimmed.
"""

from __future__ import annotations

import re

# --- Quoted history -------------------------------------------------------------------

_ATTRIBUTION = re.compile(
    r"^\s*(-{2,}\s*)?(On|Am|Le|El|Il|Op|Em|W dniu|Den|Dne|På|Pe|În|Vào|Στις|В|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b.{3,300}"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|pisze|skrev|napsal\(a\)|napsal|"
    r"написал\(а\)|написал|написала|kirjoitti|yazdı|írta|έγραψε|a scris|đã viết)"
    # English and French end on the verb; German, Dutch, Danish name the writer after it.
    r"(\s*:?|\b.{1,120}:)\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(-{2,}\s*)?(On|Am|Le|El|Il|Op|Em|W dniu|Den|Dne|På|Pe|În|Vào|Στις|В|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b",
    re.IGNORECASE,
)
_ATTRIBUTION_END = re.compile(
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|pisze|skrev|napsal|написал\(а\)|"
    r"написал|написала|kirjoitti|yazdı|írta|έγραψε|a scris|写道|寫道|のメッセージ)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Oprindelig meddelelse|"
    r"Opprinnelig melding|Alkuperäinen viesti|Wiadomość oryginalna|Исходное сообщение|"
    r"Mensagem original|Původní zpráva)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^\s*\*?(From|Von|De|Da|Van|Från|Fra|Od|Lähettäjä|От|Kimden|Feladó)\s*:", re.IGNORECASE
)
_HEADER_SENT = re.compile(
    r"^\s*\*?(Sent|Date|Gesendet|Datum|Envoyé|Enviado|Enviada|Fecha|Inviato|Data|Verzonden|Skickat|"
    r"Sendt|Wysłano|Отправлено|Дата|Lähetetty|Gönderildi|Elküldve)\s*:",
    re.IGNORECASE,
)
_HEADER_TO = re.compile(
    r"^\s*\*?(To|An|À|A|Para|Aan|Till|Til|Do|Кому|Vastaanottaja|Kime|Címzett|Subject|Betreff|Objet|"
    r"Asunto|Oggetto|Onderwerp|Ämne|Emne|Temat|Тема|Assunto|Aihe|Konu|Tárgy)\s*:",
    re.IGNORECASE,
)
_HEADER_CC = re.compile(r"^\s*\*?(Cc|Kopie|Cci|Bcc)\s*:", re.IGNORECASE)
_FORWARD_LINE = re.compile(
    r"^\s*(-{2,}\s*(Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado)"
    r"|Begin forwarded message:)",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|wg|tr|rv|enc|doorst)\s*:", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*(_{10,}|-{10,}|={10,})\s*$")


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _is_header_line(line: str) -> bool:
    return bool(
        _HEADER_FROM.match(line)
        or _HEADER_SENT.match(line)
        or _HEADER_TO.match(line)
        or _HEADER_CC.match(line)
    )


def _is_outlook_header(lines: list[str], i: int) -> bool:
    """A block of quoted headers (From:, Sent:/Date:, To:/Subject:) in any order starts at ``i``."""
    if not _is_header_line(lines[i]) or (i > 0 and _is_header_line(lines[i - 1])):
        return False
    block = []
    for line in lines[i : i + 7]:
        if not _is_header_line(line):
            break
        block.append(line)
    return (
        any(_HEADER_FROM.match(x) for x in block)
        and any(_HEADER_SENT.match(x) for x in block)
        and any(_HEADER_TO.match(x) for x in block)
    )


def _hard_break(lines: list[str], forwarded: bool) -> int | None:
    """Index where unprefixed quoted history starts (Outlook, Yahoo, "On ... wrote:" + text)."""
    for i, line in enumerate(lines):
        if _is_quote(line):
            continue
        if _ORIGINAL_MESSAGE.match(line):
            return i
        if _is_outlook_header(lines, i) and not forwarded:
            previous = next((j for j in range(i - 1, -1, -1) if lines[j].strip()), None)
            if previous is not None and _FORWARD_LINE.match(lines[previous]):
                continue
            return previous if previous is not None and _SEPARATOR.match(lines[previous]) else i
        attribution = _attribution_at(lines, i)
        if attribution is not None:
            following = next((x for x in lines[i + attribution :] if x.strip()), "")
            if not _is_quote(following):
                return i
    return None


def _attribution_at(lines: list[str], i: int) -> int | None:
    """Number of lines (1 or 2) of an "On <date>, <name> wrote:" line starting at ``i``."""
    line = lines[i].strip()
    if not line or len(line) > 400:
        return None
    if _ATTRIBUTION.match(line) or (_ATTRIBUTION_END.search(line) and re.search(r"\d|@", line)):
        return 1
    # Clients wrap a long attribution; its first line starts like one ("On ...", a date).
    if i + 1 < len(lines) and lines[i + 1].strip() and _ATTRIBUTION_START.match(line):
        joined = line + " " + lines[i + 1].strip()
        if _ATTRIBUTION.match(joined) or _ATTRIBUTION_END.search(joined):
            return 2
    return None


def _quote_block_start(lines: list[str], start: int) -> int:
    """Extend a ``>`` block at ``start`` upwards over blank lines and its attribution line(s)."""
    j = start
    while j > 0 and not lines[j - 1].strip():
        j -= 1
    for size in (2, 1):
        k = j - size
        if k >= 0 and _attribution_at(lines, k) == size:
            return k
    if j > 0 and lines[j - 1].rstrip().endswith((":", "：")) and len(lines[j - 1]) < 300:
        return j - 1
    return start


def split_quoted(text: str, *, subject: str = "") -> tuple[str, bool]:
    """(what the sender wrote this time, whether anything was trimmed).

    Trims: a trailing ``>`` block with its "On ... wrote:" line, a leading one
    (bottom-posted replies), Outlook / Yahoo "Original Message" and From:/Sent:
    header blocks, and the signature after a ``-- `` line. ``>`` blocks between
    the sender's own lines (inline answers) stay. A forwarded message is the
    sender's content: never trimmed.
    """
    lines = text.split("\n")
    forwarded = bool(_FORWARD_SUBJECT.match(subject or ""))
    cut = _hard_break(lines, forwarded)
    visible = lines[:cut] if cut is not None else list(lines)

    # Trailing quote block (top-posting): everything after the last line of new text.
    content = [i for i, line in enumerate(visible) if line.strip() and not _is_quote(line)]
    quoted = [i for i, line in enumerate(visible) if _is_quote(line)]
    if quoted and (not content or quoted[-1] > content[-1]):
        first_trailing = min(i for i in quoted if not content or i > content[-1])
        visible = visible[: _quote_block_start(visible, first_trailing)]
    # Leading quote block (bottom-posting): attribution and quote, then only new text.
    head, saw_quote = 0, False
    while head < len(visible):
        line = visible[head]
        if not line.strip() or _is_quote(line):
            saw_quote = saw_quote or _is_quote(line)
            head += 1
            continue
        size = _attribution_at(visible, head)
        if size is None:
            break
        head += size
    if saw_quote and head < len(visible) and not any(_is_quote(x) for x in visible[head:]):
        visible = visible[head:]
    # Signature.
    for i, line in enumerate(visible):
        if line.rstrip("\r") in ("-- ", "--") and i > 0:
            visible = visible[:i]
            break
    result = "\n".join(visible).strip()
    if not result:
        return text.strip(), False
    return result, result != text.strip()
