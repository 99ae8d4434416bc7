"""The scenario: the transit world before and after its change, the riders who ask about it, and the
evaluation sets that measure what the served version knows. Knows nothing of processes or metrics.

One seeded random stream drives the riders' questions, in the order of the phases: the old world,
the changed world (until the loop has promoted a version), the new normal.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from driftloop.demo import world
from driftloop.demo.settings import DemoSettings
from driftloop.demo.simulator import Riders, TrafficStats
from driftloop.demo.timeline import Timeline

EVERGREEN = ("terminal", "fare", "accessible", "first")  # kinds the agency curates; schedules change too often
Evaluate = Callable[[str, Sequence[world.QA]], dict]
"""evaluate(version, questions) -> {"version", "n", "accuracy", ...}: exact match of one pinned version."""


def write_curated(path: Path, n: int, seed: int, world_seed: int) -> None:
    """The agency's curated FAQ: evergreen facts of the old world, in trained phrasings."""
    pool = [q for q in world.all_qa(world.old_world(world_seed), EVERGREEN) if not q.held_out]
    rows = random.Random(seed).sample(pool, min(n, len(pool)))
    path.write_text("".join(json.dumps({"question": q.question, "answer": q.answer, "slice": q.kind}) + "\n"
                            for q in rows))


def eval_sets(new: dict, facts: set, n: int, seed: int) -> tuple[list[world.QA], list[world.QA]]:
    """Questions riders ask after the change, about changed and about unchanged facts."""
    rng = random.Random(seed + 1000)
    changed = world.sample_traffic(new, rng, n, colloquial_share=0.6, focus=facts, focus_share=1.0)
    pool = [q for q in world.all_qa(new) if (q.route, q.kind) not in facts]
    unchanged = rng.sample(pool, n)
    return changed, unchanged


def merge(parts: Sequence[TrafficStats]) -> TrafficStats:
    total = TrafficStats()
    for p in list(parts):
        for k in ("requests", "correct", "errors", "feedback", "negative", "corrections"):
            setattr(total, k, getattr(total, k) + getattr(p, k))
        total.by_version.update(p.by_version)
        total.by_transport.update(p.by_transport)
        total.correct_by_transport.update(p.correct_by_transport)
    return total


def progress_line(phase: str, st: TrafficStats) -> str:
    return (f"    {phase}: {st.requests} requests, accuracy {st.accuracy:.2f}, {st.feedback} rated "
            f"({st.negative} negative, {st.corrections} corrections), versions {dict(st.by_version)}")


class ChangedWorld:
    """Riders asking about the changed world in the background until ``stop`` is set."""

    def __init__(self, run_batch: Callable[[], TrafficStats], stop: threading.Event) -> None:
        self.stop = stop
        self.parts: list[TrafficStats] = []
        self._run_batch = run_batch
        self.thread = threading.Thread(target=self._loop, name="changed-world", daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.parts.append(self._run_batch())

    def totals(self) -> TrafficStats:
        return merge(self.parts)

    def line(self) -> str:
        t = self.totals()
        return (f"    changed world: {t.requests} requests, accuracy {t.accuracy:.2f}, {t.negative}/{t.feedback} "
                f"negative, {t.corrections} corrections, versions {dict(t.by_version)}")

    def end(self, timeout: float = 120) -> TrafficStats:
        self.stop.set()
        self.thread.join(timeout)
        return self.totals()


class Scenario:
    def __init__(self, s: DemoSettings, world_seed: int, riders: Riders, evaluate: Evaluate,
                 timeline: Timeline) -> None:
        self.s = s
        self.riders = riders
        self.evaluate = evaluate
        self.timeline = timeline
        self.old = world.old_world(world_seed)
        change, self.description = world.SCENARIOS[s.scenario]
        self.new, self.facts = change(self.old)
        self.rng = random.Random(s.seed)
        self.changed_eval, self.unchanged_eval = eval_sets(self.new, self.facts, s.eval_size, s.seed)

    def old_world(self) -> TrafficStats:
        s = self.s
        self.timeline.event("phase: old world", f"{s.before_requests} requests")
        questions = world.sample_traffic(self.old, self.rng, s.before_requests, s.colloquial_before)
        return self.riders.run(questions, "before", rate=s.rate,
                               on_progress=lambda st: print(progress_line("old world", st), flush=True))

    def accuracy(self, version: str) -> dict:
        """Exact match of ``version`` on the changed and on the unchanged facts of the new world
        (evaluation requests: the monitor ignores them)."""
        return {"changed": self.evaluate(version, self.changed_eval),
                "unchanged": self.evaluate(version, self.unchanged_eval)}

    def change(self) -> None:
        self.timeline.event("world change", f"{len(self.facts)} facts changed ({self.description}); riders more "
                            "colloquial")

    def _changed_questions(self, n: int) -> list[world.QA]:
        s = self.s
        return world.sample_traffic(self.new, self.rng, n, s.colloquial_after, focus=self.facts,
                                    focus_share=s.focus_after)

    def changed_world(self, stop: threading.Event, rate: Callable[[], float]) -> ChangedWorld:
        """Start riders on the changed world (batches of 100 questions, at ``rate()`` per second)."""
        self.timeline.event("phase: changed world", "riders keep asking until the loop has promoted a version")
        traffic = ChangedWorld(lambda: self.riders.run(self._changed_questions(100), "after", stop=stop, rate=rate),
                               stop)
        traffic.thread.start()
        return traffic

    def settle(self, version: str) -> TrafficStats:
        """The new normal: riders on the new world, answered by ``version``."""
        self.timeline.event("phase: new normal", f"{self.s.settle_requests} requests on {version}")
        return self.riders.run(self._changed_questions(self.s.settle_requests), "settled")
