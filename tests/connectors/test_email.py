"""The e-mail connector: ESP webhook bodies, their checks, parsing into InboundMessage,
replies over SMTP (a real aiosmtpd server on 127.0.0.1), and the whole path through
the webhook view, the inbox and cases.ingest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import time
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.core import mail as django_mail
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.test.client import BOUNDARY, encode_multipart

from cases import services
from cases.models import Case, Message
from connectors import email, imap, inbox, mime
from connectors.base import ParseError, SendError, SignatureError
from connectors.models import InboundEvent
from customers.models import Identity
from tests.corpus import CORPUS as SHARED_CORPUS
from tests.factories import ChannelFactory, CustomerFactory, IdentityFactory, ServicePromiseFactory

from .fake_imap import FakeIMAP

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
CORPUS = SHARED_CORPUS / "email"
ADDRESS = "support@caseline.example"
SECRET_ENV = {
    "webhook_secret": "CASELINE_TEST_EMAIL_WEBHOOK_SECRET",
    "webhook_signing_key": "CASELINE_TEST_MAILGUN_SIGNING_KEY",
}
BASIC_AUTH = "anymail:basic-secret-not-real"
# Equal to Django's FORM but not the same object: the test client then posts
# our encoded body as it is instead of encoding it again.
FORM = f"multipart/form-data; boundary={BOUNDARY}"
SIGNING_KEY = "mailgun-signing-key-not-real"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def basic(credentials: str = BASIC_AUTH) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def mailgun_form(raw: bytes, *, key: str = SIGNING_KEY, signature: str | None = None) -> bytes:
    """A Mailgun "forward to a mime URL" body: fields signed with HMAC-SHA256(key, timestamp + token)."""
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return encode_multipart(
        BOUNDARY,
        {
            "recipient": ADDRESS,
            "sender": "bounce@example.com",
            "timestamp": timestamp,
            "token": token,
            "signature": signature if signature is not None else expected,
            "body-mime": raw.decode("utf-8"),  # Mailgun posts the message as a text field
        },
    )


def stored(body: bytes, content_type: str, headers: dict | None = None) -> InboundEvent:
    return InboundEvent(body=body, content_type=content_type, headers=headers or {})


def build_channel(**overrides):
    values = {"kind": "email", "slug": "support-mail", "account_id": ADDRESS, "secret_env": SECRET_ENV}
    return ChannelFactory.build(**{**values, **overrides})


@pytest.fixture
def mail_secrets(monkeypatch):
    monkeypatch.setenv(SECRET_ENV["webhook_secret"], BASIC_AUTH)
    monkeypatch.setenv(SECRET_ENV["webhook_signing_key"], SIGNING_KEY)


@pytest.fixture
def mail_channel(department, mail_secrets):
    channel = ChannelFactory(
        kind="email",
        name="Caseline Support",
        slug="support-mail",
        department=department,
        account_id=ADDRESS,
        secret_env=dict(SECRET_ENV),
    )
    ServicePromiseFactory(channel=channel)
    return channel


# --- what the ESPs post -----------------------------------------------------------------


def test_mailgun_raw_mime_form_field():
    raw = fixture("gmail_reply.eml")

    assert email.raw_mime(mailgun_form(raw), FORM) == raw


def test_form_body_whose_stored_content_type_lost_its_boundary():
    raw = fixture("outlook_reply.eml")
    # The inbox stores request.content_type without parameters; the body says its boundary.
    result = email.parse(stored(mailgun_form(raw), "multipart/form-data"), build_channel())

    assert result.messages[0].external_id == "DB8PR01MB0001.outlook-0011@contoso.example"


def test_sendgrid_send_raw_form_field():
    raw = fixture("latin1_qp.eml")
    body = encode_multipart(
        BOUNDARY,
        {
            "email": raw.decode("ascii"),
            "to": ADDRESS,
            "from": "renee@example.fr",
            "envelope": '{"to":["x"],"from":"y"}',
        },
    )

    assert email.raw_mime(body, FORM) == raw


def test_urlencoded_form():
    raw = fixture("latin1_qp.eml")
    from urllib.parse import urlencode

    body = urlencode({"body-mime": raw, "token": "t"}).encode()

    assert email.raw_mime(body, "application/x-www-form-urlencoded") == raw


def test_postmark_raw_email_json():
    raw = fixture("utf8_encoded_words.eml")
    body = json.dumps(
        {"FromFull": {"Email": "francois@example.ch"}, "MessageID": "x", "RawEmail": raw.decode("utf-8")}
    ).encode()

    [message] = email.parse(stored(body, "application/json"), build_channel()).messages
    assert message.subject == "Réclamation : 日本語の件 ✓"


def test_amazon_ses_notification_through_sns():
    raw = fixture("windows1252_base64.eml")
    notification = {
        "notificationType": "Received",
        "mail": {"source": "zoe@example.se", "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda"},
        "receipt": {"recipients": [ADDRESS], "action": {"type": "SNS", "encoding": "BASE64"}},
        "content": base64.b64encode(raw).decode(),
    }
    body = json.dumps(
        {"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(notification)}
    ).encode()

    [message] = email.parse(stored(body, "text/plain; charset=UTF-8"), build_channel()).messages
    assert message.author_id == "zoe@example.se"


def test_sns_subscription_handshake_is_ignored_with_its_url():
    body = json.dumps(
        {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns.example/confirm?token=1"}
    ).encode()

    result = email.parse(stored(body, "application/json"), build_channel())
    assert result.messages == []
    assert "https://sns.example/confirm?token=1" in result.ignored_reason


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (encode_multipart(BOUNDARY, {"body-plain": "hi", "from": "a@b"}), FORM, "body-mime"),
        (json.dumps({"MessageID": "1", "TextBody": "hi"}).encode(), "application/json", "RawEmail"),
        (b"{not json", "application/json", "JSON"),
        (b"   ", "message/rfc822", "empty"),
        (b"Subject: no sender\r\n\r\nhello\r\n", "message/rfc822", "From"),
        (b"From: not-an-address <nobody>\r\n\r\nhello\r\n", "message/rfc822", "From"),
    ],
)
def test_unreadable_bodies_fail_naming_the_field(body, content_type, field):
    with pytest.raises(ParseError, match=field):
        email.parse(stored(body, content_type), build_channel())


# --- checks -------------------------------------------------------------------------------


def signed_request(raw: bytes, *, auth: str | None = BASIC_AUTH, **form):
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth is not None else {}
    return RequestFactory().post(
        "/webhooks/support-mail/", data=mailgun_form(raw, **form), content_type=FORM, **headers
    )


def test_verify_accepts_basic_auth_and_mailgun_signature(mail_secrets):
    email.verify(signed_request(fixture("latin1_qp.eml")), build_channel())


@pytest.mark.parametrize(
    ("auth", "form", "reason"),
    [
        (None, {}, "missing"),
        ("anymail:wrong", {}, "wrong basic auth"),
        (BASIC_AUTH, {"key": "another-key"}, "signature does not match"),
        (BASIC_AUTH, {"signature": ""}, "required"),
    ],
)
def test_verify_refuses(mail_secrets, auth, form, reason):
    with pytest.raises(SignatureError, match=reason):
        email.verify(signed_request(fixture("latin1_qp.eml"), auth=auth, **form), build_channel())


def test_verify_with_basic_auth_only(mail_secrets):
    channel = build_channel(secret_env={"webhook_secret": SECRET_ENV["webhook_secret"]})
    body = json.dumps({"RawEmail": fixture("latin1_qp.eml").decode()}).encode()

    def request(auth):
        return RequestFactory().post(
            "/webhooks/x/", data=body, content_type="application/json", HTTP_AUTHORIZATION=basic(auth)
        )

    email.verify(request(BASIC_AUTH), channel)
    with pytest.raises(SignatureError):
        email.verify(request("anymail:nope"), channel)


def test_a_channel_without_any_secret_refuses_everything():
    with pytest.raises(ImproperlyConfigured):
        email.verify(signed_request(fixture("latin1_qp.eml")), build_channel(secret_env={}))


def test_delivery_id_is_the_message_id_whatever_the_wrapping(mail_secrets):
    raw = fixture("gmail_reply.eml")
    as_json = RequestFactory().post(
        "/", data=json.dumps({"RawEmail": raw.decode()}), content_type="application/json"
    )

    assert (
        email.delivery_id(signed_request(raw), build_channel()) == "CAF=gmail-reply-0013@mail.gmail.example"
    )
    assert email.delivery_id(as_json, build_channel()) == "CAF=gmail-reply-0013@mail.gmail.example"
    assert email.mime_delivery_id(raw) == "CAF=gmail-reply-0013@mail.gmail.example"


def test_delivery_id_without_message_id_is_a_digest_of_the_message():
    raw = fixture("no_date_no_message_id.eml")

    assert email.mime_delivery_id(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()
    [message] = email.parse(stored(raw, "message/rfc822"), build_channel()).messages
    assert message.external_id == email.mime_delivery_id(raw)


# Shapes of a header block: which are read without the parser (a plain one), and which
# go to it. Either way the id must be the parser's.
HEADER_BLOCKS = {
    "plain, CRLF": (b"From: a@example.com\r\nMessage-ID: <one@example.com>\r\n\r\nbody", True),
    "plain, LF, folded id": (b"Subject: hi\nMessage-Id:\n <two@example.com>\n\nbody", True),
    "lower-case name": (b"message-id: <three@example.com>\n\n", True),
    "first of two": (b"Message-ID: <first@x.example>\nMessage-ID: <second@x.example>\n\n", True),
    "no Message-ID": (b"From: a@example.com\n\nMessage-ID: <in-the-body@x.example>\n", True),
    "mbox From line": (b"From a@example.com Mon Jan  1 00:00:00 2024\nMessage-ID: <m@x.example>\n\n", False),
    "a line that is no header": (b"From: a@example.com\nnot a header\nMessage-ID: <h@x.example>\n\n", False),
    "no blank line": (b"From: a@example.com\nMessage-ID: <nb@x.example>\n", False),
    "bare CR": (b"From: a@example.com\rMessage-ID: <cr@x.example>\r\r", False),
    "encoded word": (b"Message-ID: =?utf-8?q?<ew@x.example>?=\n\n", False),
    "8-bit id": (b"Message-ID: <caf\xc3\xa9@x.example>\n\n", False),
    "space before the colon": (b"Message-ID : <sp@x.example>\n\n", False),
}


@pytest.mark.parametrize("name", HEADER_BLOCKS)
def test_delivery_id_read_from_a_plain_header_block_is_the_parsers(name):
    raw, plain = HEADER_BLOCKS[name]

    assert (mime.plain_message_id(raw) is not None) is plain
    assert email.mime_delivery_id(raw) == (
        email.parsed_message_id(raw) or "sha256:" + hashlib.sha256(raw).hexdigest()
    )


def test_every_mail_gets_the_same_delivery_id_with_or_without_the_parser():
    files = sorted(FIXTURES.glob("*.eml"))
    if CORPUS.is_dir():
        files += sorted(p for p in CORPUS.rglob("*") if p.is_file())
    read_plainly = 0
    for path in files:
        raw = path.read_bytes()
        fast = mime.plain_message_id(raw)
        if fast is not None:
            read_plainly += 1
            assert fast == email.parsed_message_id(raw), path
    assert read_plainly >= 15  # most of our own fixtures have plain header blocks


# --- parse --------------------------------------------------------------------------------


def test_parse_a_reply_into_an_inbound_message():
    [message] = email.parse(stored(fixture("gmail_reply.eml"), "message/rfc822"), build_channel()).messages

    assert message.platform == "email"
    assert message.kind == "email"
    assert message.is_public is False
    assert message.external_id == "CAF=gmail-reply-0013@mail.gmail.example"
    assert message.author_id == "dana.customer@gmail.example"
    assert message.author_name == "Dana Customer"
    assert message.subject == "Re: Broken router [#C-7Q4K2]"
    assert message.text == "Thanks, that fixed it!"
    assert "> Please try a factory reset." in message.quoted_text
    assert message.html.startswith("<div>Thanks, that fixed it!</div>")
    assert message.reply_to_external_id == "reply-2@caseline.example"
    assert message.thread_keys == (
        "reply-2@caseline.example",
        "reply-1@caseline.example",
        "root-0@gmail.example",
    )
    assert message.sent_at.isoformat() == "2025-03-14T08:09:10-07:00"
    assert message.is_echo is False


def test_parse_keeps_attachments():
    [message] = email.parse(
        stored(fixture("mixed_attachment_rfc2231.eml"), "message/rfc822"), build_channel()
    ).messages

    assert [a.filename for a in message.attachments] == [
        "Rechnung März 2025 – Kunde 4711.pdf",
        "Kontoauszüge.csv",
        "passwd",
    ]


def test_auto_reply_is_ignored():
    result = email.parse(stored(fixture("auto_reply.eml"), "message/rfc822"), build_channel())

    assert result.messages == [] and result.updates == []
    assert "auto-replied" in result.ignored_reason


def test_bounce_of_our_reply_is_a_failed_delivery():
    result = email.parse(stored(fixture("bounce_dsn.eml"), "message/rfc822"), build_channel())

    assert result.messages == []
    [update] = result.updates
    assert update.external_id == "our-reply-0016@caseline.example"
    assert update.state == "failed"
    assert "550 5.1.1" in update.error


def test_mail_from_our_own_address_is_an_echo():
    raw = (
        f"From: Support <{ADDRESS.upper()}>\r\nTo: kim@example.com\r\nSubject: Re: hi\r\n"
        "Message-ID: <sent-by-us@caseline.example>\r\nDate: Tue, 04 Mar 2025 09:15:00 +0000\r\n\r\nDone.\r\n"
    ).encode()

    [message] = email.parse(stored(raw, "message/rfc822"), build_channel()).messages
    assert message.is_echo is True
    assert message.recipient_id == "kim@example.com"


def test_every_corpus_mail_parses_or_fails_with_a_parse_error():
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent")
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    outcomes = {"messages": 0, "ignored": 0, "refused": 0}
    for path in files:
        try:
            result = email.parse(stored(path.read_bytes(), "message/rfc822"), build_channel())
        except ParseError:
            outcomes["refused"] += 1
            assert path.suffix != ".eml", f"{path} is an e-mail but was refused"
            continue
        for message in result.messages:
            assert message.author_id, path
            assert message.external_id and len(message.external_id) <= 255, path
            assert message.sent_at.tzinfo is not None, path
            assert "\x00" not in message.text + message.subject + message.html, path
        outcomes["messages" if result.messages else "ignored"] += 1
    assert outcomes["messages"] > 300
    assert outcomes["ignored"] >= 2  # the DSN bounce and the newsletter


# --- send ---------------------------------------------------------------------------------


@pytest.fixture
def conversation(mail_channel):
    """A customer's e-mail on a case and our queued reply to it."""
    customer = CustomerFactory(name="Dana Customer")
    identity = IdentityFactory(customer=customer, kind="email", platform_id="dana.customer@gmail.example")
    case = services.case_open(customer=customer, channel=mail_channel, subject="Broken router")
    parent = services.message_add(
        case=case,
        direction="in",
        kind="email",
        channel=mail_channel,
        identity=identity,
        external_id="CAF=first@mail.gmail.example",
        in_reply_to_external_id="older@gmail.example",
        thread_key="older@gmail.example",
        subject="Fwd: RE: Broken router",
        text="My router is broken",
    )
    reply = services.message_add(
        case=case,
        direction="out",
        kind="email",
        channel=mail_channel,
        identity=identity,
        reply_to=parent,
        subject=case.subject,
        text="Please reset it.\n\nThe support team",
        delivery_state="queued",
    )
    return case, parent, reply


