"""ESP inbound webhooks through django-anymail's own views, in front of the store-first inbox.

Each e-mail channel names its ESP (``Channel.email_provider``). Its anymail inbound view
is built with the channel's own secrets (constructor keyword arguments; ``as_view``
accepts only names that are class attributes, which ``webhook_secret`` is not):

- ``webhook_secret``: the HTTP basic auth ``user:password`` in the URL the ESP posts to.
  Required for SendGrid, Postmark and Amazon SES, whose webhooks carry no other proof;
  checked on Mailgun too when it is set.
- ``webhook_signing_key``: Mailgun's HTTP webhook signing key (HMAC-SHA256 over the
  posted ``timestamp`` and ``token``). Required for Mailgun.

At request time (``verify``) the view's own validators run (``run_validators``, what
its ``post`` does before parsing), and two checks anymail leaves out are added: a
Mailgun signature is refused when its timestamp is more than ``MAILGUN_MAX_AGE_SECONDS``
from now (a captured request replayed later), and an Amazon SNS message must carry
Amazon's signature (``sns.verify``). An SES request without credentials is answered
401 with ``WWW-Authenticate``, as anymail's view does: SNS sends basic auth only when
asked. Nothing is parsed then; the request is stored as it came.

In the worker (``stored_mails``) the stored body and headers are made into a request
again and read by the same view's ``parse_events``: anymail's ``AnymailInboundMessage``
for each mail (raw MIME fields, or the ESP's parsed fields put back together). Its
bytes go to ``connectors.mime``, which reads every e-mail alike, from whichever door.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import threading
import time

from anymail.exceptions import AnymailAPIError, AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.webhooks.amazon_ses import AmazonSESInboundWebhookView
from anymail.webhooks.base import AnymailBaseWebhookView
from anymail.webhooks.mailgun import MailgunInboundWebhookView
from anymail.webhooks.postmark import PostmarkInboundWebhookView
from anymail.webhooks.sendgrid import SendGridInboundWebhookView
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from ..base import ParseError, SignatureError
from ..models import Channel
from . import sns

Provider = Channel.EmailProvider

# How far a Mailgun signature's timestamp may be from now, either way (clock skew).
MAILGUN_MAX_AGE_SECONDS = 300


class NotAMail(Exception):
    """A delivery that carries no message (an SNS subscription handshake...): ignored."""


class CredentialsRequested(SignatureError):
    """No basic auth on a request whose ESP sends it only when asked (Amazon SNS).

    ``response`` is the answer the ESP expects: 401 with a ``WWW-Authenticate`` challenge.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.response = HttpResponse("Credentials required.", status=401, content_type="text/plain")
        self.response["WWW-Authenticate"] = 'Basic realm="Caseline inbound mail"'


class SESInboundView(AmazonSESInboundWebhookView):
    """anymail's SES inbound view for SNS receipt actions (the mail inside the notification).

    An S3 action would have the view download the mail with the deployment's AWS
    credentials, which this connector does not use: it fails the event, saying so.
    """

    def fetch_s3_chunks(self, bucket_name: str, object_key: str):
        raise AnymailConfigurationError(
            f"The SES receipt rule stores mail in S3 ({bucket_name}/{object_key}); this channel "
            "reads mail from the SNS notification: use an SNS receipt action with BASE64 encoding."
        )


VIEWS: dict[str, type[AnymailBaseWebhookView]] = {
    Provider.MAILGUN: MailgunInboundWebhookView,
    Provider.SENDGRID: SendGridInboundWebhookView,
    Provider.POSTMARK: PostmarkInboundWebhookView,
    Provider.AMAZON_SES: SESInboundView,
}

# Views by (provider, secrets): built once per configuration per process. A view holds
# only its configuration, so one instance serves every request and worker thread.
_views: dict[tuple, AnymailBaseWebhookView] = {}
_views_lock = threading.Lock()


