#!/usr/bin/env python
"""Load: one hour of a busy day compressed into a few minutes, against the real stack.

Starts its own PostgreSQL cluster and Redis (throwaway, free ports; the machine's shared
ones are never touched), uvicorn on 127.0.0.1 (``--daphne`` processes sharing one socket,
webhooks through the fast path), ``--workers`` Celery workers and a fake platform API
that takes every reply. Then, at once:

- inbound: signed webhooks from every platform at ``--rate`` messages a second for
  ``--duration`` seconds, open loop (platforms do not wait for us), a share of them
  (``--returning``) from customers who already wrote, so they thread into open cases;
- agents: ``--agents`` signed-in agents (spread over ``--departments``) list their cases
  over the API, open the queue and a case page, and reply over the API;
- sockets: ``--sockets`` live desk websockets (spread over the agents) that follow their
  department queue and count what is pushed to them.

Afterwards it waits for the workers to drain the inbox and checks that every message
acknowledged with a 200 ended on exactly one case. Figures go to stdout and to
``bench/results/load-<time>.json``: requests per second and p50/p95/p99 per endpoint,
errors, sockets held, pushes received, processing throughput and the integrity check.

    .venv/bin/python bench/load.py                        # 200/s for 30 s, 50 agents, 1,000 sockets
    .venv/bin/python bench/load.py --rate 100 --duration 60 --sockets 500

The per-endpoint figures (``Timings``, ``merge``, ``table``) are in ``bench/_load_figures.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

from _load_figures import Timings, merge, table  # noqa: E402

from tests.faults import servers, traffic  # noqa: E402
from tests.faults.client import percentile, ws_frame, ws_handshake  # noqa: E402

FIRST_MESSAGE = 10_000_000
REPLY_KINDS = {"x", "facebook", "instagram", "whatsapp", "email"}
# Requests one inbound generator keeps in flight; more wait their turn (and are late).
IN_FLIGHT = 64


# --- a platform API that takes every reply ------------------------------------------------------


class FakePlatforms:
    """Answers every POST as X (``data.id``), Messenger (``message_id``), WhatsApp
    (``messages[0].id``) and comments (``id``) would, and counts them."""

    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        platforms = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with platforms.lock:
                    platforms.count += 1
                    n = platforms.count
                body = json.dumps(
                    {
                        "data": {"id": str(10**18 + n)},
                        "id": f"c_{n}",
                        "message_id": f"m_{n}",
                        "messages": [{"id": f"wamid.{n}"}],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


# --- inbound ----------------------------------------------------------------------------------------


def inbound_process(
    base_url: str,
    rate: float,
    duration: float,
    returning: float,
    start_at: float,
    shard: int,
    shards: int,
    out,
) -> None:
    """Post this shard's share of the deliveries on schedule (open loop), at most
    ``IN_FLIGHT`` at once; a delivery that waits for a free slot counts as late."""
    import httpx

    rng = random.Random(7)
    count = int(rate * duration)
    planned = []
    customers: list[int] = []
    for i in range(count):  # every shard draws the same customers, and keeps its own deliveries
        n = FIRST_MESSAGE + i
        if customers and rng.random() < returning:
            customer = rng.choice(customers)
        else:
            customer = n
            customers.append(n)
        if i % shards == shard:
            planned.append(
                (i, traffic.customer_message(traffic.KINDS[i % len(traffic.KINDS)], n, customer=customer))
            )
    timings = Timings()
    sent: list[tuple[str, str, int]] = []
    late: list[float] = []

    async def run():
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
            slots = asyncio.Semaphore(IN_FLIGHT)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            began = time.perf_counter()

            async def post(index: int, delivery) -> None:
                due = began + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with slots:
                    t0 = time.perf_counter()
                    late.append(t0 - due)
                    try:
                        response = await client.post(
                            delivery.path, content=delivery.body, headers=delivery.headers
                        )
                        status = response.status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    timings.add(f"POST /webhooks/{delivery.kind}/", time.perf_counter() - t0, status)
                sent.append((delivery.kind, delivery.external_id, status if isinstance(status, int) else 0))

            await asyncio.gather(*(post(i, d) for i, d in planned))
            return time.perf_counter() - began

    elapsed = asyncio.run(run())
    out.put(
        {
            "role": f"inbound{shard}",
            "timings": timings.export(),
            "sent": sent,
            "elapsed": elapsed,
            "late": late,
        }
    )


# --- agents -------------------------------------------------------------------------------------------


def agents_process(
    base_url: str, agents: list[dict], channel_kinds: dict, duration: float, start_at: float, out
):
    import httpx

    timings = Timings()
    replies = Counter()

    async def agent(session: str, seed: int):
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base_url, cookies={"sessionid": session}, timeout=60) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()) + rng.random() * 2)
            deadline = time.time() + duration

            async def call(name: str, method: str, url: str, **kwargs):
                t0 = time.perf_counter()
                try:
                    response = await client.request(method, url, **kwargs)
                    timings.add(name, time.perf_counter() - t0, response.status_code)
                    return response
                except httpx.HTTPError as exc:
                    timings.add(name, time.perf_counter() - t0, type(exc).__name__)
                    return None

            while time.time() < deadline:
                queue = await call("GET /desk/", "GET", "/desk/")
                listing = await call(
                    "GET /api/v1/cases/", "GET", "/api/v1/cases/", params={"ordering": "-id"}
                )
                cases = []
                if listing is not None and listing.status_code == 200:
                    data = listing.json()
                    cases = data.get("results", data) if isinstance(data, dict) else data
                if cases:
                    case = rng.choice(cases[:20])
                    await call("GET /desk/cases/<ref>/", "GET", f"/desk/cases/{case['reference']}/")
                    channel_id = case.get("last_channel_id")
                    csrf = client.cookies.get("csrftoken") or (
                        queue.cookies.get("csrftoken") if queue else None
                    )
                    if channel_kinds.get(channel_id) in REPLY_KINDS and csrf and rng.random() < 0.5:
                        response = await call(
                            "POST /api/v1/cases/<id>/reply/",
                            "POST",
                            f"/api/v1/cases/{case['id']}/reply/",
                            json={
                                "channel_id": channel_id,
                                "text": "Thanks, we are looking into it.",
                                "is_public": False,
                                # drafted now, on the same machine's clock as the server's
                                "draft_started_at": datetime.now(UTC).isoformat(),
                            },
                            headers={"X-CSRFToken": csrf, "Referer": base_url + "/desk/"},
                        )
                        replies[response.status_code if response is not None else 0] += 1
                await asyncio.sleep(rng.uniform(1.0, 3.0))  # reading, typing

    async def run():
        began = time.perf_counter()
        await asyncio.gather(*(agent(a["session"], i) for i, a in enumerate(agents)))
        return time.perf_counter() - began

    elapsed = asyncio.run(run())
    out.put({"role": "agents", "timings": timings.export(), "replies": dict(replies), "elapsed": elapsed})


# --- live sockets ---------------------------------------------------------------------------------------


async def _read_frame(reader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    n = second & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if second & 0x80 else None
    data = await reader.readexactly(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return first & 0x0F, data


def sockets_process(
    port: int, sessions: list[str], count: int, ramp_per_second: float, hold_until, out, ready
):
    timings = Timings()
    frames = Counter()
    state = {"open": 0, "failed": 0, "dropped": 0, "peak": 0}
    errors = Counter()

    async def socket_(index: int, session: str):
        await asyncio.sleep(index / ramp_per_second)
        t0 = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(ws_handshake(port, session, key))
            status = await asyncio.wait_for(reader.readline(), 60)
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if b" 101 " not in status:
                raise ConnectionError(status.decode(errors="replace").strip() or "no answer")
            opcode, data = await asyncio.wait_for(_read_frame(reader), 60)  # the hello
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
            state["failed"] += 1
            errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
            timings.add("WS /ws/desk/ connect", time.perf_counter() - t0, "failed")
            return
        timings.add("WS /ws/desk/ connect", time.perf_counter() - t0, 101)
        state["open"] += 1
        state["peak"] = max(state["peak"], state["open"])
        subscribe = {"action": "queue", "view": "department", "seq": 0, "rows": []}
        writer.write(ws_frame(1, json.dumps(subscribe).encode()))
        try:
            while time.time() < hold_until:
                try:
                    opcode, data = await asyncio.wait_for(
                        _read_frame(reader), max(0.1, hold_until - time.time())
                    )
                except TimeoutError:
                    break
                if opcode == 9:  # ping
                    writer.write(ws_frame(10, data))
                elif opcode == 8:
                    state["dropped"] += 1
                    return
                elif opcode == 1:
                    try:
                        frames[json.loads(data).get("type", "?")] += 1
                    except ValueError:
                        frames["?"] += 1
        except (OSError, asyncio.IncompleteReadError):
            state["dropped"] += 1
            return
        finally:
            state["open"] -= 1
        writer.write(ws_frame(8, struct.pack(">H", 1000)))
        writer.close()

    async def run():
        tasks = [asyncio.create_task(socket_(i, sessions[i % len(sessions)])) for i in range(count)]
        await asyncio.sleep(count / ramp_per_second + 5)
        ready.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    out.put(
        {
            "role": "sockets",
            "timings": timings.export(),
            "frames": dict(frames),
            "state": state,
            "errors": dict(errors.most_common(5)),
        }
    )


# --- the run ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="Inbound messages per second.")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="Seconds of inbound traffic and agent work."
    )
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--departments", type=int, default=3)
    parser.add_argument(
        "--returning", type=float, default=0.3, help="Share of messages from customers who wrote before."
    )
    parser.add_argument("--daphne", type=int, default=2, help="Web server processes.")
    parser.add_argument(
        "--server", choices=["uvicorn", "daphne"], default="uvicorn", help="uvicorn is the production server."
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes.")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--socket-ramp", type=float, default=100.0, help="Sockets opened per second.")
    parser.add_argument("--senders", type=int, default=2, help="Processes generating the inbound traffic.")
    args = parser.parse_args(argv)

    # A terminated run still stops its servers and removes their data (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    pg = servers.ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="caseline-load-pg-"))).init()
    redis = servers.ThrowawayRedis(Path(tempfile.mkdtemp(prefix="caseline-load-redis-")))
    processes: list[servers.AppProcess] = []
    report: dict = {}
    try:
        pg.start()
        redis.start()
        pg.create_database("load")
        platforms = FakePlatforms()
        env = servers.app_env(
            database_url=pg.url("load"),
            redis_url=redis.url,
            PUBLIC_URL=traffic.PUBLIC_URL,
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
            LOG_LEVEL="WARNING",
            **traffic.SECRET_VALUES,
        )
        print("migrating a throwaway database...", flush=True)
        servers.manage(env, "migrate", "--noinput", "-v", "0")
        import subprocess

        seeded = json.loads(
            subprocess.run(
                [sys.executable, "-m", "tests.faults.stage", "seed", "--agents", str(args.agents), "--sessions",
                 "--departments", str(args.departments)],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300,
            ).stdout
        )  # fmt: skip
        pg.execute("load", "UPDATE connectors_channel SET api_base_url = %s", (platforms.url,))
        channel_kinds = {c["id"]: kind for kind, c in seeded["channels"].items()}
        sessions = [a["session"] for a in seeded["agents"]]

        if args.server == "uvicorn":
            daphnes, port = servers.start_uvicorn({**env, "LOG_LEVEL": "INFO"}, processes=args.daphne)
        else:
            daphnes, port = servers.start_daphne(
                {**env, "LOG_LEVEL": "INFO"}, processes=args.daphne, access_log=False
            )
        processes += daphnes
        for index in range(args.workers):
            processes.append(servers.start_worker(env, name=f"load{index}"))
        base_url = f"http://127.0.0.1:{port}"
        print(f"stack up: {args.server} x{args.daphne} on {base_url}, {args.workers} workers", flush=True)

        context = mp.get_context("spawn")
        out = context.Queue()
        ready = context.Event()
        ramp = args.sockets / args.socket_ramp + 5
        hold_until = time.time() + ramp + args.duration + 10
        sockets = context.Process(
            target=sockets_process,
            args=(port, sessions, args.sockets, args.socket_ramp, hold_until, out, ready),
            daemon=True,
        )
        sockets.start()
        ready.wait(timeout=ramp + 60)
        start_at = time.time() + 1
        print(f"sockets opened; {args.duration:.0f} s of traffic begins", flush=True)
        senders = [
            context.Process(
                target=inbound_process,
                args=(base_url, args.rate, args.duration, args.returning, start_at, shard, args.senders, out),
                daemon=True,
            )
            for shard in range(args.senders)
        ]
        agents = context.Process(
            target=agents_process,
            args=(base_url, seeded["agents"], channel_kinds, args.duration, start_at, out),
            daemon=True,
        )
        for process in (*senders, agents):
            process.start()
        results = {}
        for _ in range(2 + args.senders):
            item = out.get(timeout=args.duration + ramp + 900)
            results[item["role"]] = item
        for process in (sockets, *senders, agents):
            process.join(timeout=60)
        shards = [results[f"inbound{shard}"] for shard in range(args.senders)]
        results["inbound"] = {
            "sent": [row for shard in shards for row in shard["sent"]],
            "elapsed": max(shard["elapsed"] for shard in shards),
            "late": [value for shard in shards for value in shard["late"]],
            "timings": merge([shard["timings"] for shard in shards]).export(),
        }
        traffic_done = time.time()

        print("traffic over; waiting for the workers to drain the inbox...", flush=True)
        drained_at = None
        while time.time() - traffic_done < args.drain_timeout:
            pending = pg.scalar(
                "load", "SELECT count(*) FROM connectors_inboundevent WHERE status = 'pending'"
            )
            queued = pg.scalar("load", "SELECT count(*) FROM cases_message WHERE delivery_state = 'queued'")
            if pending == 0 and queued == 0:
                drained_at = time.time()
                break
            time.sleep(2)

        sent = results["inbound"]["sent"]
        acknowledged = [external_id for _, external_id, status in sent if status == 200]
        holders: dict[str, list[int]] = {external_id: [] for external_id in acknowledged}
        for external_id, case_id in pg.query(
            "load", "SELECT external_id, case_id FROM cases_message WHERE direction = 'in' AND external_id = ANY(%s)",
            (acknowledged,),
        ):  # fmt: skip
            holders[external_id].append(case_id)
        events = dict(
            pg.query("load", "SELECT status, count(*) FROM connectors_inboundevent GROUP BY status")
        )
        first, last = pg.query(
            "load", "SELECT min(received_at), max(processed_at) FROM connectors_inboundevent"
        )[0]
        outbound = dict(pg.query("load", "SELECT delivery_state, count(*) FROM cases_message WHERE direction = 'out' GROUP BY delivery_state"))  # fmt: skip
        failures = pg.query(
            "load", "SELECT left(error, 160), count(*) FROM connectors_inboundevent WHERE status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
        )  # fmt: skip

        timings = merge([results[r]["timings"] for r in ("inbound", "agents", "sockets")])

        def elapsed(name: str) -> float:
            if name.startswith("POST /webhooks/"):
                return results["inbound"]["elapsed"]
            return ramp if name.startswith("WS ") else results["agents"]["elapsed"]

        processed_seconds = (last - first).total_seconds() if first and last else None
        report = {
            "bench": "load",
            "started": started.isoformat(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before,
                        "load_after": os.getloadavg()},
            "config": vars(args),
            "endpoints": table(timings, elapsed),
            "inbound": {
                "sent": len(sent),
                "acknowledged_200": len(acknowledged),
                "errors": len(sent) - len(acknowledged),
                "offered_per_second": args.rate,
                "achieved_per_second": round(len(sent) / results["inbound"]["elapsed"], 1),
                # How late requests left against the open-loop schedule (the generator or the
                # server could not keep up when this grows).
                "late_p50_ms": round(percentile(results["inbound"]["late"], 50) * 1000, 1),
                "late_p99_ms": round(percentile(results["inbound"]["late"], 99) * 1000, 1),
            },
            "processing": {
                "events": events,
                "drained": drained_at is not None,
                "drain_seconds_after_traffic": round(drained_at - traffic_done, 1) if drained_at else None,
                "events_per_second": round(sum(events.values()) / processed_seconds, 1) if processed_seconds else None,
                "failed_reasons": failures,
            },
            "integrity": {
                "acknowledged_messages": len(acknowledged),
                "on_exactly_one_case": sum(1 for cases in holders.values() if len(cases) == 1),
                "missing": sum(1 for cases in holders.values() if not cases),
                "on_several_cases": sum(1 for cases in holders.values() if len(cases) > 1),
                "cases": pg.scalar("load", "SELECT count(*) FROM cases_case"),
            },
            "agents": {"replies": results["agents"]["replies"], "outbound": outbound,
                       "platform_posts": platforms.count},
            "sockets": {"target": args.sockets, **results["sockets"]["state"], "frames": results["sockets"]["frames"],
                        "errors": results["sockets"]["errors"]},
        }  # fmt: skip
    finally:
        for process in reversed(processes):
            process.stop()
        redis.stop()
        pg.destroy()
        shutil.rmtree(redis.base, ignore_errors=True)

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"load-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