def test_send_threads_the_reply_under_the_customers_mail(settings, mail_channel, conversation):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    case, _parent, reply = conversation

    result = email.send(reply, mail_channel)

    [sent] = django_mail.outbox
    message = sent.message()
    assert message["From"] == f"Caseline Support <{ADDRESS}>"
    assert sent.to == ["dana.customer@gmail.example"]
    assert message["Subject"] == f"Re: Broken router [#{case.reference}]"
    assert message["In-Reply-To"] == "<CAF=first@mail.gmail.example>"
    assert message["References"] == "<older@gmail.example> <CAF=first@mail.gmail.example>"
    assert message["Message-ID"] == f"<{reply.idempotency_key}@caseline.example>"
    assert result.external_id == f"{reply.idempotency_key}@caseline.example"
    assert sent.body == "Please reset it.\n\nThe support team"


def test_a_retry_sends_the_same_message_id(settings, mail_channel, conversation):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _case, _parent, reply = conversation

    first = email.send(reply, mail_channel)
    second = email.send(reply, mail_channel)

    assert first.external_id == second.external_id
    assert len({m.message()["Message-ID"] for m in django_mail.outbox}) == 1


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Broken router", "Re: Broken router [#C-7Q4K2]"),
        ("RE: AW: Fwd: Broken router", "Re: Broken router [#C-7Q4K2]"),
        ("Re: Broken router [#C-7Q4K2]", "Re: Broken router [#C-7Q4K2]"),
        ("", "Re: Your request [#C-7Q4K2]"),
    ],
)
def test_reply_subject(subject, expected):
    assert email.reply_subject(subject, "C-7Q4K2") == expected


