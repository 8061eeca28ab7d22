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
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from connectors.email import esp, sns
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
ESPS = ("mailgun", "sendgrid", "postmark", "amazon_ses")
# Where the SNS messages say their signing certificate is (served by a fake on 127.0.0.1).
CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_fields(name: str) -> dict:
    """An ESP's documented fields from a fixture, without its ``_doc`` note."""
    fields = json.loads(fixture(name))
    fields.pop("_doc", None)
    return fields


def basic(credentials: str = BASIC_AUTH) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def mailgun_signed(
    fields: dict, *, key: str = SIGNING_KEY, signature: str | None = None, age: float = 0
) -> bytes:
    """Mailgun form ``fields`` signed with HMAC-SHA256(key, timestamp + token), ``age`` seconds ago."""
    timestamp, token = str(int(time.time() - age)), secrets.token_hex(25)
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    signed = {
        "timestamp": timestamp,
        "token": token,
        "signature": expected if signature is None else signature,
    }
    return encode_multipart(BOUNDARY, {**fields, **signed})


def mailgun_form(raw: bytes, **signing) -> bytes:
    """A Mailgun "forward to a mime URL" body: the message as the body-mime text field."""
    return mailgun_signed(
        {**fixture_fields("mailgun_forward_mime.json"), "body-mime": raw.decode("utf-8")}, **signing
    )


def sendgrid_form(raw: bytes) -> bytes:
    """SendGrid Inbound Parse with "POST the raw, full MIME message": the message as the email field."""
    return encode_multipart(
        BOUNDARY, {**fixture_fields("sendgrid_parse_raw.json"), "email": raw.decode("utf-8")}
    )


def postmark_json(raw: bytes | None) -> bytes:
    """Postmark's inbound JSON, with the raw message (``RawEmail``) or only its parsed fields."""
    body = fixture_fields("postmark_inbound.json")
    if raw is not None:
        body["RawEmail"] = raw.decode("utf-8")
    return json.dumps(body).encode()


class SNSSigner:
    """Amazon SNS's side: an RSA key and its self-signed certificate, signing messages.

    The string signed is written here from Amazon's documentation (not by the code under
    test): ``name\\nvalue\\n`` for each signed field present, in this order.
    """

    FIELDS = {
        "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
        "SubscriptionConfirmation": (
            "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
        ),
    }  # fmt: skip

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: dict, *, version: str = "1", cert_url: str = CERT_URL) -> dict:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        message = {**message, "SignatureVersion": version, "SigningCertURL": cert_url}
        text = "".join(
            f"{name}\n{message[name]}\n" for name in self.FIELDS[message["Type"]] if name in message
        )
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}


@pytest.fixture(scope="session")
def sns_signer():
    return SNSSigner()


@pytest.fixture
def sns_certificates(settings, sns_signer):
    """A plain-HTTP server on 127.0.0.1 serving the signer's certificate for every .pem path;
    certificate fetches go to it (``SNS_CERTIFICATE_BASE_URL``). ``paths`` lists what was asked."""

    class Handler(BaseHTTPRequestHandler):
        paths: list[str] = []

        def do_GET(self):
            Handler.paths.append(self.path)
            ok = self.path.endswith(".pem")
            body = sns_signer.pem if ok else b"not found"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    Handler.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    settings.SNS_CERTIFICATE_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    sns.forget_certificates()
    try:
        yield Handler.paths
    finally:
        sns.forget_certificates()
        server.shutdown()
        server.server_close()


def ses_notification(raw: bytes | None, signer: SNSSigner, **signing) -> dict:
    """The SNS notification of an SES receipt rule's SNS action carrying ``raw`` (base64)."""
    ses = fixture_fields("ses_received_notification.json")
    if raw is None:
        del ses["content"]
    else:
        ses["content"] = base64.b64encode(raw).decode()
    message = {**fixture_fields("sns_notification.json"), "Message": json.dumps(ses)}
    return signer.sign(message, **signing)


