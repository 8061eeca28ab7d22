"""A stand-in for Meta's Graph API on 127.0.0.1, speaking its JSON and its error format.

It records every request (method, path, headers, JSON body) and answers either from a
queue of scripted replies or, by default, as the Graph API answers a successful send:
``/me/messages`` -> ``{"recipient_id", "message_id"}``, ``/{comment-id}/comments`` and
``/replies`` -> ``{"id"}``, ``/{phone-number-id}/messages`` -> WhatsApp's
``{"messaging_product", "contacts", "messages": [{"id"}]}``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None


@dataclass
class Reply:
    status: int = 200
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering (for client timeouts).
    delay: float = 0.0


class FakeGraph:
    """Start with ``with FakeGraph() as graph:``; point a channel's api_base_url at ``graph.url``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGraph:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- scripting ---------------------------------------------------------------------------

    def reply(self, status: int = 200, body: dict | str | None = None, *, headers=None, delay=0.0) -> None:
        """Answer the next request with this (replies are used in order, then defaults)."""
        self.replies.append(Reply(status, body, headers or {}, delay))

    def error(
        self,
        status: int,
        message: str,
        code: int,
        *,
        type: str = "OAuthException",
        subcode: int | None = None,
        headers=None,
    ) -> None:
        """Answer the next request with a Graph error body."""
        error = {"message": message, "type": type, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
        if subcode is not None:
            error["error_subcode"] = subcode
        self.reply(status, {"error": error}, headers=headers)

    # --- serving -----------------------------------------------------------------------------

    def _default(self, path: str, body: dict | None) -> Reply:
        n = next(self._ids)
        parts = path.strip("/").split("/")
        if len(parts) != 3:
            return Reply(400, _error("Unknown path components: " + path, 2500))
        _, node, edge = parts
        if node == "me" and edge == "messages":
            recipient = ((body or {}).get("recipient") or {}).get("id", "")
            return Reply(200, {"recipient_id": recipient, "message_id": f"m_fake{n:04d}"})
        if edge in ("comments", "replies"):
            return Reply(200, {"id": f"{node.split('_')[0]}_{990000 + n}"})
        if edge == "messages":
            to = (body or {}).get("to", "")
            return Reply(
                200,
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": f"wamid.FAKE{n:04d}"}],
                },
            )
        return Reply(400, _error(f"Unsupported post request. Object with ID '{node}' does not exist", 100))

    def _handler(self):
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with graph._lock:
                    graph.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
                    reply = graph.replies.pop(0) if graph.replies else graph._default(self.path, body)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body or {})
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format, *args):
                pass

        return Handler


def _error(message: str, code: int) -> dict:
    return {"error": {"message": message, "type": "GraphMethodException", "code": code, "fbtrace_id": "Zz"}}
