"""The figures of ``bench/load.py``: latencies and outcomes per endpoint name (``Timings``),
merged across the processes that measured them (``merge``), and the per-endpoint table of
the report (``table``: requests, rate, p50/p95/p99, errors). ``bench/load.py`` puts the
project on the path before it imports this module.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tests.faults.client import percentile

# --- figures ------------------------------------------------------------------------------------


class Timings:
    """Latencies and outcomes per endpoint name."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.outcomes: dict[str, Counter] = defaultdict(Counter)

    def add(self, name: str, seconds: float, outcome) -> None:
        self.seconds[name].append(seconds)
        self.outcomes[name][str(outcome)] += 1

    def export(self) -> dict:
        return {"seconds": dict(self.seconds), "outcomes": {k: dict(v) for k, v in self.outcomes.items()}}


def merge(exports: list[dict]) -> Timings:
    merged = Timings()
    for data in exports:
        for name, values in data["seconds"].items():
            merged.seconds[name].extend(values)
        for name, counts in data["outcomes"].items():
            merged.outcomes[name].update(counts)
    return merged


def table(timings: Timings, elapsed) -> dict:
    rows = {}
    for name in sorted(timings.seconds):
        values = timings.seconds[name]
        outcomes = timings.outcomes[name]
        ok = sum(n for status, n in outcomes.items() if status.startswith(("101", "2", "3")))
        rows[name] = {
            "requests": len(values),
            "per_second": round(len(values) / max(elapsed(name), 0.001), 1),
            "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1),
            "p99_ms": round(percentile(values, 99) * 1000, 1),
            "max_ms": round(max(values, default=0) * 1000, 1),
            "errors": len(values) - ok,
            "outcomes": dict(outcomes),
        }
    return rows