def sns_post(message: dict, *, auth: str | None = BASIC_AUTH) -> dict:
    """What SNS sends: the message as text/plain JSON, its type and id in headers."""
    headers = {
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": str(message.get("Type")),
        "HTTP_X_AMZ_SNS_MESSAGE_ID": str(message.get("MessageId")),
    }
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = basic(auth)
    return {"data": json.dumps(message).encode(), "content_type": "text/plain; charset=UTF-8", **headers}


def esp_post(
    provider: str, raw: bytes, signer: SNSSigner | None = None, *, auth: str | None = BASIC_AUTH
) -> dict:
    """Keyword arguments for the test client: ``raw`` posted the way ``provider`` posts it."""
    if provider == "amazon_ses":
        return sns_post(ses_notification(raw, signer), auth=auth)
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth is not None else {}
    if provider == "mailgun":
        return {"data": mailgun_form(raw), "content_type": FORM, **headers}
    if provider == "sendgrid":
        return {"data": sendgrid_form(raw), "content_type": FORM, **headers}
    if provider == "postmark":
        return {"data": postmark_json(raw), "content_type": "application/json", **headers}
    return {"data": raw, "content_type": "message/rfc822", **headers}


def stored(body: bytes, content_type: str, headers: dict | None = None) -> InboundEvent:
    return InboundEvent(body=body, content_type=content_type, headers=headers or {})


def build_channel(**overrides):
    values = {"kind": "email", "slug": "support-mail", "account_id": ADDRESS, "secret_env": SECRET_ENV}
    return ChannelFactory.build(**{**values, **overrides})


@pytest.fixture
def mail_secrets(monkeypatch):
    monkeypatch.setenv(SECRET_ENV["webhook_secret"], BASIC_AUTH)
    monkeypatch.setenv(SECRET_ENV["webhook_signing_key"], SIGNING_KEY)


def make_channel(department, provider: str = "mailgun", slug: str = "support-mail"):
    channel = ChannelFactory(
        kind="email",
        name="Caseline Support",
        slug=slug,
        department=department,
        account_id=ADDRESS,
        secret_env=dict(SECRET_ENV),
        email_provider=provider,
    )
    ServicePromiseFactory(channel=channel)
    return channel


@pytest.fixture
def mail_channel(department, mail_secrets):
    """The support mailbox, fed by Mailgun (and, in the IMAP tests, by its mailbox too)."""
    return make_channel(department)


# --- what the ESPs post, read from the stored body ---------------------------------------


def test_mailgun_raw_mime_form_field(mail_secrets):
    raw = fixture("gmail_reply.eml")

    result = email.parse(
        stored(mailgun_form(raw), FORM, {"content-type": FORM}), build_channel(email_provider="mailgun")
    )

    assert result.messages == email.parse_raw(raw, build_channel()).messages


def test_form_body_whose_stored_content_type_lost_its_boundary(mail_secrets):
    raw = fixture("outlook_reply.eml")
    # An event stored without its headers: the content type has no boundary; the body says it.
    result = email.parse(
        stored(mailgun_form(raw), "multipart/form-data"), build_channel(email_provider="mailgun")
    )

    assert result.messages[0].external_id == "DB8PR01MB0001.outlook-0011@contoso.example"


def test_mailgun_parsed_fields_become_the_message(mail_secrets):
    body = mailgun_signed(fixture_fields("mailgun_forward_parsed.json"))

    [message] = email.parse(
        stored(body, FORM, {"content-type": FORM}), build_channel(email_provider="mailgun")
    ).messages

    assert message.external_id == "kim-parsed-0001@example.com"
    assert message.author_id == "kim.customer@example.com"
    assert message.reply_to_external_id == "our-reply-77@caseline.example"
    assert message.thread_keys == ("our-reply-77@caseline.example", "kim-first-0000@example.com")
    assert message.text == "Thursday works for me."


def test_sendgrid_send_raw_form_field(mail_secrets):
    raw = fixture("latin1_qp.eml")

    result = email.parse(
        stored(sendgrid_form(raw), FORM, {"content-type": FORM}), build_channel(email_provider="sendgrid")
    )

    assert result.messages == email.parse_raw(raw, build_channel()).messages


