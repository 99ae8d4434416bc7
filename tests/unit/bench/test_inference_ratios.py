"""The inference benchmark's printed ratios (bench/inference.py): each round's pair compared."""

from __future__ import annotations

from bench.inference import ON, VLLM, compare, compare_p99, pooled_p99
from bench.load import Result


def result(target: str, round_: int, tokens: int, wall: float = 1.0) -> Result:
    return Result(target, 8, 10, tokens, wall, 1.0, 2.0, 0, round=round_)


def test_compare_is_the_median_of_per_round_ratios() -> None:
    # round 1 ran on a machine twice as fast for both: its pair still says 1.00
    results = [result(ON, 0, 80), result(VLLM, 0, 100), result(ON, 1, 200), result(VLLM, 1, 200),
               result(ON, 2, 90), result(VLLM, 2, 100)]
    assert compare(results, ON, VLLM, 8) == "0.90 (0.80–1.00)"
    assert compare(results, ON, VLLM, 32) == "n/a"


def timed(target: str, round_: int, latencies_ms: list[float]) -> Result:
    return Result(target, 1, len(latencies_ms), 32 * len(latencies_ms), 1.0, 1.0, max(latencies_ms), 0,
                  round=round_, latencies_ms=latencies_ms)


def test_p99_is_taken_over_every_round_of_a_cell() -> None:
    # ours: one slow request in 200, vLLM: none. Each round's own p99 would be its slowest request.
    ours = [timed(ON, r, [10.0] * 99 + ([500.0] if r == 0 else [10.0])) for r in range(2)]
    ref = [timed(VLLM, r, [12.0] * 100) for r in range(2)]
    assert pooled_p99(ours + ref, ON, 1) == 10.0  # the 198th of 200 in rank order
    assert compare_p99(ours + ref, ON, VLLM, 1) == "0.83 (10 / 12 ms)"
    assert compare_p99(ours + ref, ON, VLLM, 8) == "n/a"
