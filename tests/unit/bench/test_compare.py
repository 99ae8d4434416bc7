"""bench.compare: two bench-inference reports, cell by cell."""

from __future__ import annotations

import math

from bench.compare import cells, compare
from bench.stats import moved


def report(cells_: dict[tuple[str, int], list[tuple[float, float]]]) -> dict:
    """A bench-inference report whose cells hold (tokens/s, front-end CPU ms/request) per round."""
    return {"results": [{"target": t, "concurrency": c, "round": i, "tokens_per_s": tps,
                         "server_cpu_ms_per_request": cpu}
                        for (t, c), rounds in cells_.items() for i, (tps, cpu) in enumerate(rounds)]}


def test_moved_is_symmetric_and_relative() -> None:
    assert moved(100, 115) == moved(115, 100)
    assert math.isclose(moved(100, 115), 0.15)
    assert moved(5, 5) == 0 and moved(0, 0) == 0 and moved(0, 3) == math.inf


def test_cells_take_the_median_and_the_best_round() -> None:
    got = cells(report({("A", 8): [(100, 3.0), (300, 2.0), (200, 4.0), (250, 1.0)]}))
    assert got == {("A", 8): {"median": 225, "best": 300, "cpu": 2.5}}


def test_compare_counts_the_cells_within_the_tolerance_and_skips_cells_one_run_lacks() -> None:
    a = report({("A", 1): [(100, 2.0), (110, 2.0), (120, 2.0)], ("B", 1): [(50, 1.0)], ("C", 1): [(9, 9.0)]})
    b = report({("A", 1): [(90, 2.1), (130, 2.2), (135, 2.0)], ("B", 1): [(60, 1.0)]})
    lines, within = compare(a, b, 0.15)
    # A: median 110 vs 130 (18 % !), best 120 vs 135 (12.5 %), CPU 2.0 vs 2.1 (5 %); B: 50 vs 60 (20 %)
    assert within == {"median": (0, 2), "best": (1, 2), "cpu": (2, 2)}
    assert len(lines) == 2 + 2 and "18 % !" in lines[2] and "| C |" not in "\n".join(lines)