def test_postmark_raw_email_json(mail_secrets):
    raw = fixture("utf8_encoded_words.eml")

    [message] = email.parse(
        stored(postmark_json(raw), "application/json"), build_channel(email_provider="postmark")
    ).messages
    assert message.subject == "Réclamation : 日本語の件 ✓"


def test_postmark_json_without_raw_email_is_put_together_by_anymail(mail_secrets):
    [message] = email.parse(
        stored(postmark_json(None), "application/json"), build_channel(email_provider="postmark")
    ).messages

    assert message.external_id == "kim-postmark-0001@example.com"
    assert (message.author_id, message.author_name) == ("kim.customer@example.com", "Kim Customer")
    assert message.subject == "Re: Delivery date"
    assert message.reply_to_external_id == "our-reply-77@caseline.example"
    assert message.text == "Thursday works for me."
    assert [(a.filename, a.content) for a in message.attachments] == [
        ("delivery note.txt", b"Thursday, 10:00-12:00\n")
    ]


def test_amazon_ses_notification_through_sns(mail_secrets, sns_signer):
    raw = fixture("windows1252_base64.eml")
    body = json.dumps(ses_notification(raw, sns_signer)).encode()

    result = email.parse(
        stored(body, "text/plain; charset=UTF-8"), build_channel(email_provider="amazon_ses")
    )

    assert result.messages == email.parse_raw(raw, build_channel()).messages


def test_sns_subscription_handshake_is_ignored_with_its_url(mail_secrets, sns_signer):
    message = sns_signer.sign(fixture_fields("sns_subscription_confirmation.json"))

    result = email.parse(
        stored(json.dumps(message).encode(), "text/plain"), build_channel(email_provider="amazon_ses")
    )
    assert result.messages == []
    assert message["SubscribeURL"] in result.ignored_reason


def test_a_message_rfc822_body_is_the_mail_whatever_the_esp(mail_secrets):
    # What the IMAP poller stores, on a channel whose webhook is Mailgun's.
    raw = fixture("gmail_reply.eml")

    result = email.parse(stored(raw, "message/rfc822"), build_channel(email_provider="mailgun"))

    assert result.messages == email.parse_raw(raw, build_channel()).messages


@pytest.mark.parametrize(
    ("provider", "body", "content_type", "field"),
    [
        ("mailgun", mailgun_signed({"body-plain": "hi", "from": "a@b"}), FORM, "message-headers"),
        ("mailgun", mailgun_signed({"event": "delivered"}), FORM, "tracking"),
        ("sendgrid", encode_multipart(BOUNDARY, {"text": "hi"}), FORM, "missing both 'headers' and 'email'"),
        ("postmark", json.dumps({"MessageID": "1", "TextBody": "hi"}).encode(), "application/json", "From"),
        ("postmark", b"{not json", "application/json", "JSON"),
        ("amazon_ses", b"[]", "text/plain", "SNS"),
        ("raw", b"   ", "message/rfc822", "empty"),
        ("raw", b"Subject: no sender\r\n\r\nhello\r\n", "message/rfc822", "From"),
        ("raw", b"From: not-an-address <nobody>\r\n\r\nhello\r\n", "message/rfc822", "From"),
    ],
)
def test_unreadable_bodies_fail_naming_the_field(mail_secrets, provider, body, content_type, field):
    with pytest.raises(ParseError, match=field):
        email.parse(
            stored(body, content_type, {"content-type": content_type}), build_channel(email_provider=provider)
        )


# --- checks -------------------------------------------------------------------------------


def signed_request(raw: bytes, *, auth: str | None = BASIC_AUTH, **form):
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth is not None else {}
    return RequestFactory().post(
        "/webhooks/support-mail/", data=mailgun_form(raw, **form), content_type=FORM, **headers
    )


