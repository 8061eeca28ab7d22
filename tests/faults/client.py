"""Talk to a running app as the outside world does: platforms posting webhooks (many at once,
each answer timed), and a desk page holding its live websocket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import struct
import time
from dataclasses import dataclass

import httpx

from tests.faults.traffic import Delivery


@dataclass
class Answer:
    delivery: Delivery
    # The HTTP status, or 0 when no answer came (connection refused, reset, timeout).
    status: int
    seconds: float
    error: str = ""


async def _post_all(
    base_url: str,
    deliveries: list[Delivery],
    *,
    concurrency: int,
    rate: float | None,
    timeout: float,
) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(deliveries)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        semaphore = asyncio.Semaphore(concurrency)
        started = time.perf_counter()

        async def post(index: int, delivery: Delivery) -> None:
            if rate:
                # Open loop: the platform sends at its pace whatever our answers take.
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with semaphore:
                begin = time.perf_counter()
                try:
                    response = await client.post(
                        delivery.path, content=delivery.body, headers=delivery.headers
                    )
                    answers[index] = Answer(delivery, response.status_code, time.perf_counter() - begin)
                except httpx.HTTPError as exc:
                    answers[index] = Answer(
                        delivery, 0, time.perf_counter() - begin, f"{type(exc).__name__}: {exc}"
                    )

        await asyncio.gather(*(post(i, d) for i, d in enumerate(deliveries)))
    return [a for a in answers if a is not None]


def post_all(
    base_url: str,
    deliveries: list[Delivery],
    *,
    concurrency: int = 10,
    rate: float | None = None,
    timeout: float = 30.0,
) -> list[Answer]:
    """POST every delivery; ``rate`` (per second) spaces them out, ``concurrency`` caps those in flight."""
    return asyncio.run(_post_all(base_url, deliveries, concurrency=concurrency, rate=rate, timeout=timeout))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the inclusive method; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(max(int(q), 1), 99) - 1]


def summary(answers: list[Answer]) -> dict:
    seconds = [a.seconds for a in answers]
    statuses: dict[int, int] = {}
    for answer in answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    return {
        "requests": len(answers),
        "statuses": statuses,
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds, default=0) * 1000, 1),
    }


# --- a minimal websocket client (RFC 6455), enough to follow the desk's live socket -------------


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        header += bytes([0x80 | size])
    elif size < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", size)
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_handshake(port: int, session: str, key: str) -> bytes:
    return (
        f"GET /ws/desk/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
        f"Cookie: sessionid={session}\r\n\r\n"
    ).encode()


class DeskSocket:
    """The desk's websocket as a signed-in page opens it (blocking, with timeouts)."""

    def __init__(self, port: int, session: str, *, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(ws_handshake(port, session, base64.b64encode(os.urandom(16)).decode()))
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in self.status:
            self.sock.close()
            raise ConnectionError(f"websocket refused: {self.status}")

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def receive(self, timeout: float = 10.0) -> dict | None:
        """The next JSON message (pings answered); None when the server closed the socket.

        ``timeout`` bounds the whole wait: the server's pings do not extend it (raises
        ``TimeoutError``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message within {timeout} s")
            self.sock.settimeout(left)
            first, second = self._exactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._exactly(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._exactly(8))[0]
            data = self._exactly(size)
            opcode = first & 0x0F
            if opcode == 8:
                return None
            if opcode == 9:
                self.sock.sendall(ws_frame(10, data))
            elif opcode == 1:
                return json.loads(data)

    def send(self, message: dict) -> None:
        self.sock.sendall(ws_frame(1, json.dumps(message).encode()))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(ws_frame(8, struct.pack(">H", 1000)))
            self.sock.close()
