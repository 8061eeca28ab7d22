"""Reading e-mail (connectors.mime): charsets, structure, HTML, quoted history, robots.

The fixtures in tests/fixtures/email/ are written from RFC 5322, 2045-2047 and 2231;
the corpus tests read real mail from ../shared/corpus/email/ and skip without it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors import mime
from tests.corpus import CORPUS as SHARED_CORPUS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
CORPUS = SHARED_CORPUS / "email"
NOW = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)


def read(name: str) -> mime.ParsedMail:
    return mime.parse_mail((FIXTURES / name).read_bytes(), now=NOW)


# --- charsets and encoded words ---------------------------------------------------------


def test_iso_8859_1_quoted_printable_body_and_encoded_word_subject():
    mail = read("latin1_qp.eml")

    assert mail.subject == "Facture de février erronée"
    assert mail.from_name == "Renée Lefèvre"
    assert mail.from_address == "renee.lefevre@example.fr"  # lower-cased
    assert "Ma facture de février est fausse" in mail.text
    assert mail.text.endswith("Renée")
    assert mail.message_id == "latin1-qp-0001@mail.example.fr"
    assert mail.sent_at == datetime(2025, 3, 4, 8, 15, tzinfo=UTC)


def test_windows_1252_base64_body_keeps_typographic_characters():
    mail = read("windows1252_base64.eml")

    assert mail.from_name == "Zoë Ångström"
    assert "“X200”" in mail.text
    assert "€89" in mail.text
    assert "it’s dead" in mail.text


@pytest.mark.parametrize("name", ["shift_jis.eml", "iso_2022_jp.eml"])
def test_japanese_charsets(name):
    mail = read(name)

    assert mail.subject == "配送の遅れについて"
    assert mail.from_name == "山田 太郎"
    assert "注文番号 5521 の商品がまだ届いていません。" in mail.text


def test_utf8_encoded_words_split_inside_a_character_and_q_encoded_display_name():
    mail = read("utf8_encoded_words.eml")

    assert mail.subject == "Réclamation : 日本語の件 ✓"
    assert mail.from_name == "François Müller"
    assert mail.text == "Grüße aus Zürich — the app crashes on start."


def test_mislabelled_and_unknown_charsets_are_read_without_replacement_characters():
    mail = read("mislabelled_charset.eml")

    # us-ascii that is really UTF-8; UTF-8 with two stray Windows-1252 quote bytes; x-foobar-42.
    assert "O pedido não foi entregue e já paguei." in mail.text
    assert "Café “quoted” text" in mail.text
    assert "Obrigado, André" in mail.text
    # An encoded word in an unknown charset, and UTF-8 labelled ISO-8859-1.
    assert mail.from_name == "André"
    assert mail.subject == "Pedido não entregue"
    assert "\ufffd" not in mail.text + mail.subject + mail.from_name


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("naïve".encode(), "us-ascii", "naïve"),
        ("naïve".encode("latin-1"), "us-ascii", "naïve"),
        ("naïve".encode("latin-1"), None, "naïve"),
        ("naïve".encode("latin-1"), "utf-8", "naïve"),
        ("€5".encode("cp1252"), "iso-8859-1", "€5"),
        ("日本".encode("gb18030"), "gb2312", "日本"),
        ("髙橋".encode("cp932"), "shift_jis", "髙橋"),
        (b"plain", "rot13", "plain"),  # a codec that is not a text encoding
        (b"plain", '"UTF-8"', "plain"),
    ],
)
def test_decode_text_falls_back_instead_of_raising(data, charset, expected):
    assert mime.decode_text(data, charset) == expected


def test_undecodable_bytes_are_replaced_never_raised():
    text = mime.decode_text(b"\x81\x8d\x8f ok", "utf-8")

    assert text.endswith(" ok")
    assert "\x00" not in text


def test_nul_bytes_and_8bit_headers_never_reach_the_database():
    raw = (
        b"From: \xe9milie <emilie@example.fr>\r\nSubject: caf\xe9 \x00menu\r\n"
        b"Date: Tue, 04 Mar 2025 09:15:00 +0100\r\n\r\nbody with a \x00 NUL\r\n"
    )
    mail = mime.parse_mail(raw, now=NOW)

    assert mail.from_name == "émilie"
    assert mail.subject == "café menu"
    assert "\x00" not in mail.text
    assert mail.text == "body with a  NUL"


# --- structure ----------------------------------------------------------------------


def test_html_only_mail_is_sanitized_and_gives_plain_text():
    mail = read("html_only_script.eml")

    for dangerous in ("<script", "document.location", "onload", "onclick", "onerror", "style", "javascript:"):
        assert dangerous not in mail.html
    assert "tracker.example" not in mail.html  # remote images (tracking pixels) dropped
    assert "Ignore me" not in mail.html + mail.text  # <title> and <style> content gone
    assert "<b>twice</b>" in mail.html
    assert 'href="https://example.in/orders/9912"' in mail.html
    assert "noopener" in mail.html
    assert mail.text.startswith(
        "Hello team,\nI was charged twice for order #9912.\nPlease refund one of them."
    )
    assert "- Order 9912" in mail.text
    assert "color: red" not in mail.text


def test_multipart_alternative_prefers_text_plain_and_keeps_sanitized_html():
    mail = read("related_inline_cid.eml")

    assert mail.text == "The app shows this error:\n\n[image: error.png]\n\nSam"
    assert '<img src="cid:err-shot@example.com" alt="error.png">' in mail.html


def test_inline_image_is_an_attachment_with_its_content_id():
    mail = read("related_inline_cid.eml")

    [image] = mail.attachments
    assert image.filename == "error.png"
    assert image.content_type == "image/png"
    assert image.content_id == "err-shot@example.com"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_attachments_with_rfc_2231_filenames_and_no_paths():
    mail = read("mixed_attachment_rfc2231.eml")

    assert mail.from_name == "Müller, Jörg"
    assert mail.text == "Anbei die Rechnung und die Kontoauszüge."
    pdf, csv, other = mail.attachments
    assert pdf.filename == "Rechnung März 2025 – Kunde 4711.pdf"  # continuations, UTF-8
    assert pdf.content_type == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.4")
    assert csv.filename == "Kontoauszüge.csv"  # ISO-8859-1 with a language tag
    assert csv.content == b"date;amount\n2025-03-01;12,50\n"
    assert other.filename == "passwd"  # "../../etc/passwd" loses its path
    assert other.content == b"root:x:0:0:"


def test_multipart_without_its_closing_boundary_still_gives_text_and_attachment():
    mail = read("broken_no_end_boundary.eml")

    assert mail.text == "My order never arrived. Order 1234."
    [receipt] = mail.attachments
    assert receipt.filename == "receipt.pdf"
    assert receipt.content.startswith(b"%PDF-1.4")
    assert "CloseBoundaryNotFoundDefect" in mail.defects


def test_multipart_declaring_a_boundary_it_never_uses_is_repaired():
    html = base64.b64encode(b"<p>Read <b>me</b></p>").decode()
    raw = (
        "From: a@example.com\r\nDate: Tue, 04 Mar 2025 09:15:00 +0100\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="--declared"\r\n\r\n'
        f"----actual\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n{html}\r\n"
        "----actual--\r\n"
    ).encode()
    mail = mime.parse_mail(raw, now=NOW)

    assert mail.text == "Read me"
    assert "<b>me</b>" in mail.html
    assert "multipart boundary repaired" in mail.defects


def test_multipart_without_boundary_parameter_is_read_as_text():
    raw = b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nJust text after all.\r\n"

    assert mime.parse_mail(raw, now=NOW).text == "Just text after all."


def test_missing_date_and_message_id():
    mail = read("no_date_no_message_id.eml")

    assert mail.sent_at == NOW
    assert mail.message_id == ""
    assert mail.from_address == "script@example.org"
    assert mail.text == "Name: Lee\nMessage: please call me back"


def test_garbled_date_falls_back_to_the_received_header_then_now():
    received = (
        b"Received: from mx.example.net by mx.caseline.example; Tue, 04 Mar 2025 10:00:00 +0000\r\n"
        b"From: a@example.com\r\nDate: the day before yesterday\r\n\r\nhi\r\n"
    )
    future = b"From: a@example.com\r\nDate: Fri, 01 Jan 2100 00:00:00 +0000\r\n\r\nhi\r\n"

    assert mime.parse_mail(received, now=NOW).sent_at == datetime(2025, 3, 4, 10, tzinfo=UTC)
    assert mime.parse_mail(future, now=NOW).sent_at == NOW


def test_thread_keys_are_in_reply_to_then_references_newest_first():
    mail = read("gmail_reply.eml")

    assert mail.in_reply_to == "reply-2@caseline.example"
    assert mail.references == ("root-0@gmail.example", "reply-1@caseline.example", "reply-2@caseline.example")
    assert mail.thread_keys == (
        "reply-2@caseline.example",
        "reply-1@caseline.example",
        "root-0@gmail.example",
    )


def test_message_ids_are_normalised():
    assert mime.normalize_message_id(" <Abc.1@Example.COM> (comment)") == "Abc.1@Example.COM"
    assert mime.message_ids("<a@x>\r\n <b@x> <a@x>") == ["a@x", "b@x"]
    long_id = "<" + "x" * 300 + "@example.com>"
    assert mime.normalize_message_id(long_id).startswith("sha256:")
    assert mime.normalize_message_id(long_id) == mime.normalize_message_id(long_id.upper().lower())


# --- quoted history -----------------------------------------------------------------


def test_gmail_reply_trims_the_wrapped_attribution_and_quote_but_keeps_them():
    mail = read("gmail_reply.eml")

    assert mail.text == "Thanks, that fixed it!"
    assert "> Please try a factory reset." in mail.quoted_text
    assert mail.quoted_text.startswith("Thanks, that fixed it!")


def test_outlook_reply_trims_the_header_block_after_the_separator():
    mail = read("outlook_reply.eml")

    assert mail.text == "Hi,\n\nIt still does not work after the reset.\n\nKim"
    assert "Please reset the router" in mail.quoted_text
    assert "________________________________" not in mail.text


def test_outlook_original_message_in_german():
    mail = read("outlook_original_message_de.eml")

    assert mail.text == "Danke, das Paket ist angekommen."
    assert "Ihr Paket ist unterwegs." in mail.quoted_text


def test_bottom_posted_flowed_reply_with_localized_attribution_and_signature():
    mail = read("thunderbird_flowed_de.eml")

    # format=flowed soft breaks joined; German "Am ... schrieb ...:" quote and "-- " signature trimmed.
    assert mail.text == (
        "Ich habe das Modell X200, gekauft im Januar. Die Seriennummer steht auf der Unterseite "
        "und lautet 12-345."
    )
    assert "Petra Schmidt\nWien" in mail.quoted_text
    assert "> Welches Modell haben Sie?" in mail.quoted_text


def test_inline_answers_keep_the_questions_they_answer():
    mail = read("inline_answers.eml")

    assert mail.text == "> What is your order number?\n4471\n\n> Which colour did you choose?\nBlue."
    assert mail.quoted_text == ""


def test_a_forwarded_message_is_the_senders_content():
    mail = read("forwarded.eml")

    assert "You ordered 2 units of X200." in mail.text
    assert mail.quoted_text == ""


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        ("Yes.\n\nLe lun. 3 mars 2025 à 10:00, Support <s@x.fr> a écrit :\n> Question ?", "Yes."),
        ("Sí.\n\nEl lun, 3 mar 2025 a las 10:00, Support (<s@x.es>) escribió:\n\n> ¿Pregunta?", "Sí."),
        ("Ja.\n\nOp ma 3 mrt. 2025 om 10:00 schreef Support <s@x.nl>:\n> Vraag?", "Ja."),
        ("Da.\n\n3 марта 2025 г., в 10:00, Support <s@x.ru> написал(а):\n> Вопрос?", "Da."),
        ("OK\n\n-----Original Message-----\nFrom: s@x.com\nSent: Monday\nTo: me\nSubject: Q\n\nQ?", "OK"),
        ("OK\n\nFrom: s@x.com\nSent: Monday\nTo: me\nSubject: Q\n\nQ?", "OK"),
        ("OK\n----- Original Message -----\nFrom: s@x.com\n\nQ?", "OK"),
        ("> only a quote\n> nothing else", "> only a quote\n> nothing else"),
    ],
)
def test_split_quoted_variants(text, visible):
    assert mime.split_quoted(text)[0] == visible


def test_outlook_style_headers_in_a_forward_are_kept():
    text = "FYI\n\nFrom: shop@x.com\nSent: Monday\nTo: me\nSubject: Order\n\nYou ordered 2."

    assert mime.split_quoted(text, subject="FW: Order") == (text, False)
    assert mime.split_quoted(text, subject="RE: Order") == ("FYI", True)


# --- robots -------------------------------------------------------------------------


def test_auto_reply_is_marked_automated():
    assert read("auto_reply.eml").automated == "Auto-Submitted: auto-replied"


def test_bounce_names_the_returned_message_and_the_reason():
    mail = read("bounce_dsn.eml")

    assert mail.automated
    assert mail.bounced_message_id == "our-reply-0016@caseline.example"
    assert "550 5.1.1" in mail.bounce_reason
    assert "User unknown" in mail.bounce_reason


@pytest.mark.parametrize(
    ("headers", "automated"),
    [
        ("From: MAILER-DAEMON@mx.example.net\r\n", True),
        ("From: a@example.com\r\nPrecedence: junk\r\n", True),
        ("From: a@example.com\r\nPrecedence: bulk\r\nSubject: Out of Office: back Monday\r\n", True),
        ("From: noreply@shop.example\r\nPrecedence: list\r\n", True),
        (
            "From: news@shop.example\r\nPrecedence: bulk\r\nList-Unsubscribe: <mailto:u@shop.example>\r\n",
            True,
        ),
        ("From: a@example.com\r\nX-Autoreply: yes\r\n", True),
        ("From: a@example.com\r\nAuto-Submitted: no\r\n", False),
        # A person writing through a discussion list.
        (
            "From: a@example.com\r\nPrecedence: list\r\nList-Unsubscribe: <mailto:u@l.example>\r\n"
            "List-Post: <mailto:l@l.example>\r\n",
            False,
        ),
        ("From: a@example.com\r\nSubject: Out of office?\r\n", False),
    ],
)
def test_automated_mail(headers, automated):
    raw = (headers + "Date: Tue, 04 Mar 2025 09:15:00 +0100\r\n\r\nbody\r\n").encode()

    assert bool(mime.parse_mail(raw, now=NOW).automated) is automated


# --- real mail from the shared corpus -----------------------------------------------


def _corpus(folder: str, pattern: str) -> list[Path]:
    if not (CORPUS / folder).is_dir():
        pytest.skip(f"corpus folder {CORPUS / folder} is absent")
    return sorted((CORPUS / folder).glob(pattern))


def test_corpus_quoted_replies_of_common_clients():
    """Talon's per-client replies all say "Hello" above the quoted "Hi"."""
    files = _corpus("talon", "standard_replies__*.eml")
    assert files
    for path in files:
        mail = mime.parse_mail(path.read_bytes(), now=NOW)
        assert mail.text.startswith("Hello"), path.name
        assert "Hi" not in mail.text.replace("Hello", ""), path.name