def test_send_without_an_email_identity_is_refused_for_good(mail_channel, conversation):
    _case, _parent, reply = conversation
    reply.identity = IdentityFactory(kind="x", platform_id="4242")

    with pytest.raises(SendError) as refused:
        email.send(reply, mail_channel)
    assert refused.value.retryable is False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Recorder:
    """aiosmtpd handler: keeps what it receives, or refuses recipients with ``rcpt_reply``."""

    def __init__(self, rcpt_reply: str = ""):
        self.rcpt_reply = rcpt_reply
        self.received = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(settings, handler):
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    try:
        yield handler
    finally:
        controller.stop()


def test_send_through_a_real_smtp_server(settings, mail_channel, conversation):
    case, _parent, reply = conversation

    with smtp_server(settings, Recorder()) as server:
        result = email.send(reply, mail_channel)

    [(mail_from, rcpt_tos, content)] = server.received
    assert mail_from == ADDRESS
    assert rcpt_tos == ["dana.customer@gmail.example"]
    # What the customer's mail server got reads back as our reply.
    received = email.mime.parse_mail(content)
    assert received.message_id == result.external_id
    assert received.in_reply_to == "CAF=first@mail.gmail.example"
    assert received.subject == f"Re: Broken router [#{case.reference}]"
    assert received.text == "Please reset it.\n\nThe support team"