@pytest.mark.django_db
def test_verify_accepts_basic_auth_and_mailgun_signature(
    client, mail_channel, django_capture_on_commit_callbacks
):
    raw = fixture("latin1_qp.eml")
    body = mailgun_form(raw)
    request = RequestFactory().post("/", data=body, content_type=FORM, HTTP_AUTHORIZATION=basic())

    assert email.verify(request, mail_channel) is None
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/webhooks/{mail_channel.slug}/", data=body, content_type=FORM, HTTP_AUTHORIZATION=basic()
        )

    # The request is stored as it came, known by its Message-ID, and read into the mail.
    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=mail_channel)
    assert bytes(event.body) == body
    assert event.headers["content-type"] == FORM
    assert "authorization" not in event.headers
    assert event.delivery_id == "latin1-qp-0001@mail.example.fr"
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = Message.objects.get(channel=mail_channel)
    assert message.external_id == "latin1-qp-0001@mail.example.fr"
    assert message.identity.platform_id == "renee.lefevre@example.fr"
    # The same signed fields with one character of the signature changed are refused.
    forged = body.replace(b'name="signature"\r\n\r\n', b'name="signature"\r\n\r\n0', 1)
    with pytest.raises(SignatureError, match="incorrect signature"):
        email.verify(
            RequestFactory().post("/", data=forged, content_type=FORM, HTTP_AUTHORIZATION=basic()),
            mail_channel,
        )


@pytest.mark.parametrize(
    ("auth", "form", "reason"),
    [
        (None, {}, "basic auth"),
        ("anymail:wrong", {}, "basic auth"),
        (BASIC_AUTH, {"key": "another-key"}, "incorrect signature"),
        (BASIC_AUTH, {"signature": ""}, "incorrect signature"),
        (BASIC_AUTH, {"age": 10 * 60}, "replay"),
        (BASIC_AUTH, {"age": -10 * 60}, "replay"),
    ],
)
def test_verify_refuses(mail_secrets, auth, form, reason):
    with pytest.raises(SignatureError, match=reason):
        email.verify(
            signed_request(fixture("latin1_qp.eml"), auth=auth, **form),
            build_channel(email_provider="mailgun"),
        )


def test_mailgun_without_basic_auth_checks_the_signature_alone(mail_secrets):
    channel = build_channel(
        email_provider="mailgun", secret_env={"webhook_signing_key": SECRET_ENV["webhook_signing_key"]}
    )

    email.verify(signed_request(fixture("latin1_qp.eml"), auth=None), channel)
    with pytest.raises(SignatureError, match="incorrect signature"):
        email.verify(signed_request(fixture("latin1_qp.eml"), auth=None, key="guess"), channel)


def test_a_fresh_mailgun_signature_inside_the_window_is_accepted(mail_secrets):
    email.verify(signed_request(fixture("latin1_qp.eml"), age=60), build_channel(email_provider="mailgun"))


@pytest.mark.parametrize("provider", ["raw", "sendgrid", "postmark"])
def test_verify_with_basic_auth_only(mail_secrets, provider):
    channel = build_channel(
        email_provider=provider, secret_env={"webhook_secret": SECRET_ENV["webhook_secret"]}
    )
    post = esp_post(provider, fixture("latin1_qp.eml"))
    post.pop("HTTP_AUTHORIZATION")

    def request(auth):
        return RequestFactory().post(
            "/webhooks/x/", **post, **({"HTTP_AUTHORIZATION": basic(auth)} if auth else {})
        )

    email.verify(request(BASIC_AUTH), channel)
    with pytest.raises(SignatureError, match="basic auth"):
        email.verify(request("anymail:nope"), channel)
    with pytest.raises(SignatureError, match="basic auth"):
        email.verify(request(None), channel)


@pytest.mark.parametrize("provider", ["raw", "sendgrid", "postmark", "amazon_ses"])
def test_a_channel_without_a_webhook_secret_refuses_everything(provider):
    with pytest.raises(ImproperlyConfigured):
        email.verify(
            signed_request(fixture("latin1_qp.eml")), build_channel(email_provider=provider, secret_env={})
        )


def test_a_mailgun_channel_without_its_signing_key_refuses_everything(mail_secrets):
    channel = build_channel(
        email_provider="mailgun", secret_env={"webhook_secret": SECRET_ENV["webhook_secret"]}
    )

    with pytest.raises(ImproperlyConfigured, match="webhook_signing_key"):
        email.verify(signed_request(fixture("latin1_qp.eml")), channel)


