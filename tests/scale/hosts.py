"""Hosts of our own on this machine: network namespaces joined by veth links to a bridge.

``Network`` makes a bridge in the root namespace with the address ``10.77.<n>.1/24`` (``n``
is the first subnet that no interface uses), and each ``Host`` is a network namespace with
one veth link to that bridge, the address ``10.77.<n>.<i>/24`` and its loopback. A process
started on a host (``ip netns exec``) sees only that link: it cannot reach the machine's
127.0.0.1, so PostgreSQL and Redis are reached through the bridge address, where a forwarder
(socat, in the root namespace) relays each connection to the local server, which keeps
listening on 127.0.0.1 only and is not reconfigured. The test process is the outside world
(the load balancer, the agent's browser): it reaches each host at its own address.

Everything is removed by ``Network.destroy`` (processes killed, namespaces, links and the
bridge deleted), also after a failure; a network left behind by a run that was itself killed
is removed by the next run (its owner's pid is recorded in ``STATE_DIR``).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults import servers
from tests.faults.client import DeskSocket

STATE_DIR = Path("/run/caseline-hosts")
SUBNETS = range(40, 250)
PREFIX = "clh"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why hosts cannot be made here, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    for tool in ("ip", "socat"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"{PREFIX}-probe-{os.getpid()}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode:
        return f"ip netns add failed: {made.stderr.strip()}"
    link = f"{PREFIX}p{os.getpid() % 100000}"
    try:
        veth = ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", probe, check=False)
        if veth.returncode:
            return f"ip link add type veth failed: {veth.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)  # takes the veth pair with it
        ip("link", "del", link, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(namespace: str) -> None:
    pids = ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _used_subnets() -> set[int]:
    used = set()
    for line in ip("-o", "-4", "addr", "show").stdout.splitlines():
        for word in line.split():
            if word.startswith("10.77."):
                used.add(int(word.split(".")[2]))
    return used


def _remove_leftovers(n: int) -> None:
    """Remove the network of subnet ``n`` left by an earlier run (its forwarders too)."""
    state = STATE_DIR / f"{n}"
    for line in state.read_text().splitlines()[1:] if state.exists() else []:
        # Only our forwarders (a pid may have been reused since); host processes go with
        # their namespaces below.
        with contextlib.suppress(OSError, ValueError):
            command = Path(f"/proc/{int(line)}/cmdline").read_bytes().split(b"\0")
            if command[0].endswith(b"socat") and f"bind=10.77.{n}.1,".encode() in b" ".join(command):
                os.kill(int(line), signal.SIGKILL)
    for namespace in ip("netns", "list", check=False).stdout.split():
        if namespace.startswith(f"{PREFIX}{n}-"):
            _kill_namespace_processes(namespace)
            ip("netns", "del", namespace, check=False)
    ip("link", "del", f"{PREFIX}{n}", check=False)
    state.unlink(missing_ok=True)


@dataclass
class Host:
    """One network namespace with its link to the bridge and its address."""

    network: Network
    name: str
    address: str
    namespace: str
    link: str  # the link's end in the root namespace (on the bridge)
    processes: list[servers.AppProcess] = field(default_factory=list)

    def start(self, label: str, args: list[str], env: dict[str, str]) -> servers.AppProcess:
        """Run ``args`` on this host (a session of its own: ``kill`` takes its children too)."""
        process = servers.AppProcess(
            f"{label}@{self.name}", ["ip", "netns", "exec", self.namespace, *args], env
        )
        self.processes.append(process)
        self.network.record(process.process.pid)
        return process

    def link_bytes(self) -> tuple[int, int]:
        """Bytes the host has sent and received over its link so far."""
        stats = Path(f"/sys/class/net/{self.link}/statistics")
        # The root namespace's end receives what the host sends.
        return int((stats / "rx_bytes").read_text()), int((stats / "tx_bytes").read_text())

    def kill(self) -> None:
        """The host dies: every process on it is killed at once (SIGKILL), nothing shuts down."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.process.pid, signal.SIGKILL)
        _kill_namespace_processes(self.namespace)
        for process in self.processes:
            process.process.wait(timeout=10)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the processes running on this host."""
        total = 0.0
        for pid in ip("netns", "pids", self.namespace, check=False).stdout.split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += servers.cpu_seconds(int(pid))
        return total

    def terminate(self) -> None:
        """Ask every process on this host to shut down (SIGTERM); ``stop`` waits for them."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.process.pid, signal.SIGTERM)
                os.killpg(process.process.pid, signal.SIGCONT)  # a frozen process too

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=10)
        _kill_namespace_processes(self.namespace)