@pytest.mark.parametrize(
    ("reply", "retryable", "status"),
    [
        ("450 4.2.0 Mailbox busy, try later", True, 450),
        ("550 5.1.1 No such user", False, 550),
    ],
)
def test_smtp_refusals_are_send_errors(settings, mail_channel, conversation, reply, retryable, status):
    _case, _parent, message = conversation

    with smtp_server(settings, Recorder(rcpt_reply=reply)), pytest.raises(SendError) as refused:
        email.send(message, mail_channel)
    assert refused.value.retryable is retryable
    assert refused.value.status == status
    assert reply.split(" ", 2)[2] in str(refused.value)


def test_unreachable_smtp_server_is_retryable(settings, mail_channel, conversation):
    _case, _parent, message = conversation
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2

    with pytest.raises(SendError) as refused:
        email.send(message, mail_channel)
    assert refused.value.retryable is True


# --- the whole path: webhook view, inbox, ingest ------------------------------------------


@pytest.fixture
def post_mail(client, django_capture_on_commit_callbacks):
    """POST a mail the way Mailgun forwards it; the inbox task runs after the commit."""

    def post(channel, raw: bytes, *, auth: str = BASIC_AUTH):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/webhooks/{channel.slug}/",
                data=mailgun_form(raw),
                content_type=FORM,
                HTTP_AUTHORIZATION=basic(auth),
            )

    return post


