"""The benchmarks' load generator: a fixed number of requests spread over N concurrent workers in
one asyncio loop, counting what the servers really produced. Kept apart from the servers' start-up
so a unit test can hold its counting honest (tests/unit/bench/test_load.py).

A note on the bug this module once had: ``tokens += await call()`` reads ``tokens`` *before* the
await and writes it back after, so concurrent workers overwrite each other's counts and the total
falls roughly with the concurrency. Every shared count is updated only after the await returns.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.stats import percentile


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    completion_tokens: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    failures: int

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s


async def run_load(call: Callable[[int, str], Awaitable[int]], prompts: Sequence[str], concurrency: int,
                   label: str, clock: Callable[[], float] = time.perf_counter) -> Result:
    """Send every prompt once through ``call`` (which returns the completion tokens it got) with
    ``concurrency`` requests in flight; wall time from the first send to the last answer."""
    todo = list(enumerate(prompts))
    todo.reverse()  # pop() from the end: requests go out in prompt order
    latencies: list[float] = []
    tokens: list[int] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while todo:
            i, prompt = todo.pop()
            t0 = clock()
            try:
                produced = await call(i, prompt)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures += 1
                if failures == 1:
                    print(f"  first failure on {label}: {exc!r}", file=sys.stderr)
                continue
            latencies.append(clock() - t0)
            tokens.append(produced)

    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = clock() - t0
    return Result(label, concurrency, len(prompts), sum(tokens), wall, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, failures)