class Network:
    """The bridge, its hosts and the forwarders to the machine's PostgreSQL and Redis."""

    def __init__(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        for state in STATE_DIR.iterdir():
            owner = state.read_text().split("\n", 1)[0]
            if owner.isdigit() and not _alive(int(owner)):
                _remove_leftovers(int(state.name))
        used = _used_subnets()
        existing = ip("-o", "link", "show").stdout
        for n in SUBNETS:
            if n in used or f" {PREFIX}{n}:" in existing or (STATE_DIR / f"{n}").exists():
                continue
            try:
                with open(STATE_DIR / f"{n}", "x") as state:  # claimed: a concurrent run takes another
                    state.write(f"{os.getpid()}\n")
            except FileExistsError:
                continue
            break
        else:
            raise RuntimeError("no free 10.77.<n>.0/24 subnet")
        self.n = n
        self.subnet = ipaddress.ip_network(f"10.77.{n}.0/24")
        self.gateway = f"10.77.{n}.1"
        self.bridge = f"{PREFIX}{n}"
        self.hosts: list[Host] = []
        self.forwarders: list[subprocess.Popen] = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def record(self, pid: int) -> None:
        with open(STATE_DIR / f"{self.n}", "a") as state:
            state.write(f"{pid}\n")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        namespace, link = f"{PREFIX}{self.n}-{name}", f"{PREFIX}{self.n}{name}"
        address = f"10.77.{self.n}.{index}"
        ip("netns", "add", namespace)
        host = Host(self, name, address, namespace, link)
        self.hosts.append(host)
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("link", "set", link, "master", self.bridge)
        ip("link", "set", link, "up")
        for args in (
            ("addr", "add", f"{address}/24", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
            ("link", "set", "lo", "up"),
            ("route", "add", "default", "via", self.gateway),
        ):
            ip("-n", namespace, *args)
        return host

    def forward(self, port: int, *, to_host: str = "127.0.0.1", to_port: int | None = None) -> None:
        """Relay connections to ``gateway:port`` to ``to_host:to_port`` (a process each)."""
        forwarder = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind={self.gateway},reuseaddr,fork,backlog=512,nodelay",
                f"TCP:{to_host}:{to_port or port},nodelay",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.forwarders.append(forwarder)
        self.record(forwarder.pid)
        servers.wait_for(
            lambda: port_open(self.gateway, port) or forwarder.poll() is not None,
            timeout=10,
            what=f"the forwarder on {self.gateway}:{port}",
        )
        if forwarder.poll() is not None:
            raise RuntimeError(f"socat could not listen on {self.gateway}:{port}")

    def destroy(self) -> None:
        for host in self.hosts:  # all shut down at once
            with contextlib.suppress(Exception):
                host.terminate()
        for host in reversed(self.hosts):
            with contextlib.suppress(Exception):
                host.stop()
        for forwarder in self.forwarders:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(forwarder.pid, signal.SIGKILL)
            forwarder.wait(timeout=10)
        for host in self.hosts:
            _kill_namespace_processes(host.namespace)
            ip("netns", "del", host.namespace, check=False)  # takes its veth pair with it
            ip("link", "del", host.link, check=False)
        ip("link", "del", self.bridge, check=False)
        (STATE_DIR / f"{self.n}").unlink(missing_ok=True)


def port_open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0


class HostSocket(DeskSocket):
    """The desk's websocket as a signed-in page opens it, at a host's own address."""

    def __init__(self, address: str, port: int, session: str, *, timeout: float = 10.0):
        origin = f"http://{address}:{port}"
        self.sock = socket.create_connection((address, port), timeout=timeout)
        self.sock.sendall(
            (
                f"GET /ws/desk/ HTTP/1.1\r\nHost: {address}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\nCookie: sessionid={session}\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in self.status:
            self.sock.close()
            raise ConnectionError(f"websocket refused: {self.status}")


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