def test_mail_with_a_case_reference_lands_on_that_case(post_mail, mail_channel, case):
    raw = fixture("reference_token.eml").replace(b"C-XXXXX", case.reference.encode())

    response = post_mail(mail_channel, raw)

    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=mail_channel)
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    assert event.delivery_id == "token-0018@example.net"
    message = Message.objects.get(external_id="token-0018@example.net")
    assert message.case == case
    assert message.kind == "email"
    assert message.channel == mail_channel
    assert message.subject == f"About my case [#{case.reference}]"
    # A new address writing privately with the token joins the case's customer.
    assert message.identity.kind == Identity.Kind.EMAIL
    assert message.identity.customer == case.customer


def test_a_second_delivery_changes_nothing(post_mail, mail_channel, case):
    raw = fixture("reference_token.eml").replace(b"C-XXXXX", case.reference.encode())

    assert post_mail(mail_channel, raw).status_code == 200
    assert post_mail(mail_channel, raw).status_code == 200

    assert InboundEvent.objects.filter(channel=mail_channel).count() == 1
    assert Message.objects.filter(external_id="token-0018@example.net").count() == 1


def test_wrong_credentials_get_403_and_store_nothing(post_mail, mail_channel):
    response = post_mail(mail_channel, fixture("latin1_qp.eml"), auth="anymail:guess")

    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_mail_without_sender_is_stored_and_failed(post_mail, mail_channel):
    response = post_mail(mail_channel, b"Subject: who am I\r\nMessage-ID: <anon@x>\r\n\r\nhi\r\n")

    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=mail_channel)
    assert event.status == InboundEvent.Status.FAILED
    assert "From" in event.error


