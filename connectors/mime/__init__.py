"""Reading one e-mail: raw RFC 5322 bytes in, a ``ParsedMail`` value out.

Pure functions on the standard ``email`` package (``policy.default``); no Django,
no database. Everything here is written to survive real mail: unknown or wrong
charsets, 8-bit headers, broken base64, multiparts without a closing boundary.
Nothing raises on bad bytes; what cannot be decoded is replaced, and the reasons
are listed in ``ParsedMail.defects``.

The package, by job. This module re-exports the public names and those other modules and
tests use, as ``connectors.mime.<name>``:

- ``mail``: ``parse_mail`` and ``ParsedMail``, the whole mail;
- ``charsets``: bytes in a declared charset to text (``decode_text``);
- ``headers``: header values, Message-IDs, addresses, dates, and the parser's policy;
- ``parts``: the MIME structure walk, bodies and attachments;
- ``html_text``: ``sanitize_html`` and ``html_to_text``;
- ``quotes``: quoted history and signatures (``split_quoted``);
- ``automated``: auto-replies and bounces (``automated_reason``).
"""

from .automated import _bounce_details, automated_reason  # noqa: F401
from .charsets import _clean, _fix_mojibake, decode_text  # noqa: F401
from .headers import (  # noqa: F401
    _POLICY,
    MAX_ID,
    MAX_SUBJECT,
    _addresses,
    _header_date,
    _parse_bytes,
    _plain_header,
    _plain_mailbox,
    _raw_header,
    _received_date,
    decode_header_text,
    header_text,
    message_ids,
    normalize_message_id,
    plain_message_id,
)
from .html_text import SAFE_ATTRIBUTES, SAFE_CLASSES, SAFE_TAGS, html_to_text, sanitize_html  # noqa: F401
from .mail import ParsedMail, _repair_boundary, parse_mail  # noqa: F401
from .parts import _attachment, _Body, _collect, _part_text, _payload_bytes, unflow  # noqa: F401
from .quotes import split_quoted  # noqa: F401
