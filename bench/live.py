"""Live desk sockets at scale: commit-to-screen latency and the server's memory.

    .venv/bin/python bench/live.py                      # 1,000 sockets, 100 events/s for 30 s
    .venv/bin/python bench/live.py --clients 200 --duration 10 --departments 4

One ASGI process (uvicorn with httptools and uvloop, as production runs, or ``--server
daphne``, serving ``config.asgi:application``) on a throwaway PostgreSQL cluster and Redis
server of its own (``tests.faults.servers``), with channels-redis as the channel layer. ``--clients`` signed-in desk sockets (one user each, spread evenly over
``--departments`` departments) open from a separate client process, each following its
department's queue as a queue page does. Then this process commits events through the
services (``cases.services.case_set_priority`` on a pool of open cases spread over the
departments) at ``--rate`` per second for ``--duration`` seconds.

For each event the commit time is taken by an on-commit callback registered before the
service's own (so it runs first, right after COMMIT, before the live event is published),
and each socket notes when the pushed queue row carrying that event's sequence number
arrives. Latency is receipt minus commit, over every (socket, event) pair; an event reaches
the sockets of its case's department (``clients / departments`` of them). The server
process's resident memory (VmRSS) is sampled every half second, its CPU time is divided by
the frames delivered, and its garbage collections are timed (a wrapper around the server
records each pause; ``--profile`` also writes a cProfile of the server's event loop thread
to ``bench/results``). Targets (issue 5): p99 under 50 ms, memory under 300 MB.

Both clocks are this machine's ``time.time()``. The client process's own scheduling delay
is part of the figure (it parses every frame on the same 2 cores as the server). Figures go
to stdout and ``bench/results/live-<time>.json``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import servers  # noqa: E402
from tests.faults.client import percentile, ws_frame, ws_handshake  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
# The server, run by a wrapper that times each garbage collection (and, given a path, profiles
# the event loop's thread) and writes what it saw to a JSON file when the server exits.
# argv: gc-file, profile-file or "", then the server ("uvicorn" or "daphne") and its arguments.
SERVER_WRAPPER = """
import gc, json, signal, sys, time
# uvicorn raises the SIGTERM it caught again once it has shut down: exit through "finally".
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
gc_file, profile_file, server = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = [server] + sys.argv[4:]
pauses, began = {0: [], 1: [], 2: []}, [0.0]
def timed(phase, info):
    if phase == "start":
        began[0] = time.perf_counter()
    else:
        pauses[info["generation"]].append(time.perf_counter() - began[0])
gc.callbacks.append(timed)
profile = None
if profile_file:
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
try:
    if server == "uvicorn":
        from uvicorn.main import main
        main(standalone_mode=False)
    else:
        from daphne.cli import CommandLineInterface
        CommandLineInterface.entrypoint()
finally:
    if profile is not None:
        profile.disable()
        profile.dump_stats(profile_file)
    with open(gc_file, "w") as out:
        json.dump({str(g): p for g, p in pauses.items()}, out)