def test_customer_answer_to_our_reply_threads_by_its_headers(
    post_mail, settings, mail_channel, agent, django_capture_on_commit_callbacks
):
    """Our reply goes out with a Message-ID; the customer's answer names it in In-Reply-To."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    first = fixture("latin1_qp.eml")
    assert post_mail(mail_channel, first).status_code == 200
    case = Message.objects.get(external_id="latin1-qp-0001@mail.example.fr").case

    with django_capture_on_commit_callbacks(execute=True):
        ours = services.case_reply(case=case, author=agent, channel=mail_channel, text="We refunded you.")
    ours.refresh_from_db()
    assert ours.delivery_state == Message.Delivery.SENT, ours.delivery_error
    [sent] = django_mail.outbox
    assert sent.message()["In-Reply-To"] == "<latin1-qp-0001@mail.example.fr>"

    answer = (
        "From: Renee Lefevre <renee.lefevre@example.fr>\r\nTo: support@caseline.example\r\n"
        "Subject: Re: Facture\r\nMessage-ID: <answer-2@mail.example.fr>\r\n"
        f"In-Reply-To: <{ours.external_id}>\r\nReferences: <latin1-qp-0001@mail.example.fr> "
        f"<{ours.external_id}>\r\nDate: Wed, 05 Mar 2025 09:00:00 +0100\r\n\r\nMerci !\r\n"
    ).encode()
    assert post_mail(mail_channel, answer).status_code == 200

    reply = Message.objects.get(external_id="answer-2@mail.example.fr")
    assert reply.case == case
    assert reply.reply_to == ours
    assert Case.objects.count() == 1


# --- the IMAP poller (a real IMAP4rev1 conversation with tests/connectors/fake_imap.py) ----

IMAP_ENV = {
    "imap_host": "CASELINE_TEST_IMAP_HOST",
    "imap_user": "CASELINE_TEST_IMAP_USER",
    "imap_password": "CASELINE_TEST_IMAP_PASSWORD",
}
IMAP_USER, IMAP_PASSWORD = ADDRESS, 'pa ss"word-not-real'


@pytest.fixture
def mailbox(monkeypatch, mail_channel):
    """A fake IMAP server holding the channel's mailbox; the channel names it in its secrets."""
    with FakeIMAP(IMAP_USER, IMAP_PASSWORD) as server:
        monkeypatch.setenv(IMAP_ENV["imap_host"], f"imap://127.0.0.1:{server.port}")
        monkeypatch.setenv(IMAP_ENV["imap_user"], IMAP_USER)
        monkeypatch.setenv(IMAP_ENV["imap_password"], IMAP_PASSWORD)
        mail_channel.secret_env = {**SECRET_ENV, **IMAP_ENV}
        mail_channel.save(update_fields=["secret_env"])
        yield server


