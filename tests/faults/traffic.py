"""Signed webhook traffic for every platform, in each platform's documented format.

Each builder returns a ``Delivery``: the channel slug it is posted to, the raw body,
the headers that sign it, and the id of the one customer message it carries, so a
test (or ``bench/load.py``) can count what it sent against what was stored. The
channels they are addressed to are made by ``tests.faults.stage`` with the secrets
below, read from the environment as Caseline reads every secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from urllib.parse import urlencode

# Secret roles -> environment variable names, and the values the app processes get.
SECRET_VALUES = {
    "CASELINE_FAULTS_X_CONSUMER_SECRET": "faults-x-consumer-secret",
    "CASELINE_FAULTS_X_ACCESS_TOKEN": "faults-x-access-token",
    "CASELINE_FAULTS_META_APP_SECRET": "faults-meta-app-secret",
    "CASELINE_FAULTS_META_ACCESS_TOKEN": "faults-meta-access-token",
    "CASELINE_FAULTS_META_VERIFY_TOKEN": "faults-meta-verify-token",
    "CASELINE_FAULTS_EMAIL_WEBHOOK_SECRET": "anymail:faults-basic-secret",
    "CASELINE_FAULTS_TWILIO_AUTH_TOKEN": "faults-twilio-auth-token",
}
X_SECRETS = {
    "consumer_secret": "CASELINE_FAULTS_X_CONSUMER_SECRET",
    "access_token": "CASELINE_FAULTS_X_ACCESS_TOKEN",
}
META_SECRETS = {
    "app_secret": "CASELINE_FAULTS_META_APP_SECRET",
    "access_token": "CASELINE_FAULTS_META_ACCESS_TOKEN",
    "verify_token": "CASELINE_FAULTS_META_VERIFY_TOKEN",
}
EMAIL_SECRETS = {"webhook_secret": "CASELINE_FAULTS_EMAIL_WEBHOOK_SECRET"}
PHONE_SECRETS = {"auth_token": "CASELINE_FAULTS_TWILIO_AUTH_TOKEN"}
# Twilio signs the full URL it called; the app processes are told this is their address.
PUBLIC_URL = "http://127.0.0.1:8000"

# The company's channels: kind -> (slug, our account id on the platform, secret roles).
CHANNELS = {
    "x": ("fx", "777", X_SECRETS),
    "facebook": ("ffb", "104000000000001", META_SECRETS),
    "instagram": ("fig", "17841400000000001", META_SECRETS),
    "whatsapp": ("fwa", "106540352242922", META_SECRETS),
    "email": ("fmail", "support@faults.test", EMAIL_SECRETS),
    "phone": ("fphone", "+14155550100", PHONE_SECRETS),
}
KINDS = tuple(CHANNELS)


def secret(role_map: dict[str, str], role: str) -> str:
    return SECRET_VALUES[role_map[role]]


@dataclass
class Delivery:
    kind: str
    slug: str
    body: bytes
    headers: dict[str, str]
    # The platform id of the customer message it carries ("" for none).
    external_id: str
    author: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/webhooks/{self.slug}/"


# --- signing -------------------------------------------------------------------------------


def x_signature(body: bytes) -> str:
    digest = hmac.new(secret(X_SECRETS, "consumer_secret").encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def meta_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(secret(META_SECRETS, "app_secret").encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(path: str, body: bytes) -> str:
    from urllib.parse import parse_qsl

    params = sorted(parse_qsl(body.decode().strip(), keep_blank_values=True))
    payload = PUBLIC_URL + path + "".join(name + value for name, value in params)
    token = secret(PHONE_SECRETS, "auth_token").encode()
    return base64.b64encode(hmac.new(token, payload.encode(), hashlib.sha1).digest()).decode("ascii")


def basic_auth() -> str:
    return "Basic " + base64.b64encode(secret(EMAIL_SECRETS, "webhook_secret").encode()).decode("ascii")


def signed(kind: str, body: bytes, *, content_type: str | None = None) -> Delivery:
    """Any body, signed correctly for the channel of ``kind`` (what a fuzzer needs)."""
    slug = CHANNELS[kind][0]
    headers: dict[str, str] = {}
    if kind == "x":
        headers = {
            "content-type": content_type or "application/json",
            "x-twitter-webhooks-signature": x_signature(body),
        }
    elif kind in ("facebook", "instagram", "whatsapp"):
        headers = {
            "content-type": content_type or "application/json",
            "x-hub-signature-256": meta_signature(body),
        }
    elif kind == "email":
        headers = {"content-type": content_type or "message/rfc822", "authorization": basic_auth()}
    elif kind == "phone":
        headers = {
            "content-type": content_type or "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_signature(f"/webhooks/{slug}/", body),
        }
    return Delivery(kind=kind, slug=slug, body=body, headers=headers, external_id="")


# --- one customer message per platform ------------------------------------------------------

_serial = itertools.count(1)


def _now_ms() -> int:
    return int(time.time() * 1000)


def x_dm(n: int, *, author: str, text: str) -> Delivery:
    dm_id = f"19{n:017d}"
    body = {
        "for_user_id": CHANNELS["x"][1],
        "direct_message_events": [
            {
                "type": "message_create",
                "id": dm_id,
                "created_timestamp": str(_now_ms()),
                "message_create": {
                    "target": {"recipient_id": CHANNELS["x"][1]},
                    "sender_id": author,
                    "message_data": {"text": text},
                },
            }
        ],
        "users": {author: {"id": author, "name": f"X customer {author}", "screen_name": f"xc{author}"}},
    }
    delivery = signed("x", json.dumps(body).encode())
    delivery.external_id, delivery.author = dm_id, author
    return delivery


def x_mention(n: int, *, author: str, text: str) -> Delivery:
    tweet_id = f"18{n:017d}"
    created = datetime.now(UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")
    body = {
        "for_user_id": CHANNELS["x"][1],
        "tweet_create_events": [
            {
                "created_at": created,
                "id_str": tweet_id,
                "text": f"@brand {text}",
                "user": {"id_str": author, "screen_name": f"xc{author}", "name": f"X customer {author}"},
            }
        ],
    }
    delivery = signed("x", json.dumps(body).encode())
    delivery.external_id, delivery.author = tweet_id, author
    return delivery


def messenger(n: int, *, author: str, text: str, kind: str = "facebook") -> Delivery:
    account = CHANNELS[kind][1]
    mid = f"m_faults_{kind}_{n}"
    now = _now_ms()
    body = {
        "object": "page" if kind == "facebook" else "instagram",
        "entry": [
            {
                "id": account,
                "time": now,
                "messaging": [
                    {
                        "sender": {"id": author},
                        "recipient": {"id": account},
                        "timestamp": now,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }
    delivery = signed(kind, json.dumps(body).encode())
    delivery.external_id, delivery.author = mid, author
    return delivery


def whatsapp(n: int, *, author: str, text: str) -> Delivery:
    wamid = f"wamid.faults{n:012d}"
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": CHANNELS["whatsapp"][1],
                            },
                            "contacts": [{"profile": {"name": f"WA customer {author}"}, "wa_id": author}],
                            "messages": [
                                {
                                    "from": author,
                                    "id": wamid,
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    delivery = signed("whatsapp", json.dumps(body).encode())
    delivery.external_id, delivery.author = wamid, author
    return delivery


def email(n: int, *, author: str, text: str, html: str = "", subject: str = "") -> Delivery:
    message_id = make_msgid(idstring=f"faults{n}", domain="customers.faults.test")
    headers = [
        f"From: Mail customer <{author}>",
        f"To: Support <{CHANNELS['email'][1]}>",
        f"Subject: {subject or f'Order problem {n}'}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if html:
        boundary = f"=-faults-{n}"
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        raw = (
            "\r\n".join(headers)
            + "\r\n\r\n"
            + (
                f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
                f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
                f"--{boundary}--\r\n"
            )
        )
    else:
        headers.append("Content-Type: text/plain; charset=utf-8")
        raw = "\r\n".join(headers) + "\r\n\r\n" + text + "\r\n"
    delivery = signed("email", raw.encode())
    delivery.external_id, delivery.author = message_id.strip("<>"), author
    return delivery


def phone(n: int, *, author: str, text: str = "") -> Delivery:
    call_sid = f"CA{n:032d}"
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "CallStatus": "completed",
        "Direction": "inbound",
        "From": author,
        "To": CHANNELS["phone"][1],
        "CallerName": "Phone customer",
        "CallDuration": "42",
        "Timestamp": format_datetime(datetime.now(UTC)),
    }
    delivery = signed("phone", urlencode(form).encode())
    delivery.external_id, delivery.author = call_sid, author
    return delivery


def customer_message(kind: str, n: int, *, text: str | None = None, customer: int | None = None) -> Delivery:
    """One message from customer number ``customer`` (default: a new one per ``n``) on ``kind``."""
    who = n if customer is None else customer
    text = text if text is not None else f"Message {n}: my order has not arrived"
    if kind == "x":
        return (x_dm if n % 2 else x_mention)(n, author=str(5_000_000 + who), text=text)
    if kind in ("facebook", "instagram"):
        return messenger(n, author=str(7_000_000_000 + who), text=text, kind=kind)
    if kind == "whatsapp":
        return whatsapp(n, author=f"1650{who % 10_000_000:07d}", text=text)
    if kind == "email":
        return email(n, author=f"customer{who}@mail.faults.test", text=text)
    if kind == "phone":
        return phone(n, author=f"+1415{(2_000_000 + who) % 10_000_000:07d}")
    raise ValueError(f"unknown kind {kind!r}")


def mixed(count: int, *, start: int | None = None, kinds=KINDS) -> list[Delivery]:
    """``count`` deliveries spread over the platforms, each a new message with a unique id."""
    first = next(_serial) * 1_000_000 if start is None else start
    return [customer_message(kinds[i % len(kinds)], first + i) for i in range(count)]
