"""What ``bench/ingest.py`` sends: the bench's channels' names and secrets, and the stream of
N signed webhook requests of every platform (X tweets and DMs, Messenger, WhatsApp, raw
e-mails, Twilio calls), 30% of them continuing a conversation begun earlier in the stream.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlencode

QUEUE = "caseline-bench-ingest"
PUBLIC_URL = "https://care.bench.example"

SECRETS = {
    "CASELINE_BENCH_X_CONSUMER_SECRET": "bench-x-consumer-secret",
    "CASELINE_BENCH_META_APP_SECRET": "bench-meta-app-secret",
    "CASELINE_BENCH_MAIL_WEBHOOK": "inbound:bench-mail-password",
    "CASELINE_BENCH_TWILIO_TOKEN": "bench-twilio-token",
}
X_ACCOUNT, PAGE_ID, WA_NUMBER_ID = "777000", "104000000000777", "106540352240777"
MAILBOX, PHONE_NUMBER = "support@bench.example", "+14155550100"
# Share of each platform in the stream.
MIX = {"x_tweet": 25, "x_dm": 15, "messenger": 15, "whatsapp": 20, "email": 15, "call": 10}
TEXTS = [
    "my router has been dead since Monday and nobody answers the phone",
    "I was charged twice this month, I want a refund",
    "thanks, the engineer was great!",
    "how do I change the billing address on my account?",
    "still no signal in the whole street, is there an outage?",
    "this is the third time I write, cancel my contract please",
    "the app keeps logging me out",
    "what a terrible service, never again",
    "can you send me the invoice for March?",
    "parcel arrived damaged, box was soaked",
]


# --- payloads ---------------------------------------------------------------------------------


class Stream:
    """N signed webhook requests of every platform; 30% continue an earlier conversation."""

    def __init__(self, n: int, *, seed: int, tag: str, reply_share: float = 0.3):
        self.rng = random.Random(seed)
        self.tag = tag
        self.n = n
        self.reply_share = reply_share
        self.seq = 0
        self.started: dict[str, list[dict]] = {kind: [] for kind in MIX}
        self.now = datetime.now(UTC) - timedelta(minutes=30)

    def _id(self) -> int:
        self.seq += 1
        return self.seq

    def _at(self) -> datetime:
        self.now += timedelta(milliseconds=50)
        return self.now

    def requests(self) -> list[dict]:
        kinds, weights = zip(*MIX.items(), strict=True)
        out = []
        for _ in range(self.n):
            kind = self.rng.choices(kinds, weights)[0]
            parent = None
            if self.started[kind] and self.rng.random() < self.reply_share:
                parent = self.rng.choice(self.started[kind][-2000:])
            request, thread = getattr(self, f"_{kind}")(parent)
            if parent is None:
                self.started[kind].append(thread)
            out.append(request)
        return out

    def _text(self) -> str:
        return f"{self.rng.choice(TEXTS)} ({self.tag}-{self.seq})"

    def _x_tweet(self, parent):
        at, n = self._at(), self._id()
        author = parent["author"] if parent else f"{self.tag}x{n}"
        tweet = {
            "created_at": at.strftime("%a %b %d %H:%M:%S +0000 %Y"),
            "id_str": f"{self.tag}{n}",
            "text": f"@brand {self._text()}",
            "user": {
                "id_str": author,
                "name": f"Person {author}",
                "screen_name": f"p{author}",
                "followers_count": self.rng.choice([12, 150, 1200, 25000]),
                "verified": False,
            },
        }
        if parent:
            tweet["in_reply_to_status_id_str"] = parent["last"]
            tweet["in_reply_to_user_id_str"] = X_ACCOUNT
        body = json.dumps({"for_user_id": X_ACCOUNT, "tweet_create_events": [tweet]}).encode()
        thread = {"author": author, "last": tweet["id_str"]}
        return _x_request(body), thread

    def _x_dm(self, parent):
        at, n = self._at(), self._id()
        author = parent["author"] if parent else f"{self.tag}d{n}"
        event = {
            "type": "message_create",
            "id": f"{self.tag}{n}",
            "created_timestamp": str(int(at.timestamp() * 1000)),
            "message_create": {
                "target": {"recipient_id": X_ACCOUNT},
                "sender_id": author,
                "message_data": {"text": self._text()},
            },
        }
        users = {author: {"id": author, "name": f"Person {author}", "screen_name": f"p{author}"}}
        body = json.dumps(
            {"for_user_id": X_ACCOUNT, "direct_message_events": [event], "users": users}
        ).encode()
        return _x_request(body), {"author": author}

    def _messenger(self, parent):
        at, n = self._at(), self._id()
        psid = parent["author"] if parent else f"{self.tag}m{n}"
        message = {"mid": f"m_{self.tag}{n}", "text": self._text()}
        if parent:
            message["reply_to"] = {"mid": parent["last"]}
        ms = int(at.timestamp() * 1000)
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": PAGE_ID,
                        "time": ms,
                        "messaging": [
                            {
                                "sender": {"id": psid},
                                "recipient": {"id": PAGE_ID},
                                "timestamp": ms,
                                "message": message,
                            }
                        ],
                    }
                ],
            }
        ).encode()
        return _meta_request("bench-messenger", body), {"author": psid, "last": message["mid"]}

    def _whatsapp(self, parent):
        at, n = self._at(), self._id()
        wa_id = parent["author"] if parent else str(15550000000 + n)
        message = {
            "from": wa_id,
            "id": f"wamid.{self.tag}{n}",
            "timestamp": str(int(at.timestamp())),
            "type": "text",
            "text": {"body": self._text()},
        }
        if parent:
            message["context"] = {"from": "15550783881", "id": parent["last"]}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Person {wa_id}"}, "wa_id": wa_id}],
            "messages": [message],
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340777", "changes": [{"value": value, "field": "messages"}]}],
            }
        ).encode()
        return _meta_request("bench-whatsapp", body), {"author": wa_id, "last": message["id"]}

    def _email(self, parent):
        at, n = self._at(), self._id()
        address = parent["author"] if parent else f"{self.tag}.{n}@customers.example"
        mail = EmailMessage()
        mail["From"] = f"Person {n} <{address}>"
        mail["To"] = MAILBOX
        mail["Subject"] = ("Re: " + parent["subject"]) if parent else f"Help needed {self.tag}-{n}"
        mail["Date"] = format_datetime(at)
        mail["Message-ID"] = make_msgid(idstring=f"{self.tag}{n}", domain="customers.example")
        if parent:
            mail["In-Reply-To"] = parent["last"]
            mail["References"] = " ".join(parent["refs"] + [parent["last"]])
        mail.set_content(f"Hello,\n\n{self._text()}\n\nRegards,\nPerson {n}\n")
        raw = mail.as_bytes()
        thread = {
            "author": address,
            "last": mail["Message-ID"],
            "refs": (parent["refs"] + [parent["last"]]) if parent else [],
            "subject": mail["Subject"] if not parent else parent["subject"],
        }
        auth = base64.b64encode(SECRETS["CASELINE_BENCH_MAIL_WEBHOOK"].encode()).decode()
        request = {
            "path": "/webhooks/bench-mail/",
            "body": raw,
            "content_type": "message/rfc822",
            "headers": {"HTTP_AUTHORIZATION": f"Basic {auth}"},
        }
        return request, thread

    def _call(self, parent):
        at, n = self._at(), self._id()
        number = parent["author"] if parent else f"+1415{(2000000 + n) % 10_000_000:07d}"
        duration = self.rng.randint(20, 900)
        params = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": f"CA{self.tag}{n:030d}"[:34],
            "CallStatus": "completed",
            "Direction": "inbound",
            "From": number,
            "To": PHONE_NUMBER,
            "CallDuration": str(duration),
            "Timestamp": format_datetime(at + timedelta(seconds=duration)),
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE{self.tag}{n}",
        }
        body = urlencode(params).encode()
        path = "/webhooks/bench-phone/"
        from connectors import voice

        sig = voice.signature(
            SECRETS["CASELINE_BENCH_TWILIO_TOKEN"], PUBLIC_URL + path, sorted(params.items())
        )
        request = {
            "path": path,
            "body": body,
            "content_type": "application/x-www-form-urlencoded",
            "headers": {"HTTP_X_TWILIO_SIGNATURE": sig},
        }
        return request, {"author": number}


def _x_request(body: bytes) -> dict:
    from connectors import x

    return {
        "path": "/webhooks/bench-x/",
        "body": body,
        "content_type": "application/json",
        "headers": {
            "HTTP_X_TWITTER_WEBHOOKS_SIGNATURE": x.signature(
                SECRETS["CASELINE_BENCH_X_CONSUMER_SECRET"], body
            )
        },
    }


def _meta_request(slug: str, body: bytes) -> dict:
    from connectors import meta

    return {
        "path": f"/webhooks/{slug}/",
        "body": body,
        "content_type": "application/json",
        "headers": {
            "HTTP_X_HUB_SIGNATURE_256": meta.signature(body, SECRETS["CASELINE_BENCH_META_APP_SECRET"])
        },
    }