"""
PRIORITIES = ("high", "normal")


# --- the client process: many sockets on one event loop ------------------------------------------


ROW_PREFIX = b'{"type": "queue.row"'
SEQ_MARK = b'"seq": '


def row_seq(data: bytes) -> int | None:
    """The sequence number of a pushed queue row, read without decoding its HTML."""
    if not data.startswith(ROW_PREFIX):
        return None
    at = data.rfind(SEQ_MARK)
    if at < 0:
        return None
    digits = data[at + len(SEQ_MARK) :].rstrip(b"}").strip()
    return int(digits) if digits.isdigit() else None


class DeskClient(asyncio.Protocol):
    """One signed-in queue page's socket, parsing frames as bytes arrive (cheap per frame: a
    slow client would add its own delay to the figures)."""

    def __init__(self, handshake: bytes, subscribe: bytes, receipts, state):
        self.handshake, self.subscribe, self.receipts, self.state = handshake, subscribe, receipts, state
        self.buffer = bytearray()
        self.open = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.handshake)

    def data_received(self, data):
        now = time.time()
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if b" 101 " not in status:
                self.state["failed"] += 1
                self.state["errors"].append(status.decode(errors="replace")[:80])
                self.transport.close()
                return
            self.open = True
            self.state["open"] += 1
            self.transport.write(self.subscribe)
        buffer = self.buffer
        while len(buffer) >= 2:
            size, head = buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, head = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, head = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < head + size:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[head : head + size])
            del buffer[: head + size]
            if opcode == 1:
                self.state["frames"] += 1
                number = row_seq(payload)
                if number is not None:
                    self.receipts[number].append(now)
            elif opcode == 9:
                self.transport.write(ws_frame(10, payload))
            elif opcode == 8:
                self.state["closed"] += 1
                self.transport.close()
                return

    def connection_lost(self, exc):
        if not self.open:
            self.state["failed"] += 1
            if len(self.state["errors"]) < 5:
                self.state["errors"].append(f"closed before the handshake: {exc}"[:80])


def clients_process(port: int, sessions: list[str], seq: int, ramp: float, ready, stop, out) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    receipts: dict[int, list[float]] = defaultdict(list)
    state = {"open": 0, "failed": 0, "closed": 0, "frames": 0, "errors": []}
    subscribe = ws_frame(
        1,
        json.dumps(
            {"action": "queue", "view": "department", "seq": seq, "replay": True, "rows": []}
        ).encode(),
    )
    transports = []

    async def run():
        loop = asyncio.get_running_loop()
        began = time.perf_counter()
        for index, session in enumerate(sessions):
            delay = began + index / ramp - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            handshake = ws_handshake(port, session, base64.b64encode(os.urandom(16)).decode())
            try:
                transport, _ = await loop.create_connection(
                    lambda h=handshake: DeskClient(h, subscribe, receipts, state), "127.0.0.1", port
                )
                transports.append(transport)
            except OSError as exc:
                state["failed"] += 1
                state["errors"].append(f"{type(exc).__name__}: {exc}"[:80])
        deadline = time.monotonic() + 60
        while state["open"] + state["failed"] < len(sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the last subscriptions are read
        state["cpu_at_ready"] = time.process_time()
        ready.set()
        await loop.run_in_executor(None, stop.wait)
        state["cpu_seconds"] = round(time.process_time() - state["cpu_at_ready"], 1)
        for transport in transports:
            transport.close()

    asyncio.run(run())
    state["errors"] = state["errors"][:5]
    out.put({"receipts": dict(receipts), "state": state})


# --- the stack and the data -----------------------------------------------------------------------


def waited_seconds(pid: int) -> float:
    """Time the process's threads were ready to run but waited for a CPU (the scheduler's count)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            total += int(stat.read().split()[1])
    return total / 1e9


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class MemorySampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.running = pid, 0.0, [], True

    def run(self):
        while self.running:
            try:
                value = rss_mb(self.pid)
            except OSError:
                return
            self.peak = max(self.peak, value)
            self.samples.append(value)
            time.sleep(0.5)


