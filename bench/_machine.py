"""What a bench's run cost the machine: CPU seconds of processes (``tests.faults.servers``),
of the server processes and their children, and of the PostgreSQL backends serving the
bench's database; ``/proc/stat`` ticks and the share the hypervisor gave elsewhere (steal);
the machine's Python speed yardstick.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def _cpu_seconds(pid: int, **kwargs) -> float:
    """``tests.faults.servers.cpu_seconds`` (importable once ``main`` has put the project on the path)."""
    from tests.faults.servers import cpu_seconds

    return cpu_seconds(pid, **kwargs)


def _python_speed_ms() -> float:
    from tests.faults.servers import python_speed_ms

    return python_speed_ms()


def _servers_cpu_seconds(processes) -> float:
    """CPU seconds of the server processes and of their child processes (uvicorn's workers)."""
    pids = {p.process.pid for p in processes}
    for pid in list(pids):
        with contextlib.suppress(FileNotFoundError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pids.update(int(c) for c in children)
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _cpu_seconds(pid, reaped_children=True)
    return total


def _backend_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL backend connected to the bench database but this one."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _cpu_seconds(pid)
    return total


def _cpu_ticks() -> list[int]:
    """The machine's CPU ticks by kind, from /proc/stat's ``cpu`` line ([] off Linux)."""
    try:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return []


def _steal_share(before: list[int], after: list[int]) -> float | None:
    """Steal ticks (the eighth field) as a share of all ticks between two readings."""
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8])
    return round(delta[7] / total, 3) if total else None