@pytest.fixture
def poll(mail_channel, django_capture_on_commit_callbacks):
    """Run one poll of the channel; stored events are processed after their commits."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return imap.mailbox_poll(channel=mail_channel)

    return run


def test_poll_stores_unseen_mail_then_flags_it_seen(mailbox, poll, mail_channel):
    first = mailbox.add(fixture("latin1_qp.eml"))
    mailbox.add(fixture("outlook_reply.eml"), seen=True)  # read by someone already: left alone
    mailbox.add(fixture("auto_reply.eml"))

    result = poll()

    assert (result.unseen, result.stored, result.duplicates, result.error) == (2, 2, 0, "")
    assert mailbox.unseen() == []
    events = {e.delivery_id: e for e in InboundEvent.objects.filter(channel=mail_channel)}
    assert set(events) == {"latin1-qp-0001@mail.example.fr", "oof-0015@contoso.example"}
    assert events["latin1-qp-0001@mail.example.fr"].status == InboundEvent.Status.PROCESSED
    assert events["oof-0015@contoso.example"].status == InboundEvent.Status.IGNORED
    assert events["latin1-qp-0001@mail.example.fr"].headers["x-imap-uid"] == str(first)
    assert Message.objects.get(external_id="latin1-qp-0001@mail.example.fr").text.endswith("Renée")
    assert not Message.objects.filter(external_id="DB8PR01MB0001.outlook-0011@contoso.example").exists()
    # Fetched without marking (BODY.PEEK[]), then flagged one by one once stored.
    assert mailbox.commands[-5:] == ["UID FETCH", "UID STORE", "UID FETCH", "UID STORE", "LOGOUT"]


def test_a_second_poll_finds_nothing_new(mailbox, poll):
    mailbox.add(fixture("latin1_qp.eml"))
    poll()

    again = poll()

    assert (again.unseen, again.stored) == (0, 0)
    assert InboundEvent.objects.count() == 1


def test_mail_already_received_by_webhook_is_stored_once(mailbox, poll, post_mail, mail_channel):
    raw = fixture("gmail_reply.eml")
    assert post_mail(mail_channel, raw).status_code == 200
    mailbox.add(raw)

    result = poll()

    assert (result.stored, result.duplicates) == (0, 1)
    assert mailbox.unseen() == []
    assert InboundEvent.objects.count() == 1
    assert Message.objects.filter(external_id="CAF=gmail-reply-0013@mail.gmail.example").count() == 1


def test_a_mail_that_could_not_be_stored_stays_unseen(mailbox, poll, monkeypatch):
    from django.db import OperationalError

    mailbox.add(fixture("latin1_qp.eml"))

    def database_down(**kwargs):
        raise OperationalError("connection lost")

    monkeypatch.setattr(imap, "inbound_event_store", database_down)
    with pytest.raises(OperationalError):
        poll()
    assert len(mailbox.unseen()) == 1

    monkeypatch.setattr(imap, "inbound_event_store", inbox.inbound_event_store)
    assert poll().stored == 1
    assert mailbox.unseen() == []


def test_wrong_password_is_reported_and_stores_nothing(mailbox, poll, monkeypatch):
    monkeypatch.setenv(IMAP_ENV["imap_password"], "wrong")
    mailbox.add(fixture("latin1_qp.eml"))

    result = poll()

    assert "LOGIN" in result.error
    assert not InboundEvent.objects.exists()
    assert len(mailbox.unseen()) == 1


def test_unreachable_server_is_reported(mail_channel, monkeypatch, poll):
    monkeypatch.setenv(IMAP_ENV["imap_host"], f"imap://127.0.0.1:{free_port()}")
    monkeypatch.setenv(IMAP_ENV["imap_user"], IMAP_USER)
    monkeypatch.setenv(IMAP_ENV["imap_password"], IMAP_PASSWORD)
    mail_channel.secret_env = {**SECRET_ENV, **IMAP_ENV}
    mail_channel.save(update_fields=["secret_env"])

    assert "ConnectionRefusedError" in poll().error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("imap.example.com", ("imaps", "imap.example.com", 993)),
        ("imap.example.com:1993", ("imaps", "imap.example.com", 1993)),
        ("imap+starttls://mail.example.com", ("imap+starttls", "mail.example.com", 143)),
        ("imap://127.0.0.1:1143", ("imap", "127.0.0.1", 1143)),
    ],
)
def test_mailbox_address_forms(monkeypatch, value, expected):
    for role, var in IMAP_ENV.items():
        monkeypatch.setenv(var, value if role == "imap_host" else "x")
    box = imap.mailbox_for(build_channel(secret_env=IMAP_ENV))

    assert (box.scheme, box.host, box.port) == expected
    assert box.folder == "INBOX"


def test_poll_command_reports_each_channel(
    mailbox, mail_channel, department, django_capture_on_commit_callbacks
):
    ChannelFactory(kind="email", slug="no-imap", department=department, account_id="sales@caseline.example")
    mailbox.add(fixture("latin1_qp.eml"))
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("poll_imap", stdout=out)

    assert out.getvalue().strip() == "support-mail: 1 unseen, 1 stored, 0 already in the inbox"
    assert Message.objects.filter(external_id="latin1-qp-0001@mail.example.fr").exists()


def test_poll_command_fails_for_an_unknown_channel_or_a_broken_mailbox(mailbox, monkeypatch):
    with pytest.raises(CommandError, match="nope"):
        call_command("poll_imap", "--channel", "nope", stdout=StringIO())

    monkeypatch.delenv(IMAP_ENV["imap_user"])
    err = StringIO()
    with pytest.raises(CommandError, match="support-mail"):
        call_command("poll_imap", "--channel", "support-mail", stdout=StringIO(), stderr=err)
    assert "is not set" in err.getvalue()