def test_corpus_expected_reply_texts():
    for path in _corpus("talon", "standard_replies__*_reply_text.txt"):
        eml = path.with_name(path.name.replace("_reply_text.txt", ".eml"))
        expected = path.read_text().strip()
        visible = mime.parse_mail(eml.read_bytes(), now=NOW).text
        # Talon keeps signatures; Caseline trims after "-- ".
        assert visible == expected.split("\n-- \n")[0].strip(), path.name


def test_corpus_html_replies_of_common_clients():
    files = _corpus("talon", "html_replies__*.html")
    assert files
    for path in files:
        visible, trimmed = mime.split_quoted(mime.html_to_text(path.read_text(errors="replace")))
        assert trimmed, path.name
        assert visible.startswith("Hi. I am fine."), path.name
        assert visible.endswith("Alex"), path.name


# --- sender addresses ---------------------------------------------------------------------

PLAIN_SENDERS = [
    "ada@example.com",
    "<ada@example.com>",
    "Ada Lovelace <Ada.Lovelace@Example.COM>",
    "Ada   Lovelace\t<ada@example.com>  ",
    '"Lovelace, Ada" <ada+care@mail.example.co.uk>',
    '"" <ada@example.com>',
    '"Ada (home)" <ada@example.com>',
    "o'brien-smith <o'brien_smith{1}@example.com>",
]
# Not one plain mailbox: read by the policy's grammar.
OTHER_SENDERS = [
    "Ada L. Lovelace <ada@example.com>",
    "ada@example.com (Ada Lovelace)",
    "Ada <ada@example.com>, Bob <bob@example.com>",
    "Friends: ada@example.com, bob@example.com;",
    '"Ada \\"the\\" Countess" <ada@example.com>',
    "=?utf-8?q?Ad=C3=A1?= <ada@example.com>",
    "Ada <ada@[192.0.2.1]>",
    "ada@example.com)<bob@example.com>",
    "<ada@example..com>",
    "Ada Lovelace <ada@example.com",
]


def _sender_message(value: str):
    return mime._parse_bytes(f"From: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode())


@pytest.mark.parametrize("value", PLAIN_SENDERS)
def test_a_plain_sender_is_read_directly_as_the_policy_reads_it(value):
    msg = _sender_message(value)
    plain = mime._plain_mailbox(mime._raw_header(msg, "From"))
    by_policy = [(mime._clean(a.display_name or ""), a.addr_spec) for a in msg["From"].addresses]
    assert plain is not None
    assert [plain] == by_policy


@pytest.mark.parametrize("value", OTHER_SENDERS)
def test_any_other_sender_is_left_to_the_policys_grammar(value):
    assert mime._plain_mailbox(mime._raw_header(_sender_message(value), "From")) is None


def test_a_plain_sender_is_cleaned_like_any_other():
    assert mime._addresses(_sender_message(PLAIN_SENDERS[2]), "From") == [
        ("Ada Lovelace", "ada.lovelace@example.com")
    ]
    assert mime._addresses(_sender_message(OTHER_SENDERS[0]), "From") == [
        ("Ada L. Lovelace", "ada@example.com")
    ]
