"""bench/monitor.py's arithmetic and bench/pyspy.py's categories: what the printed figures rest on."""

from __future__ import annotations

import math

import pytest

from bench import pyspy
from bench.monitor import shares, steady_rate, total


def test_steady_rate_counts_only_the_seconds_with_progress() -> None:
    # joining the group for 2 s, then 500 events/s for 4 s, then done
    series = [(0.0, 6000, 0), (1.0, 6000, 0), (2.0, 6000, 0), (3.0, 5500, 500), (4.0, 5000, 1000),
              (5.0, 4500, 1500), (6.0, 4000, 2000)]
    assert steady_rate(series) == pytest.approx(500.0)  # from (2 s, 0) to (6 s, 2000)
    assert math.isnan(steady_rate([(0.0, 10, 0), (1.0, 10, 0)]))


def test_shares_leave_the_rest_unaccounted() -> None:
    out = shares({"kafka": 1.0, "embedding": 2.0}, wall_s=4.0)
    assert out == {"kafka": 0.25, "embedding": 0.5, "unaccounted": 0.25}


def test_total_sums_the_samples_with_the_labels() -> None:
    samples = {'m_total{stage="kafka"}': 1.0, 'm_total{stage="handle"}': 2.0, 'other_total{stage="kafka"}': 5.0,
               'm_created{stage="kafka"}': 9.0}
    assert total(samples, "m_total") == 3.0 and total(samples, "m_total", stage="kafka") == 1.0


def test_pyspy_stacks_go_to_the_first_matching_category() -> None:
    loop = "thread (0x1);<module> (driftloop/monitor/__main__.py:20);run (driftloop/monitor/service.py:104)"
    raw = [
        f"{loop};step (driftloop/monitor/service.py:120);_flush (driftloop/monitor/service.py:210);"
        "embed (driftloop/monitor/embedding.py:27);forward (torch/nn/modules/module.py:1) 60",
        f"{loop};_close_window (driftloop/monitor/streams.py:150);run_window_tests (driftloop/monitor/detectors.py:40);"
        "mmd (driftloop/monitor/backends.py:64);score (alibi_detect/cd/pytorch/mmd.py:120) 20",
        f"{loop};process (driftloop/core/kafka.py:240);poll (kafka/consumer/group.py:700) 10",
        f"{loop};process (driftloop/core/kafka.py:240);_decode (driftloop/core/kafka.py:220);"
        "decode (driftloop/core/codec.py:50) 5",
        "thread (0x2);run (kafka/coordinator/heartbeat.py:10) 5",
        "not a stack line",
    ]
    got = pyspy.where_the_time_goes(pyspy.parse(raw))
    assert got == {"embedding (MiniLM)": 0.6, "drift test: MMD": 0.2, "Kafka client (fetch, records, commit)": 0.1,
                   "decode (protobuf)": 0.05, "other threads": 0.05}
