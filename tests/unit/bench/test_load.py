"""The load generator (bench/load.py): every request counted once, whatever the concurrency."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench.load import process_cpu_seconds, rounds, run_load, tree_cpu_seconds


@pytest.mark.parametrize("concurrency", [1, 8, 32])
def test_every_token_is_counted_at_any_concurrency(concurrency: int) -> None:
    seen: list[int] = []

    async def call(i: int, prompt: str) -> int:
        await asyncio.sleep(0.001 * (i % 3))  # answers come back out of order
        seen.append(i)
        return 32

    result = asyncio.run(run_load(call, [f"p{i}" for i in range(96)], concurrency, "fake"))
    assert sorted(seen) == list(range(96))
    assert result.completion_tokens == 96 * 32 and result.requests == 96 and result.failures == 0


def test_failures_are_counted_not_added() -> None:
    async def call(i: int, prompt: str) -> int:
        await asyncio.sleep(0)
        if i % 4 == 0:
            raise RuntimeError("refused")
        return 10

    result = asyncio.run(run_load(call, [str(i) for i in range(40)], 8, "fake"))
    assert result.failures == 10 and result.completion_tokens == 30 * 10


def test_wall_time_and_rate_from_the_clock() -> None:
    ticks = iter(float(t) for t in range(1000))

    async def call(i: int, prompt: str) -> int:
        return 5

    result = asyncio.run(run_load(call, ["a", "b"], 1, "fake", clock=lambda: next(ticks)))
    # clock reads: start, (t0, t1) per request, end -> wall = 5 - 0
    assert result.wall_s == 5.0 and result.tokens_per_s == 2.0
    assert result.p50_ms == 1000.0


def test_rounds_rotate_the_targets() -> None:
    assert rounds(["A", "B", "C"], 4) == [["A", "B", "C"], ["B", "C", "A"], ["C", "A", "B"], ["A", "B", "C"]]
    assert rounds([], 3) == []


def test_server_cpu_per_request() -> None:
    readings = iter([10.0, 10.5])

    async def call(i: int, prompt: str) -> int:
        return 1

    result = asyncio.run(run_load(call, ["a"] * 100, 4, "fake", server_cpu=lambda: next(readings)))
    assert result.server_cpu_s == 0.5 and result.server_cpu_ms_per_request == 5.0
    assert result.client_cpu_s != result.client_cpu_s  # not measured: NaN, not 0


def test_client_cpu_per_request_is_kept_apart_from_the_server_s() -> None:
    server, client = iter([10.0, 10.5]), iter([3.0, 3.02])

    async def call(i: int, prompt: str) -> int:
        return 1

    result = asyncio.run(run_load(call, ["a"] * 40, 4, "fake", server_cpu=lambda: next(server),
                                  client_cpu=lambda: next(client)))
    assert result.server_cpu_ms_per_request == 12.5
    assert abs(result.client_cpu_ms_per_request - 0.5) < 1e-9


def test_process_cpu_seconds_reads_this_process() -> None:
    before = process_cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert process_cpu_seconds(os.getpid()) > before >= 0


def test_neighbours_cpu_and_round_are_recorded() -> None:
    readings = iter([1.0, 1.25])

    async def call(i: int, prompt: str) -> int:
        return 1

    result = asyncio.run(run_load(call, ["a"] * 4, 2, "fake", neighbours_cpu=lambda: next(readings), round_=3))
    assert result.neighbours_cpu_s == 0.25 and result.round == 3


def test_tree_cpu_seconds_counts_children_and_skips_the_gone() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "sum(i * i for i in range(3_000_000)); input()"],
                             stdin=subprocess.PIPE)
    try:
        import time

        deadline = time.monotonic() + 30
        while tree_cpu_seconds([os.getpid()]) - process_cpu_seconds(os.getpid()) < 0.05:
            assert time.monotonic() < deadline, "the child's CPU was never counted"
            time.sleep(0.05)
    finally:
        child.communicate(b"\n", timeout=30)
    assert tree_cpu_seconds([child.pid]) == 0.0  # gone: nothing, no error
