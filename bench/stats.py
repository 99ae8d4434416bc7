"""The benchmarks' arithmetic, kept apart so a unit test can hold it honest
(tests/unit/bench/test_stats.py): percentiles, min/median over repeats, ratios, the load check."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(min, median, max) of repeated measurements of one cell."""
    return min(values), statistics.median(values), max(values)


def paired_ratios(ours: dict[int, float], reference: dict[int, float]) -> list[float]:
    """ours[k] / reference[k] for every key (a round) both measured: each ratio compares two
    measurements taken back to back, so a change of the machine's speed between rounds cancels."""
    return [ours[k] / reference[k] for k in sorted(ours.keys() & reference.keys()) if reference[k]]


def moved(a: float, b: float) -> float:
    """How far two measurements of one figure are apart: the larger over the smaller, minus one
    (symmetric; 0.15 = 15 %). Infinite when one is zero and the other is not."""
    lo, hi = sorted((a, b))
    if lo <= 0:
        return 0.0 if hi == lo else float("inf")
    return hi / lo - 1


def busy(max_load: float, cpus: int | None = None) -> str | None:
    """Why the machine is too busy to benchmark (the 1-minute load average per core above
    ``max_load``), or None."""
    one, _, _ = load()
    per_core = one / (cpus or os.cpu_count() or 1)
    return None if per_core <= max_load else f"1-minute load average {one:.2f} ({per_core:.2f} per core) > {max_load}"


def refuse_if_busy(max_load: float, force: bool) -> str | None:
    """Stop the benchmark (SystemExit) when the machine is busy, unless ``force``: then the reason is
    returned, for the benchmark to print and record beside its figures. None when idle."""
    too_busy = busy(max_load)
    if too_busy and not force:
        raise SystemExit(f"machine busy: {too_busy}; stop the other jobs (or pass --force)")
    return too_busy


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def first_streak(run: Sequence[bool], streak: int) -> int | None:
    """How many windows a run takes to hold ``streak`` drifted windows in a row (the window count
    at which a policy needing that many would trigger), None if it never does."""
    current = 0
    for i, drifted in enumerate(run):
        current = current + 1 if drifted else 0
        if current >= streak:
            return i + 1
    return None


def streak_runs(verdicts: Sequence[Sequence[bool]], streak: int) -> int:
    """How many runs (each a sequence of per-window drift verdicts) hold ``streak`` drifted windows
    in a row: the runs in which a policy needing that many consecutive windows would trigger."""
    return sum(first_streak(run, streak) is not None for run in verdicts)