def test_delivery_id_is_the_message_id_whatever_the_wrapping(mail_secrets, sns_signer):
    raw = fixture("gmail_reply.eml")
    expected = "CAF=gmail-reply-0013@mail.gmail.example"

    for provider in ESPS:
        request = RequestFactory().post("/", **esp_post(provider, raw, sns_signer))
        assert email.delivery_id(request, build_channel(email_provider=provider)) == expected, provider
    assert email.mime_delivery_id(raw) == expected


def test_delivery_id_of_a_body_without_a_mail_is_its_digest(mail_secrets):
    body = mailgun_signed({"body-plain": "no message-headers"})
    request = RequestFactory().post("/", data=body, content_type=FORM)

    assert email.delivery_id(request, build_channel(email_provider="mailgun")) == (
        "sha256:" + hashlib.sha256(body).hexdigest()
    )


def test_delivery_id_without_message_id_is_a_digest_of_the_message():
    raw = fixture("no_date_no_message_id.eml")

    assert email.mime_delivery_id(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()
    [message] = email.parse(stored(raw, "message/rfc822"), build_channel()).messages
    assert message.external_id == email.mime_delivery_id(raw)


def test_an_esp_mail_without_message_id_keeps_one_id_across_retries(mail_secrets):
    # Each Mailgun attempt is signed anew (another token): the id is the mail's, not the body's.
    raw = fixture("no_date_no_message_id.eml")
    channel = build_channel(email_provider="mailgun")
    first, second = (RequestFactory().post("/", data=mailgun_form(raw), content_type=FORM) for _ in range(2))

    assert first.body != second.body
    assert email.delivery_id(first, channel) == email.delivery_id(second, channel)
    [message] = email.parse(stored(first.body, FORM, {"content-type": FORM}), channel).messages
    assert message.external_id == email.delivery_id(first, channel)


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


# --- every ESP through the webhook: checked, stored as it came, read in the worker ---------


@pytest.fixture
def post_esp(client, django_capture_on_commit_callbacks):
    """POST what ``esp_post`` builds to the channel's webhook; the inbox task runs after the commit."""

    def post(channel, post_kwargs: dict):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/webhooks/{channel.slug}/", **post_kwargs)

    return post


@pytest.mark.parametrize("provider", ESPS)
def test_each_esps_signed_request_is_stored_as_it_came_and_becomes_the_message(
    post_esp, department, mail_secrets, sns_certificates, sns_signer, provider
):
    channel = make_channel(department, provider)
    raw = fixture("gmail_reply.eml")
    request = esp_post(provider, raw, sns_signer)

    response = post_esp(channel, request)

    assert response.status_code == 200, response.content
    event = InboundEvent.objects.get(channel=channel)
    assert bytes(event.body) == request["data"]
    assert event.delivery_id == "CAF=gmail-reply-0013@mail.gmail.example"
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    # The message the ESP's request gives is the one the mail itself gives (as from IMAP).
    assert email.parse(event, channel).messages == email.parse_raw(raw, channel).messages
    message = Message.objects.get(channel=channel)
    assert message.external_id == "CAF=gmail-reply-0013@mail.gmail.example"
    assert message.identity.platform_id == "dana.customer@gmail.example"
    assert message.subject == "Re: Broken router [#C-7Q4K2]"
    assert message.text == "Thanks, that fixed it!"
    assert message.in_reply_to_external_id == "reply-2@caseline.example"


MAILGUN_MAX_AGE = esp.MAILGUN_MAX_AGE_SECONDS
REFUSALS = [
    ("mailgun", "wrong basic auth", lambda raw, signer: esp_post("mailgun", raw, auth="anymail:guess"), 403),
    (
        "mailgun",
        "signed with another key",
        lambda raw, signer: {
            "data": mailgun_form(raw, key="not-our-key"),
            "content_type": FORM,
            "HTTP_AUTHORIZATION": basic(),
        },
        403,
    ),
    (
        "mailgun",
        "no signature fields",
        lambda raw, signer: {
            "data": encode_multipart(BOUNDARY, {"body-mime": raw.decode()}),
            "content_type": FORM,
            "HTTP_AUTHORIZATION": basic(),
        },
        403,
    ),
    (
        "mailgun",
        "stale timestamp",
        lambda raw, signer: {
            "data": mailgun_form(raw, age=MAILGUN_MAX_AGE + 60),
            "content_type": FORM,
            "HTTP_AUTHORIZATION": basic(),
        },
        403,
    ),
    (
        "sendgrid",
        "wrong basic auth",
        lambda raw, signer: esp_post("sendgrid", raw, auth="anymail:guess"),
        403,
    ),
    ("sendgrid", "no basic auth", lambda raw, signer: esp_post("sendgrid", raw, auth=None), 403),
    (
        "postmark",
        "wrong basic auth",
        lambda raw, signer: esp_post("postmark", raw, auth="anymail:guess"),
        403,
    ),
    ("postmark", "no basic auth", lambda raw, signer: esp_post("postmark", raw, auth=None), 403),
    (
        "amazon_ses",
        "wrong basic auth",
        lambda raw, signer: esp_post("amazon_ses", raw, signer, auth="anymail:guess"),
        403,
    ),
    ("amazon_ses", "no basic auth", lambda raw, signer: esp_post("amazon_ses", raw, signer, auth=None), 401),
    (
        "amazon_ses",
        "SNS headers that are not the body's",
        lambda raw, signer: {**esp_post("amazon_ses", raw, signer), "HTTP_X_AMZ_SNS_MESSAGE_ID": "another"},
        403,
    ),
    (
        "amazon_ses",
        "not an SNS message",
        lambda raw, signer: {**esp_post("amazon_ses", raw, signer), "data": raw},
        403,
    ),
]


@pytest.mark.parametrize(
    ("provider", "how", "build", "status"), REFUSALS, ids=[f"{p}: {h}" for p, h, _b, _s in REFUSALS]
)
def test_forged_stale_or_missing_credentials_are_refused_and_nothing_is_stored(
    post_esp, department, mail_secrets, sns_certificates, sns_signer, provider, how, build, status
):
    channel = make_channel(department, provider)

    response = post_esp(channel, build(fixture("gmail_reply.eml"), sns_signer))

    assert response.status_code == status
    assert not InboundEvent.objects.exists()
    if status == 401:  # SNS sends basic auth only when challenged
        assert response["WWW-Authenticate"].startswith("Basic realm=")


def test_sns_challenge_then_credentials_is_how_a_delivery_arrives(
    post_esp, department, mail_secrets, sns_certificates, sns_signer
):
    channel = make_channel(department, "amazon_ses")
    message = ses_notification(fixture("latin1_qp.eml"), sns_signer)

    assert post_esp(channel, sns_post(message, auth=None)).status_code == 401
    assert post_esp(channel, sns_post(message)).status_code == 200
    assert Message.objects.get(channel=channel).external_id == "latin1-qp-0001@mail.example.fr"


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_sns_signature_by_amazons_certificate_is_accepted_and_the_certificate_kept(
    post_esp, department, mail_secrets, sns_certificates, sns_signer, version
):
    channel = make_channel(department, "amazon_ses")

    for name in ("latin1_qp.eml", "gmail_reply.eml"):
        message = ses_notification(fixture(name), sns_signer, version=version)
        assert post_esp(channel, sns_post(message)).status_code == 200

    assert InboundEvent.objects.filter(channel=channel, status="processed").count() == 2
    # Fetched once, from the path the message named, and kept for the next message.
    assert sns_certificates == ["/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"]


def tampered(message: dict) -> dict:
    ses = json.loads(message["Message"])
    ses["content"] = base64.b64encode(fixture("latin1_qp.eml")).decode()
    return {**message, "Message": json.dumps(ses)}


@pytest.mark.parametrize(
    ("how", "change"),
    [
        ("message changed after signing", tampered),
        ("signed by another key", lambda message: SNSSigner().sign(message)),
        ("signature version 3", lambda message: {**message, "SignatureVersion": "3"}),
        ("no signature", lambda message: {k: v for k, v in message.items() if k != "Signature"}),
        ("signature not base64", lambda message: {**message, "Signature": "%%%"}),
    ],
)
def test_a_bad_sns_signature_is_refused(
    post_esp, department, mail_secrets, sns_certificates, sns_signer, how, change
):
    channel = make_channel(department, "amazon_ses")
    message = change(ses_notification(fixture("gmail_reply.eml"), sns_signer))

    assert post_esp(channel, sns_post(message)).status_code == 403
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.us-east-1.amazonaws.com.attacker.example/SimpleNotificationService-1.pem",
        "https://attacker.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://s3.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.txt",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem?x=.pem",
    ],
)
def test_a_certificate_url_off_amazon_sns_is_refused_without_fetching_it(
    post_esp, department, mail_secrets, sns_certificates, sns_signer, cert_url
):
    channel = make_channel(department, "amazon_ses")
    message = ses_notification(fixture("gmail_reply.eml"), sns_signer, cert_url=cert_url)

    assert post_esp(channel, sns_post(message)).status_code == 403
    assert not InboundEvent.objects.exists()
    assert sns_certificates == []


