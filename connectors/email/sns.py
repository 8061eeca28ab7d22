"""Amazon SNS message signatures: the check django-anymail's SES view leaves to its caller.

An SNS message (Notification, SubscriptionConfirmation, UnsubscribeConfirmation) is
signed by Amazon with RSA over a canonical string of some of its fields, each written
as ``name\\nvalue\\n`` in a fixed order; ``SignatureVersion`` 1 hashes it with SHA1, 2 with
SHA256. The signing certificate is named by ``SigningCertURL``, which must be HTTPS on
``sns.<region>.amazonaws.com`` (``.com.cn`` in China) and end in ``.pem``: a message
naming any other certificate is refused without fetching it. Certificates are fetched
once per process and kept (their URL names them; Amazon publishes a new URL to rotate).

Tests never reach Amazon: ``settings.SNS_CERTIFICATE_BASE_URL`` (unset in production)
fetches the certificate's path from that base instead, after the URL was checked.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

from ..base import SignatureError

# The fields signed, in order, by message type (Amazon's "verifying the signatures" page).
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
# Signed only when the message has it.
OPTIONAL_FIELDS = frozenset({"Subject"})
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
CERTIFICATE_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
FETCH_TIMEOUT_SECONDS = 5.0
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED = 64

_keys: dict[str, rsa.RSAPublicKey] = {}
_keys_lock = threading.Lock()


def string_to_sign(message: dict) -> bytes:
    """The canonical string SNS signed for ``message``; ``SignatureError`` when a field is missing."""
    kind = message.get("Type")
    if kind not in SIGNED_FIELDS:
        raise SignatureError(f"Type: {kind!r} is not an SNS message type.")
    parts = []
    for name in SIGNED_FIELDS[kind]:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise SignatureError(f"{name}: the SNS message has no {name} to check the signature over.")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


def check_certificate_url(url) -> str:
    """``url`` when it names an Amazon SNS signing certificate; ``SignatureError`` otherwise."""
    if not isinstance(url, str):
        raise SignatureError("SigningCertURL: missing.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SignatureError(f"SigningCertURL: {url!r} is not a URL.") from exc
    if (
        parts.scheme != "https"
        or parts.username is not None
        or port not in (None, 443)
        or not CERTIFICATE_HOST.fullmatch(parts.hostname or "")
        or not parts.path.endswith(".pem")
        or parts.query
        or parts.fragment
    ):
        raise SignatureError(f"SigningCertURL: {url!r} is not an Amazon SNS certificate URL.")
    return url


def verify(message: dict) -> None:
    """Check the SNS ``message``'s signature; ``SignatureError`` when it is not Amazon's.

    Raises what the certificate fetch raises (``httpx.HTTPError``) when the certificate
    cannot be had: the request is then answered 503 and SNS delivers it again later.
    """
    hash_type = HASHES.get(str(message.get("SignatureVersion")))
    if hash_type is None:
        raise SignatureError(f"SignatureVersion: {message.get('SignatureVersion')!r} is not 1 or 2.")
    url = check_certificate_url(message.get("SigningCertURL"))
    try:
        signature = base64.b64decode(message.get("Signature") or "", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError("Signature: not base64.") from exc
    if not signature:
        raise SignatureError("Signature: missing.")
    signed = string_to_sign(message)
    try:
        certificate_key(url).verify(signature, signed, padding.PKCS1v15(), hash_type())
    except InvalidSignature as exc:
        raise SignatureError("Signature: the SNS message signature does not match.") from exc


def certificate_key(url: str) -> rsa.RSAPublicKey:
    """The public key of the certificate at ``url`` (checked), fetched once per process."""
    key = _keys.get(url)
    if key is not None:
        return key
    key = _load(_fetch(url), url)
    with _keys_lock:
        if len(_keys) >= MAX_CACHED:
            _keys.clear()
        _keys[url] = key
    return key


def _fetch(url: str) -> bytes:
    base = getattr(settings, "SNS_CERTIFICATE_BASE_URL", "") or ""
    where = base.rstrip("/") + urlsplit(url).path if base else url
    with httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client:
        response = client.get(where)
    if response.status_code != 200:
        raise httpx.HTTPStatusError(
            f"SNS certificate {url}: HTTP {response.status_code}", request=response.request, response=response
        )
    if len(response.content) > MAX_CERTIFICATE_BYTES:
        raise SignatureError(f"SigningCertURL: {url} is too large to be a certificate.")
    return response.content


def _load(pem: bytes, url: str) -> rsa.RSAPublicKey:
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError as exc:
        raise SignatureError(f"SigningCertURL: {url} is not a PEM certificate.") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError(f"SigningCertURL: {url} does not hold an RSA key.")
    return key


def forget_certificates() -> None:
    """Drop the fetched certificates (tests; a process picks them up again as needed)."""
    with _keys_lock:
        _keys.clear()
