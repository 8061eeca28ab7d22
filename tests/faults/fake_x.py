"""A fake X API v2 on 127.0.0.1 that fails as scripted, then recovers.

Each POST takes the next step of the script: ``(status, headers)`` answers with that
status (201 with a new post id once it succeeds), ``"drop"`` closes the connection
without an answer (what a crashed upstream or a dead load balancer does). With the
script used up, every request succeeds. Every request is recorded, so a test can count
how many times a reply reached X.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeX:
    def __init__(self, script=()):
        self.script: deque = deque(script)
        self.requests: list[dict] = []
        self.posted: list[dict] = []
        self._ids = itertools.count(1_900_000_000_000_000_000)
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with api._lock:
                    step = api.script.popleft() if api.script else (201, {})
                    api.requests.append(
                        {"path": self.path, "json": json.loads(raw or b"null"), "answer": step}
                    )
                if step == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status, headers = step
                if status < 300:
                    post_id = str(next(api._ids))
                    with api._lock:
                        api.posted.append({"id": post_id, "json": json.loads(raw or b"null")})
                    body = {"data": {"id": post_id, "text": "posted"}}
                else:
                    body = {"title": "Service Unavailable", "detail": f"scripted {status}", "status": status}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
