"""The outside world of an end-to-end test: the app's processes, the platforms' webhooks, the
agent's browser.

- ``start_app``: a daphne process serving ``config.asgi:application`` and a Celery worker
  (solo pool) on the test database and Redis, with a channel layer prefix and a Celery queue
  of their own, the platforms' secrets of ``tests.faults.traffic`` in their environment.
- ``tweet``, ``direct_message``, ``email``, ``call``: one customer message each, in the
  platform's documented webhook format, signed as the platform signs it (through
  ``tests.faults.traffic.signed``), with the time the platform would give it.
- ``Desk``: the agent's browser on the desk pages: the session cookie, the CSRF token the
  pages hand out, and htmx's request header (so a refusal answers with its status).
- ``Pushes``: a desk socket (``tests.faults.client.DeskSocket``) with every frame it was sent
  kept, in order.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.db import connection

from tests.faults import servers, traffic
from tests.faults.client import DeskSocket
from tests.faults.traffic import Delivery

X_ACCOUNT = traffic.CHANNELS["x"][1]
SUPPORT_ADDRESS = traffic.CHANNELS["email"][1]
PHONE_LINE = traffic.CHANNELS["phone"][1]
TWEET_TIME_FORMAT = "%a %b %d %H:%M:%S +0000 %Y"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- the app's processes ------------------------------------------------------------------------


def database_url() -> str:
    """The test database (once pytest-django has made it), as the app's processes are told it."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class App:
    base_url: str
    port: int
    web: servers.AppProcess
    worker: servers.AppProcess
    processes: list[servers.AppProcess] = field(default_factory=list)

    def report(self) -> str:
        return "\n\n".join(f"--- {p.name} ---\n" + "\n".join(list(p.lines)[-80:]) for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_app(*, tag: str | None = None) -> App:
    """daphne and a Celery worker on the test database and Redis, started side by side."""
    tag = tag or uuid.uuid4().hex[:8]
    queue = f"cl-e2e-{tag}"
    env = servers.app_env(
        database_url=database_url(),
        redis_url=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,  # the session signed in here is read there
        CHANNEL_LAYER_PREFIX=f"cl-e2e-{tag}",
        CELERY_QUEUE=queue,
        PUBLIC_URL=traffic.PUBLIC_URL,  # the address Twilio signs
        LOG_LEVEL="WARNING",
        **traffic.SECRET_VALUES,
    )
    port = servers.free_port()
    web = servers.AppProcess(
        "daphne",
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        env,
    )
    started = [web]
    try:
        worker = servers.start_worker({**env, "LOG_LEVEL": "INFO"}, queue=queue, name=f"e2e-{tag}")
        started.append(worker)
        servers.wait_for(
            lambda: servers.port_open(port) or not web.alive(), timeout=60, what="daphne to listen"
        )
        if not web.alive():
            raise RuntimeError("daphne did not start:\n" + web.output)
    except BaseException:
        for process in started:
            process.stop()
        raise
    return App(base_url=f"http://127.0.0.1:{port}", port=port, web=web, worker=worker, processes=started)


def deliver(app: App, delivery: Delivery) -> None:
    """POST a platform's webhook to the app; it must be acknowledged with 200."""
    answer = httpx.post(
        app.base_url + delivery.path, content=delivery.body, headers=delivery.headers, timeout=30
    )
    assert answer.status_code == 200, f"{delivery.kind} webhook answered {answer.status_code}: {answer.text}"


# --- the platforms' webhooks ------------------------------------------------------------------------


def whole_second_after(moment: datetime, *, deadline: float = 5.0) -> datetime:
    """The first whole second of the wall clock after ``moment``, once the clock has reached it.

    X's post times, e-mail ``Date`` headers and Twilio's ``Timestamp`` have whole seconds: a
    message written after ``moment`` carries a time after it only from the next second on.
    """
    target = moment.replace(microsecond=0) + timedelta(seconds=1)
    limit = time.monotonic() + deadline
    while datetime.now(UTC) < target:
        assert time.monotonic() < limit, f"the clock did not reach {target.isoformat()}"
        time.sleep(0.02)
    return target


def tweet(*, tweet_id: str, author: str, handle: str, name: str, text: str, at: datetime) -> Delivery:
    """An Account Activity ``tweet_create_events`` delivery: a public post mentioning us."""
    body = {
        "for_user_id": X_ACCOUNT,
        "tweet_create_events": [
            {
                "created_at": at.astimezone(UTC).strftime(TWEET_TIME_FORMAT),
                "id_str": tweet_id,
                "text": text,
                "user": {"id_str": author, "screen_name": handle, "name": name, "followers_count": 230},
            }
        ],
    }
    return _signed("x", json.dumps(body).encode(), tweet_id)


def direct_message(*, dm_id: str, author: str, handle: str, name: str, text: str, at: datetime) -> Delivery:
    """An Account Activity ``direct_message_events`` delivery, with its ``users`` map."""
    body = {
        "for_user_id": X_ACCOUNT,
        "direct_message_events": [
            {
                "type": "message_create",
                "id": dm_id,
                "created_timestamp": str((at - EPOCH) // timedelta(milliseconds=1)),
                "message_create": {
                    "target": {"recipient_id": X_ACCOUNT},
                    "sender_id": author,
                    "message_data": {"text": text},
                },
            }
        ],
        "users": {author: {"id": author, "name": name, "screen_name": handle}},
    }
    return _signed("x", json.dumps(body).encode(), dm_id)


def email(
    *, message_id: str, sender: str, name: str, subject: str, text: str, at: datetime, headers: tuple = ()
) -> Delivery:
    """A raw RFC 5322 message to the support address, on the plain door: ``message/rfc822``
    with the ESP's basic-auth secret. ``headers`` are extra header lines (``References: ...``)."""
    lines = [
        f"From: {name} <{sender}>",
        f"To: Support <{SUPPORT_ADDRESS}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(at.astimezone(UTC))}",
        f"Message-ID: <{message_id}>",
        *headers,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    raw = "\r\n".join(lines) + "\r\n\r\n" + text.replace("\n", "\r\n") + "\r\n"
    return _signed("email", raw.encode(), message_id)


def call(*, call_sid: str, caller: str, caller_name: str, started: datetime, seconds: int) -> Delivery:
    """Twilio's status callback for a finished inbound call (sent when it ends)."""
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "CallStatus": "completed",
        "Direction": "inbound",
        "From": caller,
        "To": PHONE_LINE,
        "CallerName": caller_name,
        "CallDuration": str(seconds),
        "Timestamp": format_datetime((started + timedelta(seconds=seconds)).astimezone(UTC)),
    }
    return _signed("phone", urlencode(form).encode(), call_sid)


def _signed(kind: str, body: bytes, external_id: str) -> Delivery:
    delivery = traffic.signed(kind, body)
    delivery.external_id = external_id
    return delivery


# --- the agent's browser ------------------------------------------------------------------------


class Desk:
    """The desk pages as a signed-in browser uses them, htmx included."""

    def __init__(self, app: App, session_key: str):
        self.app = app
        self.http = httpx.Client(base_url=app.base_url, timeout=30, follow_redirects=False)
        self.http.cookies.set(settings.SESSION_COOKIE_NAME, session_key, domain="127.0.0.1")

    def page(self, path: str) -> str:
        answer = self.http.get(path)
        assert answer.status_code == 200, f"GET {path} answered {answer.status_code}"
        return answer.text

    def post(self, path: str, data: dict | None = None) -> httpx.Response:
        """A form the page posts through htmx, with the CSRF token the pages hand out."""
        token = self.http.cookies.get(settings.CSRF_COOKIE_NAME, domain="127.0.0.1")
        assert token, "no CSRF cookie yet: open a desk page first"
        answer = self.http.post(
            path,
            data=data or {},
            headers={"X-CSRFToken": token, "HX-Request": "true", "Origin": self.app.base_url},
        )
        assert answer.status_code == 200, f"POST {path} answered {answer.status_code}: {_notice(answer.text)}"
        return answer

    def close(self) -> None:
        self.http.close()


def _notice(html: str) -> str:
    """The page's flash messages (what a refusal says), else the start of the page."""
    found = re.findall(r'class="[^"]*\bmsg[^"]*"[^>]*>(.*?)<', html, re.S)
    return " | ".join(m.strip() for m in found) or html[:500]


# --- the agent's socket ---------------------------------------------------------------------------


class Pushes:
    """A desk socket held open, with every frame it is sent kept in the order it came."""

    def __init__(self, app: App, session_key: str):
        self.socket = DeskSocket(app.port, session_key)
        self.frames: list[dict] = []
        self.closed = False

    def send(self, message: dict) -> None:
        self.socket.send(message)

    def until(self, wanted, *, what: str, timeout: float = 15.0) -> dict:
        """Read frames until one satisfies ``wanted`` (every frame read is kept); that frame."""
        for frame in self.frames:
            if frame.get("_taken") is None and wanted(frame):
                frame["_taken"] = True
                return frame
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no push of {what} within {timeout:.0f} s; got {self.kinds()}")
            try:
                frame = self.socket.receive(timeout=left)
            except TimeoutError:
                continue
            if frame is None:
                self.closed = True
                raise AssertionError(f"the socket was closed while waiting for {what}")
            self.frames.append(frame)
            if wanted(frame):
                frame["_taken"] = True
                return frame

    def kinds(self) -> list[str]:
        return [f"{f.get('type')}:{f.get('id', f.get('target', ''))}@{f.get('seq')}" for f in self.frames]

    def close(self) -> None:
        self.socket.close()
