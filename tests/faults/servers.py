"""Throwaway PostgreSQL and Redis servers, and the app's processes, for fault tests.

Fault tests stop, kill and restart the services the app depends on. They never touch
the machine's shared PostgreSQL (5432) or Redis (6379): each session starts its own
cluster (``initdb`` into a temporary folder, trust auth, a free port) and its own
Redis (no persistence), and the app runs in subprocesses (daphne, a Celery worker)
whose ``DATABASE_URL`` and ``REDIS_URL`` point at them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, or None."""
    found = sorted(glob.glob(PG_BIN_GLOB), key=lambda p: int(Path(p).parent.name or 0))
    for folder in reversed(found):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


def cpu_seconds(pid: int, *, thread: int | None = None, reaped_children: bool = False) -> float:
    """User + system CPU seconds a process (or one of its threads) has used so far, from /proc.

    ``reaped_children`` adds what its children that have exited used (cutime, cstime)."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()  # after the command's name
    return sum(int(v) for v in fields[11 : 15 if reaped_children else 13]) / os.sysconf("SC_CLK_TCK")


def python_speed_ms() -> float:
    """CPU milliseconds this machine's Python takes for a fixed loop (ten million additions),
    best of three: a yardstick for comparing benchmark figures taken on different machines,
    or on one machine whose speed moves."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.process_time() - start)
    return round(best * 1000, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own: ``initdb`` in ``base``, trust auth, port chosen free.

    PostgreSQL refuses to run as root; when we are root the cluster runs as the
    ``postgres`` user. Durability is switched off: the data is thrown away anyway.
    """

    def __init__(self, base: Path):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries not found under " + PG_BIN_GLOB)
        self.base = Path(base)
        self.data = self.base / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args, check=True, timeout=60):
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def init(self) -> ThrowawayPostgres:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.base, user="postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync", "--locale=C",
        )  # fmt: skip
        return self

    def start(self) -> None:
        # fsync is off (the data is thrown away and the machine does not crash), but a commit
        # is written to the WAL before it is acknowledged (synchronous_commit stays on), so
        # a killed server, which is what the tests do, loses no acknowledged commit.
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"),
            "-w", "-t", "30", "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` is a crash (no clean shutdown of sessions)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, *, down_for: float = 0.0, mode: str = "immediate") -> None:
        self.stop(mode)
        if down_for:
            time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        return port_open(self.port)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def create_database(self, name: str, *, template: str | None = None) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if template:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def query(self, database: str, sql: str, params=()) -> list[tuple]:
        with self.connect(database) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, database: str, sql: str, params=()) -> None:
        with self.connect(database) as conn:
            conn.execute(sql, params)

    def scalar(self, database: str, sql: str, params=()):
        rows = self.query(database, sql, params)
        return rows[0][0] if rows else None

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class ThrowawayRedis:
    """A Redis server of our own on a free port, without persistence; stop it, start it again."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
                "--daemonize",
                "no",
                "--logfile",
                str(self.base / "redis.log"),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), timeout=15, what="redis-server to listen")

    def stop(self) -> None:
        """Kill it outright, as a crash or a lost host would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        wait_for(lambda: not port_open(self.port), timeout=10, what="redis-server to stop")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class AppProcess:
    """One of the app's processes (daphne, a Celery worker) with its output kept for the report."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()):
        self.name = name
        self.lines: deque[str] = deque(maxlen=2000)
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)