def seed(*, clients: int, departments: int, cases_per_department: int) -> dict:
    """Departments, one channel each, ``clients`` signed-in agents, and open cases to change."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from cases import services
    from cases.models import Membership
    from tests import factories
    from tests.faults.stage import _session_for

    user_model = get_user_model()
    made = [factories.DepartmentFactory(name=f"Care {n}", slug=f"care-{n}") for n in range(departments)]
    channels = []
    for n, department in enumerate(made):
        channel = factories.ChannelFactory(
            kind="email", slug=f"mail-{n}", department=department, account_id=str(n)
        )
        factories.ServicePromiseFactory(channel=channel)
        channels.append(channel)
    password = make_password("bench-live-1")  # hashed once: a thousand hashes would take minutes
    users = user_model.objects.bulk_create(
        [
            user_model(
                username=f"agent{n}", email=f"agent{n}@bench.test", first_name="Agent", password=password
            )
            for n in range(clients)
        ]
    )
    Membership.objects.bulk_create(
        [
            Membership(user=user, department=made[n % departments], role=Membership.Role.AGENT)
            for n, user in enumerate(users)
        ]
    )
    sessions = [_session_for(user) for user in users]
    boss = user_model.objects.create(
        username="boss", email="boss@bench.test", is_staff=True, password=password
    )
    cases = []
    for n in range(cases_per_department):
        for channel in channels:
            customer = factories.CustomerFactory(name=f"Customer {n}")
            cases.append(services.case_open(customer=customer, channel=channel, subject=f"Case {n}"))
    return {"sessions": sessions, "cases": cases, "boss": boss}


def commit_events(*, cases: list, actor, rate: float, duration: float) -> tuple[dict[int, float], dict]:
    """Change case priorities through the services at ``rate`` per second: seq -> commit time."""
    from django.db import transaction

    from cases import services
    from cases.models import CaseEvent
    from channels_app import publish as live_publish

    stamps: list[tuple[int, dict]] = []
    stats = {"late": 0, "call_ms": [], "publish_ms": []}
    original = live_publish.publish

    def timed_publish(**kwargs):
        began = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            stats["publish_ms"].append((time.perf_counter() - began) * 1000)

    live_publish.publish = timed_publish
    after = CaseEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    total = int(rate * duration)
    start = time.perf_counter() + 0.2
    for index in range(total):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.005:
            stats["late"] += 1
        slot = index % len(cases)
        stamp: dict = {}
        began = time.perf_counter()
        with transaction.atomic():
            # Registered before the service's publish: runs first, right after COMMIT.
            transaction.on_commit(lambda stamp=stamp: stamp.setdefault("at", time.time()))
            cases[slot] = services.case_set_priority(
                case=cases[slot], priority=PRIORITIES[(index // len(cases)) % 2], actor=actor
            )
        stats["call_ms"].append((time.perf_counter() - began) * 1000)
        stamps.append((cases[slot].pk, stamp))
    stats["elapsed"] = time.perf_counter() - start
    live_publish.publish = original
    # One writer, one event per commit: the events' ids, in order, are the commits' numbers.
    ids = list(
        CaseEvent.objects.filter(id__gt=after, kind=CaseEvent.Kind.PRIORITY)
        .order_by("id")
        .values_list("id", "case_id")
    )
    if [case_id for _, case_id in ids] != [case_id for case_id, _ in stamps]:
        raise RuntimeError("the case events do not match the commits one for one")
    return {seq: stamp["at"] for (seq, _), (_, stamp) in zip(ids, stamps, strict=True)}, stats


# --- the run ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="Signed-in desk sockets.")
    parser.add_argument("--rate", type=float, default=100.0, help="Events committed per second.")
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds of events.")
    parser.add_argument(
        "--departments", type=int, default=10, help="Sockets and cases are spread over these."
    )
    parser.add_argument("--cases-per-department", type=int, default=50)
    parser.add_argument(
        "--ramp",
        type=float,
        default=25.0,
        help="Sockets opened per second (each costs three database trips).",
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "daphne"),
        default="uvicorn",
        help="ASGI server: uvicorn (httptools, uvloop: production) or daphne.",
    )
    parser.add_argument(
        "--ws",
        default="auto",
        help="uvicorn's websocket implementation (auto, websockets, websockets-sansio, wsproto).",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the server's event loop thread.")
    parser.add_argument(
        "--layer",
        choices=sorted(LAYERS),
        default="core",
        help="channels-redis layer: core (the settings' RedisChannelLayer) or pubsub (RedisPubSubChannelLayer).",
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    pg = servers.ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="caseline-live-pg-"))).init()
    redis = servers.ThrowawayRedis(Path(tempfile.mkdtemp(prefix="caseline-live-redis-")))
    server = None
    try:
        pg.start()
        redis.start()
        pg.create_database("live")
        env = servers.app_env(
            database_url=pg.url("live"),
            redis_url=redis.url,
            CHANNEL_LAYER_PREFIX="cl-bench-live",
            CELERY_QUEUE="cl-bench-live",
            LOG_LEVEL="WARNING",
            CHANNEL_LAYER=args.layer,
        )
        print("migrating a throwaway database...", flush=True)
        servers.manage(env, "migrate", "--noinput", "-v", "0")

        # This process commits the events: the same settings as the server's.
        os.environ.update(env)
        import django

        django.setup()
        from django.conf import settings

        assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == LAYERS[args.layer]
        print(f"seeding {args.departments} departments, {args.clients} agents...", flush=True)
        world = seed(
            clients=args.clients, departments=args.departments, cases_per_department=args.cases_per_department
        )
        from cases import selectors

        port = servers.free_port()
        RESULTS.mkdir(parents=True, exist_ok=True)
        gc_file = Path(tempfile.mkstemp(prefix="caseline-live-gc-", suffix=".json")[1])
        profile_file = RESULTS / f"live-{started:%Y%m%dT%H%M%S}.prof" if args.profile else ""
        if args.server == "uvicorn":
            server_args = [
                "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                "--http", "httptools", "--loop", "uvloop", "--ws", args.ws, "--lifespan", "off",
                "--no-access-log", "--timeout-keep-alive", "75", "--log-level", "warning",
            ]  # fmt: skip
        else:
            server_args = [
                "daphne", "-b", "127.0.0.1", "-p", str(port), "--access-log", os.devnull, "config.asgi:application"
            ]  # fmt: skip
        server = servers.AppProcess(
            args.server,
            [sys.executable, "-c", SERVER_WRAPPER, str(gc_file), str(profile_file), *server_args],
            env,
        )
        servers.wait_for(lambda: servers.port_open(port) or not server.alive(), timeout=60, what=args.server)
        if not server.alive():
            raise RuntimeError(f"{args.server} did not start:\n" + server.output)
        time.sleep(1.0)
        rss_idle = rss_mb(server.process.pid)
        sampler = MemorySampler(server.process.pid)
        sampler.start()

        context = mp.get_context("spawn")
        ready, stop, out = context.Event(), context.Event(), context.Queue()
        clients = context.Process(
            target=clients_process,
            args=(port, world["sessions"], selectors.live_seq(), args.ramp, ready, stop, out),
            daemon=True,
        )
        clients.start()
        print(
            f"opening {args.clients} sockets on one {args.server} (pid {server.process.pid}, port {port})...",
            flush=True,
        )
        if not ready.wait(timeout=args.clients / args.ramp + 120):
            raise RuntimeError("the sockets did not open in time")
        rss_connected = rss_mb(server.process.pid)
        cpu_before = servers.cpu_seconds(server.process.pid)
        loop_cpu_before = servers.cpu_seconds(server.process.pid, thread=server.process.pid)  # the event loop
        waited_before = waited_seconds(server.process.pid)
        print(f"sockets open; committing {args.rate:.0f} events/s for {args.duration:.0f} s...", flush=True)
        committed, stats = commit_events(
            cases=world["cases"], actor=world["boss"], rate=args.rate, duration=args.duration
        )
        time.sleep(3.0)  # stragglers
        rss_end = rss_mb(server.process.pid)
        server_cpu = servers.cpu_seconds(server.process.pid) - cpu_before
        loop_cpu = servers.cpu_seconds(server.process.pid, thread=server.process.pid) - loop_cpu_before
        server_waited = waited_seconds(server.process.pid) - waited_before
        stop.set()
        result = out.get(timeout=120)
        clients.join(timeout=30)
        sampler.running = False
        if result["state"]["closed"] or result["state"]["failed"]:
            print(server.output[-3000:])  # why sockets were closed
        server.stop()  # the wrapper writes its garbage collection figures (and profile) on exit
        try:
            pauses = json.loads(gc_file.read_text() or "{}")
        except ValueError:
            pauses = {}
        gc_file.unlink(missing_ok=True)

        per_department = args.clients / args.departments
        latencies = []
        for seq, at in committed.items():
            latencies += [(received - at) for received in result["receipts"].get(seq, [])]
        expected = len(committed) * per_department
        report = {
            "bench": "live",
            "started": started.isoformat(),
            "command": "bench/live.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "note": "2 cores shared with other work running at the same time",
            },
            "setup": {
                "asgi_processes": 1,
                "server": args.server if args.server == "daphne" else f"uvicorn (ws {args.ws})",
                "channel_layer": LAYERS[args.layer],
                "clients": args.clients,
                "departments": args.departments,
                "sockets_per_event": per_department,
                "rate": args.rate,
                "duration": args.duration,
            },
            "sockets": result["state"],
            "events_committed": len(committed),
            "commit_rate_achieved": round(len(committed) / stats["elapsed"], 1),
            "commits_late_over_5ms": stats["late"],
            "commit_call_ms_p50": round(percentile(stats["call_ms"], 50), 1),
            "publish_ms_p50": round(percentile(stats["publish_ms"], 50), 1),
            "publish_ms_p99": round(percentile(stats["publish_ms"], 99), 1),
            "server_cpu_seconds": round(server_cpu, 1),
            "server_cpu_ms_per_event": round(server_cpu * 1000 / max(len(committed), 1), 2),
            "server_cpu_ms_per_frame": round(server_cpu * 1000 / max(len(latencies), 1), 3),
            # The event loop's thread (sockets, Redis, garbage collection); the rest is the
            # database and rendering threads.
            "server_loop_thread_cpu_seconds": round(loop_cpu, 1),
            # Ready to run but every core busy (with this machine's other work too).
            "server_waited_for_cpu_seconds": round(server_waited, 1),
            "deliveries_expected": int(expected),
            "deliveries_received": len(latencies),
            "latency_ms": {
                "p50": round(percentile(latencies, 50) * 1000, 1),
                "p90": round(percentile(latencies, 90) * 1000, 1),
                "p99": round(percentile(latencies, 99) * 1000, 1),
                "max": round(max(latencies, default=0) * 1000, 1),
            },
            "server_rss_mb": {
                "idle": round(rss_idle, 1),
                "connected": round(rss_connected, 1),
                "peak": round(sampler.peak, 1),
                "end": round(rss_end, 1),
            },
            # Whole run (connecting, events, closing): count, total and longest pause per generation.
            "server_gc": {
                f"gen{generation}": {
                    "count": len(times),
                    "total_ms": round(sum(times) * 1000, 1),
                    "max_ms": round(max(times, default=0) * 1000, 1),
                }
                for generation, times in sorted(pauses.items())
            },
            "targets": {"p99_ms": 50, "rss_mb": 300},
        }
        print(json.dumps(report, indent=2))
        path = RESULTS / f"live-{started:%Y%m%dT%H%M%S}.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"written to {path}" + (f" (profile: {profile_file})" if profile_file else ""))
        return 0
    finally:
        if server is not None:
            server.stop()
        if redis.running:
            redis.stop()
        shutil.rmtree(redis.base, ignore_errors=True)
        pg.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
