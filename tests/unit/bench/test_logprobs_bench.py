"""The engine-only logprobs benchmark's summary (bench/logprobs.py): ratios within a round, CPU per request."""

from __future__ import annotations

from bench.load import Result
from bench.logprobs import summary


def result(key: str, round_: int, tokens: int, client_s: float = 0.1) -> Result:
    return Result(key, 8, 10, tokens, 1.0, 1.0, 2.0, 0, server_cpu_s=client_s, round=round_)


def test_summary_pairs_each_variant_with_the_same_rounds_baseline() -> None:
    # round 1 ran twice as fast for every variant: its ratios are the same as round 0's
    results = [result("none", 0, 100), result("zero", 0, 90), result("flat", 0, 95),
               result("none", 1, 200), result("zero", 1, 160), result("flat", 1, 200)]
    (line,) = summary(results, [(8, 10)])
    assert "zero 0.85 (0.80–0.90)" in line
    assert "flat 0.97 (0.95–1.00)" in line
    # CPU per request: 0.1 s over 10 requests = 10 ms in this process (vLLM's client)
    assert "none: 150 tok/s, p99 2 ms, client 10.00 ms CPU/request" in line
