"""The inference benchmark's printed ratios (bench/inference.py): each round's pair compared."""

from __future__ import annotations

from bench.inference import ON, VLLM, compare
from bench.load import Result


def result(target: str, round_: int, tokens: int, wall: float = 1.0) -> Result:
    return Result(target, 8, 10, tokens, wall, 1.0, 2.0, 0, round=round_)


def test_compare_is_the_median_of_per_round_ratios() -> None:
    # round 1 ran on a machine twice as fast for both: its pair still says 1.00
    results = [result(ON, 0, 80), result(VLLM, 0, 100), result(ON, 1, 200), result(VLLM, 1, 200),
               result(ON, 2, 90), result(VLLM, 2, 100)]
    assert compare(results, ON, VLLM, 8) == "0.90 (0.80–1.00)"
    assert compare(results, ON, VLLM, 32) == "n/a"
