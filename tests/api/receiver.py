"""A webhook receiver on 127.0.0.1 (plain or TLS): records every POST and answers with scripted
statuses. And a fake network, so a test decides what a name resolves to and what answers where."""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # (status, extra headers) answered in turn; when empty, 200.
    script: deque = field(default_factory=deque)
    # The server names clients asked for in their TLS handshakes (SNI).
    server_names: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    def answer(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        for status in statuses:
            self.script.append((status, headers or {}))


def start_receiver(*, certificate: tuple[Path, Path] | None = None) -> tuple[Receiver, ThreadingHTTPServer]:
    """Serve on a free port of 127.0.0.1; over TLS with ``certificate`` (cert file, key file)."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server hook name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status, headers = receiver.script.popleft() if receiver.script else (200, {})
            payload = b'{"ok": true}' if status < 300 else b"receiver says no " + b"x" * 5000
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if certificate:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        context.sni_callback = lambda _sock, name, _context: receiver.server_names.append(name)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    receiver.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks/caseline"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return receiver, server


def self_signed_certificate(name: str, directory: Path) -> tuple[Path, Path]:
    """A certificate for ``name`` (and no IP address), its own issuer: (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "receiver.crt", directory / "receiver.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class FakeNetwork:
    """``socket.getaddrinfo`` and ``socket.create_connection`` as a test arranges them.

    ``answers[name]`` are the resolver's answers to successive lookups of ``name`` (the last
    one repeats; an answer is an address or a tuple of them); other names resolve for real.
    ``routes[address]`` is the local address that stands in for ``address``; connecting to
    any other public address is refused, so nothing leaves this machine. ``lookups`` records
    every lookup of an answered name, ``connects`` every connection asked for that is not
    straight to a loopback address (host as asked, port).
    """

    def __init__(self, monkeypatch):
        self.answers: dict[str, list] = {}
        self.routes: dict[str, str] = {}
        self.lookups: list[str] = []
        self.connects: list[tuple[str, int]] = []
        self._getaddrinfo = socket.getaddrinfo
        self._create_connection = socket.create_connection
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", self.create_connection)

    def getaddrinfo(self, host, port, *args, **kwargs):
        if host not in self.answers:
            return self._getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(host)
        answers = self.answers[host]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port or 0))
            for address in (answer if isinstance(answer, tuple) else (answer,))
        ]

    def create_connection(self, address, *args, **kwargs):
        host, port = address[:2]
        if host not in ("127.0.0.1", "::1"):
            self.connects.append((host, port))
        # a name is resolved here, as the real create_connection would (its first address)
        ip = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
        ip = self.routes.get(ip, ip)
        if ipaddress.ip_address(ip).is_global:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"nothing answers at {ip} in the tests")
        return self._create_connection((ip, port), *args, **kwargs)
