"""bench/events.py's arithmetic: the interleaved order, CPU per event, the medians over repeats."""

from __future__ import annotations

from bench.events import Cell, medians, order


def cell(rate: float, interval_ms: int, repeat: int, cpu_s: float, events: int = 100) -> Cell:
    return Cell(rate, interval_ms, repeat, events, events, cpu_s, 0.0, 0.1)


def test_the_intervals_run_a_b_b_a() -> None:
    assert order([0, 250], 3) == [(0, 0), (0, 250), (1, 250), (1, 0), (2, 0), (2, 250)]
    assert order([0, 100, 250], 2) == [(0, 0), (0, 100), (0, 250), (1, 250), (1, 100), (1, 0)]


def test_ms_per_event_is_the_process_cpu_over_the_events() -> None:
    assert cell(60, 0, 0, cpu_s=0.9, events=450).ms_per_event == 2.0
    assert cell(60, 0, 0, cpu_s=0.0, events=0).ms_per_event == 0.0


def test_medians_are_per_rate_and_interval_over_the_repeats() -> None:
    cells = [cell(25, 0, 0, 0.2), cell(25, 0, 1, 0.4), cell(25, 0, 2, 0.3),
             cell(25, 250, 0, 0.05), cell(25, 250, 1, 0.07), cell(60, 0, 0, 0.1)]
    got = medians(cells)
    assert got.keys() == {(25, 0), (25, 250), (60, 0)}
    assert abs(got[(25, 0)] - 3.0) < 1e-9 and abs(got[(25, 250)] - 0.6) < 1e-9 and abs(got[(60, 0)] - 1.0) < 1e-9