def app_env(*, database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of an app process pointed at the throwaway services."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "faults-test-key-not-secret",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHANNEL_LAYER_PREFIX": "cl-faults",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def _shared_listener(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 for several server processes to accept from.

    TCP_NODELAY is set here because the accepted connections inherit it: a server handed a
    descriptor (``--fd``) cannot tell it is TCP (uvicorn takes it for a Unix socket) and
    would leave Nagle's algorithm on, so a response written in two parts (head, then body)
    or a run of small websocket frames waits for the client's delayed ACK, about 40 ms.
    Servers bound by address (``--host``/``--port``, as in production) set it themselves.
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    return listener


def _all_alive(started: list[AppProcess], server: str) -> list[AppProcess]:
    """``started``, once every process is seen alive; otherwise all are stopped and the first
    dead one's output is raised."""
    dead = [process for process in started if not process.alive()]
    if dead:
        for process in started:
            process.stop()
        raise RuntimeError(f"{server} did not start:\n" + dead[0].output)
    return started


def start_uvicorn(
    env: dict[str, str], *, processes: int = 1, log_level: str = "warning"
) -> tuple[list[AppProcess], int]:
    """Serve the app with uvicorn (httptools, uvloop), the production server, on 127.0.0.1:
    ``processes`` processes accepting from one shared socket, each its own ``AppProcess``."""
    port = free_port()
    listener = _shared_listener(port)
    started: list[AppProcess] = []
    try:
        for index in range(processes):
            command = [
                sys.executable, "-m", "uvicorn", "config.asgi:application", "--fd", str(listener.fileno()),
                "--http", "httptools", "--loop", "uvloop", "--lifespan", "off", "--no-access-log",
                "--timeout-keep-alive", "75",
                "--log-level", log_level,
            ]  # fmt: skip
            started.append(AppProcess(f"uvicorn-{index}", command, env, pass_fds=(listener.fileno(),)))
        wait_for(lambda: port_open(port), timeout=60, what="uvicorn to listen")
        time.sleep(2.0)  # every process has imported the app
    finally:
        listener.close()  # the children hold their own copies
    return _all_alive(started, "uvicorn"), port


def start_daphne(
    env: dict[str, str], *, port: int | None = None, processes: int = 1, access_log: bool = True
) -> tuple[list[AppProcess], int]:
    """Serve the app with daphne on 127.0.0.1; several processes share one listening socket."""
    port = port or free_port()
    quiet = [] if access_log else ["--access-log", os.devnull]
    started: list[AppProcess] = []
    listener = None
    if processes == 1:
        bind = ["-b", "127.0.0.1", "-p", str(port)]
        fds: tuple[int, ...] = ()
    else:
        # One socket, accepted from by every process: the kernel spreads the connections.
        listener = _shared_listener(port)
        bind = ["--fd", str(listener.fileno())]
        fds = (listener.fileno(),)
    try:
        for index in range(processes):
            started.append(
                AppProcess(
                    f"daphne-{index}",
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        *bind,
                        *quiet,
                        os.environ.get("FAULTS_ASGI", "tests.faults.asgi:application"),
                    ],
                    env,
                    pass_fds=fds,
                )
            )
        for process in started:
            wait_for(
                lambda p=process: p.saw("Listening on") or p.saw("Configuring endpoint") or not p.alive(),
                timeout=60,
                what="daphne to start",
            )
        wait_for(lambda: port_open(port), timeout=30, what="daphne to listen")
    except AssertionError:
        for process in started:
            process.stop()
        raise
    finally:
        if listener is not None:
            listener.close()  # the children hold their own copies
    return _all_alive(started, "daphne"), port


def start_worker(
    env: dict[str, str], *, queue: str = "caseline", name: str = "faults", nice: int = 0
) -> AppProcess:
    """A Celery worker (solo pool); ``nice`` lowers its CPU priority below the web server's."""
    process = AppProcess(
        "worker",
        [
            *(["nice", "-n", str(nice)] if nice else []),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            queue,
            "-n",
            f"{name}@%h",
        ],  # fmt: skip
        {**env, "CELERY_QUEUE": queue},
    )
    try:
        wait_for(
            lambda: process.saw(" ready.") or not process.alive(), timeout=60, what="the worker to be ready"
        )
    except AssertionError:
        process.stop()
        raise
    if not process.alive():
        raise RuntimeError("the worker did not start:\n" + process.output)
    return process


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
