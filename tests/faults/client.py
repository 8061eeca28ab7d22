"""Post deliveries to a running app the way platforms do: many at once, timing each answer."""

from __future__ import annotations

import asyncio
import statistics
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
