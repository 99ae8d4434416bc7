"""The scenario's pure parts: the curated FAQ, the evaluation sets, traffic totals, the changed
world's background riders (with a fake batch)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from driftloop.demo import world
from driftloop.demo.scenario import EVERGREEN, ChangedWorld, eval_sets, merge, progress_line, write_curated
from driftloop.demo.simulator import TrafficStats


def test_curated_faq_is_evergreen_and_trained_phrasings_only(tmp_path: Path) -> None:
    path = tmp_path / "curated.jsonl"
    write_curated(path, 50, seed=3, world_seed=7)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 50 and {r["slice"] for r in rows} <= set(EVERGREEN)
    write_curated(tmp_path / "again.jsonl", 50, seed=3, world_seed=7)
    assert (tmp_path / "again.jsonl").read_text() == path.read_text()


def test_eval_sets_split_changed_from_unchanged_facts() -> None:
    new, facts = world.new_world(world.old_world(7))
    changed, unchanged = eval_sets(new, facts, 60, seed=3)
    assert len(changed) == len(unchanged) == 60
    assert all((q.route, q.kind) in facts for q in changed)
    assert not any((q.route, q.kind) in facts for q in unchanged)
    assert eval_sets(new, facts, 60, seed=3) == (changed, unchanged)


def _stats(requests: int, correct: int, version: str) -> TrafficStats:
    s = TrafficStats(requests=requests, correct=correct, feedback=requests // 2, negative=1, corrections=1)
    s.by_version[version] += requests
    return s


def test_merge_adds_up_the_batches() -> None:
    total = merge([_stats(10, 5, "v0"), _stats(30, 25, "r-1"), _stats(10, 10, "r-1")])
    assert (total.requests, total.correct, total.feedback, total.negative, total.corrections) == (50, 40, 25, 3, 3)
    assert dict(total.by_version) == {"v0": 10, "r-1": 40}
    assert progress_line("old world", total) == ("    old world: 50 requests, accuracy 0.80, 25 rated (3 negative, "
                                                 "3 corrections), versions {'v0': 10, 'r-1': 40}")


def test_changed_world_runs_batches_until_stopped() -> None:
    stop = threading.Event()
    batches = threading.Semaphore(0)

    def batch() -> TrafficStats:
        batches.release()
        stop.wait(0.01)
        return _stats(100, 50, "v0")

    traffic = ChangedWorld(batch, stop)
    traffic.thread.start()
    for _ in range(3):
        assert batches.acquire(timeout=5)
    total = traffic.end(timeout=5)
    assert not traffic.thread.is_alive() and total.requests >= 300
    assert traffic.line().startswith(f"    changed world: {total.requests} requests, accuracy 0.50")