def test_an_unreachable_certificate_is_a_try_again_later(
    post_esp, department, mail_secrets, settings, sns_signer
):
    settings.SNS_CERTIFICATE_BASE_URL = f"http://127.0.0.1:{free_port()}"
    sns.forget_certificates()
    channel = make_channel(department, "amazon_ses")

    response = post_esp(channel, sns_post(ses_notification(fixture("gmail_reply.eml"), sns_signer)))

    assert response.status_code == 503  # SNS delivers it again later
    assert not InboundEvent.objects.exists()


def test_a_signed_sns_subscription_is_stored_and_ignored_naming_its_url(
    post_esp, department, mail_secrets, sns_certificates, sns_signer
):
    channel = make_channel(department, "amazon_ses")
    message = sns_signer.sign(fixture_fields("sns_subscription_confirmation.json"))

    assert post_esp(channel, sns_post(message)).status_code == 200

    event = InboundEvent.objects.get(channel=channel)
    assert event.status == InboundEvent.Status.IGNORED
    assert message["SubscribeURL"] in event.error
    forged = {
        **message,
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&x=1",
    }
    assert post_esp(channel, sns_post(forged)).status_code == 403


MALFORMED = [
    (
        "mailgun",
        lambda signer: {"data": mailgun_signed({"body-plain": "hi"}), "content_type": FORM},
        "message-headers",
    ),
    (
        "sendgrid",
        lambda signer: {"data": encode_multipart(BOUNDARY, {"to": ADDRESS}), "content_type": FORM},
        "email",
    ),
    ("postmark", lambda signer: {"data": b'{"RawEmail": ', "content_type": "application/json"}, "JSON"),
    ("postmark", lambda signer: {"data": b'{"MessageID": "x"}', "content_type": "application/json"}, "From"),
    ("amazon_ses", lambda signer: sns_post(ses_notification(None, signer)), "Amazon SES body unreadable"),
]


@pytest.mark.parametrize(
    ("provider", "build", "error"), MALFORMED, ids=[f"{p}-{e}" for p, _b, e in MALFORMED]
)
def test_a_verified_but_malformed_body_is_stored_and_marked_failed(
    post_esp, department, mail_secrets, sns_certificates, sns_signer, provider, build, error
):
    channel = make_channel(department, provider)
    request = build(sns_signer)
    request.setdefault("HTTP_AUTHORIZATION", basic())

    response = post_esp(channel, request)

    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=channel)
    assert bytes(event.body) == request["data"]
    assert event.status == InboundEvent.Status.FAILED
    assert error in event.error
    assert not Message.objects.exists()


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


@pytest.mark.parametrize("provider", ESPS)
def test_mail_already_received_by_webhook_is_stored_once(
    mailbox, poll, post_esp, mail_channel, sns_certificates, sns_signer, provider
):
    mail_channel.email_provider = provider
    mail_channel.save(update_fields=["email_provider"])
    raw = fixture("gmail_reply.eml")
    assert post_esp(mail_channel, esp_post(provider, raw, sns_signer)).status_code == 200
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
