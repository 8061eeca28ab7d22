"""Helpers for connector tests: documented webhook bodies, X's signature, a fake X API."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from connectors import x
from tests.corpus import CORPUS  # noqa: F401  (the connector tests import it from here)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

X_SECRET_ENV = {
    "consumer_secret": "CASELINE_TEST_X_CONSUMER_SECRET",
    "access_token": "CASELINE_TEST_X_ACCESS_TOKEN",
}
X_CONSUMER_SECRET = "test-consumer-secret-not-real"
X_ACCESS_TOKEN = "test-access-token-not-real"


def fixture_bytes(topic: str, name: str) -> bytes:
    return (FIXTURES / topic / name).read_bytes()


def fixture_json(topic: str, name: str) -> dict:
    return json.loads(fixture_bytes(topic, name))


def post_x_webhook(
    client, channel, body: bytes, *, secret: str = X_CONSUMER_SECRET, signature: str | None = None
):
    """POST ``body`` to the channel's webhook the way X does, signed with ``secret``."""
    headers = {"HTTP_X_TWITTER_WEBHOOKS_SIGNATURE": signature or x.signature(secret, body)}
    if signature == "":
        headers = {}
    return client.post(
        f"/webhooks/{channel.slug}/",
        data=body,
        content_type="application/json; charset=utf-8",
        **headers,
    )


class FakeAPI:
    """A real HTTP server on 127.0.0.1 answering from a queue of canned responses.

    Each request is recorded (method, path, headers, JSON body). ``respond`` queues
    (status, headers, body) answers; with the queue empty it answers 500.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.responses: deque = deque()
        self.delay = 0.0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                api.requests.append(
                    {
                        "method": "POST",
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(raw) if raw else None,
                    }
                )
                if api.delay:
                    threading.Event().wait(api.delay)
                status, headers, body = (
                    api.responses.popleft() if api.responses else (500, {}, {"title": "empty"})
                )
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def respond(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        self.responses.append((status, headers or {}, body if body is not None else {}))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
