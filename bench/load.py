"""The benchmarks' load generator: a fixed number of requests spread over N concurrent workers in
one asyncio loop, counting what the servers really produced. Kept apart from the servers' start-up
so a unit test can hold its counting honest (tests/unit/bench/test_load.py).

A note on the bug this module once had: ``tokens += await call()`` reads ``tokens`` *before* the
await and writes it back after, so concurrent workers overwrite each other's counts and the total
falls roughly with the concurrency. Every shared count is updated only after the await returns.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

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
    server_cpu_s: float = float("nan")  # CPU the server's front-end process used during the run
    round: int = 0  # which round of an interleaved benchmark it belongs to
    neighbours_cpu_s: float = float("nan")  # CPU the other (idle) servers' processes used meanwhile
    client_cpu_s: float = float("nan")  # CPU the load generator's own process used (it shares the machine)
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # each answered request's latency

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    @property
    def server_cpu_ms_per_request(self) -> float:
        """What the front-end process (gRPC/HTTP handling, routing, events, metrics, vLLM's
        AsyncLLM client — not the engine core, a child process) spent per request: the
        per-request overhead, measured without the engine's share of the machine's noise."""
        return 1e3 * self.server_cpu_s / self.requests

    @property
    def client_cpu_ms_per_request(self) -> float:
        """What the load generator itself (gRPC or HTTP client) spent per request: on a machine
        shared with the servers, CPU a client takes is CPU the engine does not get."""
        return 1e3 * self.client_cpu_s / self.requests


WORDS = ["bus", "tram", "route 12", "line 4", "the depot", "city hall", "the airport", "sunday", "night"]


def prompts(n: int) -> list[str]:
    """The benchmarks' n distinct prompts, the same for every target."""
    return [f"when does the {WORDS[i % len(WORDS)]} leave {WORDS[(i * 7) % len(WORDS)]} {i}" for i in range(n)]


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of processes and all their descendants (an engine core is a child
    of its server), those alive now; 0 for a process that is gone."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its threads, not its children), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(call: Callable[[int, str], Awaitable[int]], prompts: Sequence[str], concurrency: int,
                   label: str, clock: Callable[[], float] = time.perf_counter,
                   server_cpu: Callable[[], float] | None = None, neighbours_cpu: Callable[[], float] | None = None,
                   round_: int = 0, client_cpu: Callable[[], float] | None = None) -> Result:
    """Send every prompt once through ``call`` (which returns the completion tokens it got) with
    ``concurrency`` requests in flight; wall time from the first send to the last answer.
    ``server_cpu`` / ``neighbours_cpu`` / ``client_cpu``: read the server's, the other servers' and
    the load generator's own CPU seconds, before and after."""
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

    def read(meter: Callable[[], float] | None) -> float:
        return meter() if meter else float("nan")

    cpu0, others0, mine0 = read(server_cpu), read(neighbours_cpu), read(client_cpu)
    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = clock() - t0
    cpu, others, mine = read(server_cpu) - cpu0, read(neighbours_cpu) - others0, read(client_cpu) - mine0
    return Result(label, concurrency, len(prompts), sum(tokens), wall, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, failures, cpu, round_, others, mine,
                  [round(x * 1e3, 3) for x in latencies])


def rounds(targets: Sequence[str], n: int) -> list[list[str]]:
    """The order the targets take turns in, round by round: each round starts one target later
    (A B C, B C A, C A B, ...), so no target always runs first or last."""
    return [[*targets[k:], *targets[:k]] for k in (i % len(targets) for i in range(n))] if targets else []
