"""The benchmarks' arithmetic (bench/stats.py): what the printed tables and ratios rest on."""

from __future__ import annotations

import math

import pytest

from bench import stats


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]  # 1..100
    assert stats.percentile(values, 0.5) == 51.0 and stats.percentile(values, 0.99) == 99.0
    assert stats.percentile(values, 0.0) == 1.0 and stats.percentile(values, 1.0) == 100.0
    assert stats.percentile([3.0, 1.0, 2.0], 0.5) == 2.0  # unsorted input
    assert math.isnan(stats.percentile([], 0.5))


def test_spread_is_min_median_max() -> None:
    assert stats.spread([3.0, 1.0, 2.0, 10.0]) == (1.0, 2.5, 10.0)


def test_busy_reads_the_load_per_core(monkeypatch) -> None:
    monkeypatch.setattr(stats.os, "getloadavg", lambda: (3.0, 1.0, 1.0))
    assert stats.busy(1.0, cpus=2) is not None and "3.00" in stats.busy(1.0, cpus=2)
    assert stats.busy(2.0, cpus=2) is None


def test_streak_runs_counts_runs_not_streaks() -> None:
    from bench.stats import streak_runs

    runs = [[False, True, True, False, True, True], [True, False, True, False], [True, True, True], []]
    assert streak_runs(runs, 1) == 3
    assert streak_runs(runs, 2) == 2  # the first run has two streaks of 2: counted once
    assert streak_runs(runs, 3) == 1
    assert streak_runs(runs, 4) == 0


def test_paired_ratios_compare_within_a_round() -> None:
    # the machine doubled its speed between rounds 0 and 1: each round's pair still says 0.9
    ours, reference = {0: 90.0, 1: 180.0, 2: 45.0}, {0: 100.0, 1: 200.0, 3: 50.0}
    assert stats.paired_ratios(ours, reference) == pytest.approx([0.9, 0.9])  # rounds 2, 3: no pair
    assert stats.paired_ratios({0: 1.0}, {0: 0.0}) == []


def test_first_streak_is_the_window_count_at_which_the_policy_triggers() -> None:
    from bench.stats import first_streak
    assert first_streak([False, True, True, False, True, True, True], 3) == 7
    assert first_streak([True, True, True], 3) == 3
    assert first_streak([True, False, True, False], 2) is None


def test_refuse_if_busy_stops_a_busy_run_unless_forced(monkeypatch) -> None:
    import pytest

    monkeypatch.setattr(stats.os, "getloadavg", lambda: (6.0, 1.0, 1.0))
    monkeypatch.setattr(stats.os, "cpu_count", lambda: 2)
    with pytest.raises(SystemExit, match="machine busy: 1-minute load average 6.00"):
        stats.refuse_if_busy(0.5, force=False)
    assert "6.00" in stats.refuse_if_busy(0.5, force=True)
    monkeypatch.setattr(stats.os, "getloadavg", lambda: (0.4, 1.0, 1.0))
    assert stats.refuse_if_busy(0.5, force=False) is None
