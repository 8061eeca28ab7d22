"""Acknowledgement through daphne or uvicorn, for ``bench/ingest.py --ack-server``: the stream
as raw HTTP/1.1 requests sent on keep-alive connections by one asyncio client process, with
latencies, status codes, the CPU the servers and their PostgreSQL backends spent per
webhook, and the messages left on the bench's broker queue.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time

from _ingest_stream import QUEUE
from _machine import _backend_cpu_seconds, _servers_cpu_seconds

# --- acknowledgement through daphne ----------------------------------------------------------


def _raw_request(request: dict) -> bytes:
    """The HTTP/1.1 bytes of one stream request (its WSGI-style ``HTTP_*`` headers spelt out)."""
    lines = [
        f"POST {request['path']} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {request['content_type']}",
        f"Content-Length: {len(request['body'])}",
    ]
    for key, value in request["headers"].items():
        name = "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_"))
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request["body"]


async def _http_connection(port: int, raw: list[bytes], latencies: list[float], statuses: dict) -> None:
    """Send ``raw`` requests one after the other on one keep-alive connection."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in raw:
            began = time.perf_counter()
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            length, chunked = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            elif length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            code = int(head.split(b" ", 2)[1])
            statuses[code] = statuses.get(code, 0) + 1
            if head.lower().find(b"connection: close") >= 0:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def _http_loader(port: int, raw: list[bytes], concurrency: int, out) -> None:
    import asyncio

    latencies: list[float] = []
    statuses: dict = {}

    async def run() -> None:
        await asyncio.gather(
            *(_http_connection(port, raw[i::concurrency], latencies, statuses) for i in range(concurrency))
        )

    cpu = time.process_time()
    asyncio.run(run())
    out.send({"latencies": latencies, "statuses": statuses, "cpu": time.process_time() - cpu})


def acknowledge_daphne(requests: list[dict], servers: int, concurrency: int, server: str = "daphne") -> dict:
    """POST the stream to daphne (``config.asgi:application``, as in production) on 127.0.0.1:
    ``servers`` processes on one socket, ``concurrency`` keep-alive connections from one
    asyncio client process. ``server="uvicorn"`` serves the same app with uvicorn instead."""
    from django.db import connections

    from tests.faults import servers as fault_servers

    env = {k: v for k, v in os.environ.items() if k != "DB_POOL"}
    env.update({"FAULTS_ASGI": "config.asgi:application", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
    if server == "uvicorn":
        daphnes, port = fault_servers.start_uvicorn(env, processes=servers, log_level="info")
    else:
        daphnes, port = fault_servers.start_daphne(env, processes=servers, access_log=False)
    try:
        raw = [_raw_request(r) for r in requests]
        # Warm each process up (imports, connections), outside the measurement.
        warm: dict = {}
        import asyncio

        asyncio.run(
            _http_connection(
                port,
                [b"GET /webhooks/bench-x/?crc_token=warm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] * 20,
                [],
                warm,
            )
        )
        connections.close_all()
        server_cpu = _servers_cpu_seconds(daphnes)
        db_cpu = _backend_cpu_seconds()
        connections.close_all()
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        began = time.perf_counter()
        proc = ctx.Process(target=_http_loader, args=(port, raw, concurrency, child))
        proc.start()
        result = parent.recv()
        proc.join()
        elapsed = time.perf_counter() - began
        server_cpu = _servers_cpu_seconds(daphnes) - server_cpu
        db_cpu = _backend_cpu_seconds() - db_cpu
        connections.close_all()
    finally:
        for process in daphnes:
            process.stop()
    latencies = sorted(result["latencies"])
    n = len(requests)
    return {
        "webhooks": n,
        "server": server,
        "servers": servers,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "per_second": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(result["statuses"].items())},
        # CPU per acknowledged webhook: daphne processes, their PostgreSQL backends, and the
        # load generator (which shares the machine). cores * 1000 / server+db is what two
        # idle cores would reach without the client.
        "cpu_ms_per_webhook": {
            "daphne": round(server_cpu * 1000 / n, 3),
            "postgres": round(db_cpu * 1000 / n, 3),
            "client": round(result["cpu"] * 1000 / n, 3),
        },
        "idle_machine_estimate_per_second": round(
            (os.cpu_count() or 1) * n / max(server_cpu + db_cpu, 1e-9), 1
        ),
        "broker_messages": _queue_length(),
    }


def _queue_length() -> int:
    from config.celery import app

    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(QUEUE, passive=True).message_count
        except conn.channel_errors:  # on Redis an empty queue is no key at all
            return 0