def uses_esp(channel: Channel, content_type: str) -> bool:
    """Whether a body of ``content_type`` on ``channel`` is the ESP's post (else raw MIME)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return channel.email_provider in VIEWS and media_type != "message/rfc822"


def inbound_view(channel: Channel) -> AnymailBaseWebhookView:
    """The channel's anymail inbound view, configured with the channel's secrets only.

    ``ImproperlyConfigured`` names a secret the ESP needs that the channel lacks. The
    site-wide ``ANYMAIL`` settings are never fallen back on: every secret is passed.
    """
    provider = channel.email_provider
    roles = channel.secret_env or {}
    kwargs: dict = {}
    if "webhook_secret" in roles or provider != Provider.MAILGUN:
        kwargs["webhook_secret"] = [channel.secret("webhook_secret")]
    else:
        kwargs["webhook_secret"] = []
    if provider == Provider.MAILGUN:
        kwargs["webhook_signing_key"] = channel.secret("webhook_signing_key")
    if provider == Provider.AMAZON_SES:
        # Subscriptions are confirmed by an admin (the ignored event names the URL).
        kwargs["auto_confirm_sns_subscriptions"] = False
    key = (provider, tuple(kwargs["webhook_secret"]), kwargs.get("webhook_signing_key"))
    view = _views.get(key)
    if view is None:
        view = VIEWS[provider](**kwargs)
        with _views_lock:
            if len(_views) > 256:
                _views.clear()
            _views[key] = view
    return view


# --- request time ---------------------------------------------------------------------------


def verify(request: HttpRequest, channel: Channel) -> None:
    """The ESP's checks, by anymail's view, and ours on top; ``SignatureError`` when refused."""
    view = inbound_view(channel)
    provider = channel.email_provider
    message = None
    if provider == Provider.AMAZON_SES:
        if view.basic_auth and not request.META.get("HTTP_AUTHORIZATION"):
            raise CredentialsRequested("Authorization: Amazon SNS is asked for its basic auth.")
        message = sns_message(request.body)
    try:
        view.run_validators(request)
    except (
        SuspiciousOperation,
        AnymailAPIError,
        MultiPartParserError,
        ValueError,
        TypeError,
        KeyError,
    ) as exc:
        # AnymailWebhookValidationFailure is a SuspiciousOperation; the others are bodies
        # the validators could not read, so could not have verified.
        kind = "refused" if isinstance(exc, AnymailWebhookValidationFailure) else "unreadable"
        raise SignatureError(f"{view.esp_name} webhook {kind}: {exc}") from exc
    if provider == Provider.MAILGUN:
        _refuse_stale_mailgun(request)
    if message is not None:
        sns.verify(message)


def sns_message(body: bytes) -> dict:
    """The SNS message a body carries (a JSON object); ``SignatureError`` when it is none."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"The body is not an Amazon SNS message ({exc}).") from exc
    if not isinstance(message, dict):
        raise SignatureError("The body is not an Amazon SNS message (not a JSON object).")
    return message


def _refuse_stale_mailgun(request: HttpRequest) -> None:
    """``SignatureError`` when the signed timestamp is outside ``MAILGUN_MAX_AGE_SECONDS``.

    Read from the field anymail checked: the form's last ``timestamp`` value, or the JSON
    body's ``signature.timestamp``.
    """
    if request.content_type == "application/json":
        value = json.loads(request.body).get("signature", {}).get("timestamp")
    else:
        value = request.POST.get("timestamp")
    try:
        signed_at = float(value)
    except (TypeError, ValueError):
        signed_at = math.nan
    if not math.isfinite(signed_at):
        raise SignatureError(f"timestamp: {value!r} is not a time.")
    age = time.time() - signed_at
    if abs(age) > MAILGUN_MAX_AGE_SECONDS:
        raise SignatureError(
            f"timestamp: the Mailgun signature is {age:.0f} s old; more than "
            f"{MAILGUN_MAX_AGE_SECONDS} s either way is refused as a replay."
        )


def request_mails(request: HttpRequest, channel: Channel) -> list[bytes]:
    """The raw mails an ESP request carries, as anymail reads them (see ``stored_mails``)."""
    view = inbound_view(channel)
    if channel.email_provider == Provider.AMAZON_SES:
        try:
            message = sns_message(request.body)
        except SignatureError as exc:
            raise ParseError(str(exc)) from exc
        kind = message.get("Type")
        if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            raise NotAMail(
                f"Amazon SNS {kind} for {message.get('TopicArn', '?')}: "
                f"confirm it at {message.get('SubscribeURL', '(no SubscribeURL)')}"
            )
    try:
        events = view.parse_events(request)
        return [event.message.as_bytes() for event in events if event.message is not None]
    except AnymailConfigurationError as exc:
        # anymail's word on a webhook set up the wrong way (a tracking URL, a store() route...).
        raise ParseError(f"{view.esp_name}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - whatever the body makes the view raise is its fault
        raise ParseError(f"{view.esp_name} body unreadable: {type(exc).__name__}: {exc}") from exc


# --- in the worker --------------------------------------------------------------------------


def stored_mails(event, channel: Channel) -> list[bytes]:
    """The raw mails of a stored ESP delivery; ``ParseError`` or ``NotAMail`` when none.

    The stored body and headers are enough: the request is made again from them and read
    by the channel's anymail view, now, with no check (it passed when the delivery came).
    """
    mails = request_mails(rebuilt_request(event), channel)
    if not mails:
        raise NotAMail(f"{channel.get_email_provider_display()} delivery with no inbound mail in it.")
    return mails


def rebuilt_request(event) -> HttpRequest:
    """The POST a stored event came in, from its body and kept headers."""
    body = bytes(event.body)
    headers = {k.lower(): str(v) for k, v in (event.headers or {}).items()}
    content_type = with_boundary(headers.get("content-type") or event.content_type or "", body)
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "SERVER_NAME": "inbox.invalid",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        if name not in ("content-type", "content-length"):
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return WSGIRequest(environ)


def with_boundary(content_type: str, body: bytes) -> str:
    """A multipart content type without its boundary gets the one the body starts with."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type.startswith("multipart/") or re.search(r"boundary=", content_type, re.IGNORECASE):
        return content_type
    first = body.lstrip(b"\r\n").split(b"\n", 1)[0].strip()
    if first.startswith(b"--") and len(first) > 2:
        return f'{media_type}; boundary="{first[2:].decode("latin-1")}"'
    return content_type


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()
