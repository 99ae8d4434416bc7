"""Rollout steps of a retraining run, made idempotent by a journal.

``Rollouts.canary``, ``Rollouts.promote`` and ``Rollouts.rollback`` each carry out one step: it is
written to the run's journal *before* it is published to the compacted rollouts topic; publishing
waits until the inference replica applied it, and only then is the version's status recorded. A
retry after a crash or a failure anywhere in between continues from the journal's last step
(``Rollouts.resume``) — it republishes that step if the replica does not show it yet, and never
plans the rollout again. So a retry can never publish a record whose stable and canary are the
same version, nor send out as a canary a version that was already rolled back or promoted.
A step taken by hand (``Rollouts.by_hand``) has no journal: it is always published and recorded.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from driftloop.core import failpoints
from driftloop.core.kafka import EventProducer
from driftloop.core.metrics import RetrainerMetrics
from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.retrainer.inference_client import RouteReader
from driftloop.retrainer.registry import Registry, rel_path
from driftloop.retrainer.waiting import poll
from driftloop.v1 import events_pb2, inference_pb2

log = logging.getLogger(__name__)

ACTIONS = ("canary", "promote", "rollback")
STATUS_AFTER = {"canary": "canary", "promote": "promoted", "rollback": "rolled_back"}
FINAL = ("promoted", "rejected", "rolled_back")


class RolloutRefused(ValueError):
    """A step that must never be published (it would break the route or repeat a finished rollout)."""


@dataclass
class Step:
    action: str
    alias: str
    stable: str
    canary: str
    weight: float
    generation: int
    rollout_id: str
    trigger_id: str = ""
    reason: str = ""  # what the version's status will say once the step is applied
    published: bool = False

    def shown_by(self, route: inference_pb2.AdapterRoute | None) -> bool:
        return route is not None and route.stable_version == self.stable and route.canary_version == self.canary


class Journal:
    """The steps of one run, oldest first, in ``rollout.json`` (written atomically, fsynced)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def steps(self) -> list[Step]:
        if not self.path.exists():
            return []
        return [Step(**d) for d in json.loads(self.path.read_text())]

    def last(self) -> Step | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def _write(self, steps: list[Step]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump([asdict(s) for s in steps], f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, step: Step) -> None:
        self._write([*self.steps(), step])

    def mark_published(self) -> None:
        steps = self.steps()
        steps[-1].published = True
        self._write(steps)


class Rollouts:
    """Rollout steps: each publishes its AdapterRollout, waits until the replica applied it, and
    records the version's status. With a journal a step is idempotent (a retry resumes it); without
    one (``None``: by hand) it is always published and recorded."""

    def __init__(self, producer: EventProducer, client: RouteReader, registry: Registry,
                 metrics: RetrainerMetrics | None = None, apply_timeout_s: float = 120.0, poll_s: float = 0.5,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.producer = producer
        self.client = client
        self.registry = registry
        self.m = metrics
        self.apply_timeout_s = apply_timeout_s
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep

    # -- the three steps ---------------------------------------------------------------------------
    def canary(self, journal: Journal | None, alias: str, stable: str, version: str, weight: float,
               trigger_id: str = "", reason: str = "") -> Step:
        """``version`` takes ``weight`` of the traffic beside ``stable``; it is then a canary."""
        return self._take(journal, self.plan(alias, "canary", stable, version, weight, trigger_id, reason), version)

    def promote(self, journal: Journal | None, alias: str, version: str, trigger_id: str = "",
                reason: str = "") -> Step:
        """``version`` takes all traffic; it is then promoted."""
        return self._take(journal, self.plan(alias, "promote", version, trigger_id=trigger_id, reason=reason),
                          version)

    def rollback(self, journal: Journal | None, alias: str, stable: str, version: str, trigger_id: str = "",
                 reason: str = "") -> Step:
        """All traffic back to ``stable``; ``version`` (the one rolled back, if any) is then rolled back."""
        return self._take(journal, self.plan(alias, "rollback", stable, trigger_id=trigger_id, reason=reason),
                          version)

    def by_hand(self, action: str, alias: str, version: str) -> Step:
        """An operator's promote or rollback to ``version`` (registered), straight to stable, never a
        canary; a rollback marks the version it routes away from rolled back."""
        self.registry.get(alias, version)  # must exist
        route = self.client.route(alias)
        if action == "promote":
            return self.promote(None, alias, version, reason="by hand")
        serving = route.stable_version if route is not None else ""
        away = serving if serving and serving != version and self.registry.exists(alias, serving) else ""
        return self.rollback(None, alias, version, away, reason="by hand")

    def resume(self, journal: Journal, version: str) -> Step:
        """Carry out the journal's last step: republish it unless the replica already shows it (with a
        fresh generation if the route moved on meanwhile), then record the status it leads to."""
        step = journal.last()
        if step is None:
            raise RolloutRefused("nothing journaled")
        route = self.client.route(step.alias)
        if not step.shown_by(route):
            if route is not None and route.generation >= step.generation:  # superseded before it applied
                step = self._replan(step)
                journal.append(step)
            self._publish(step)
        if not step.published:
            journal.mark_published()
        self._record(step, version, always=False)
        return step

    # -- planning, publishing, recording -------------------------------------------------------------
    def plan(self, alias: str, action: str, stable: str, canary: str = "", weight: float = 0.0,
             trigger_id: str = "", reason: str = "") -> Step:
        """A step against the route as it is now; refuses anything that would break it."""
        if action not in ACTIONS:
            raise RolloutRefused(f"unknown rollout action {action!r}")
        if not stable:
            raise RolloutRefused(f"{action} of {alias} names no stable version")
        if canary and canary == stable:
            raise RolloutRefused(f"{action} of {alias}: stable and canary are both {stable}")
        if action == "canary":
            if not canary:
                raise RolloutRefused(f"canary of {alias} names no canary version")
            status = self.registry.get(alias, canary).status if self.registry.exists(alias, canary) else ""
            if status in FINAL:
                raise RolloutRefused(f"{alias}/{canary} is already {status}; it is never a canary again")
        route = self.client.route(alias)
        ms = int(self.clock() * 1000)
        return Step(action, alias, stable, canary, weight if canary else 0.0,
                    (route.generation if route else 0) + 1, f"{alias}-{action}-{ms}", trigger_id, reason)

    def _replan(self, step: Step) -> Step:
        return self.plan(step.alias, step.action, step.stable, step.canary, step.weight, step.trigger_id, step.reason)

    def _take(self, journal: Journal | None, step: Step, version: str) -> Step:
        if journal is None:
            self._publish(step)
            self._record(step, version, always=True)
            return step
        journal.append(step)
        failpoints.hit(f"rollout.{step.action}.journaled")
        return self.resume(journal, version)

    def _publish(self, step: Step) -> None:
        """Send the step's record and wait until the replica shows it."""
        log.info("publishing %s of %s (stable=%s canary=%s gen=%d)", step.action, step.alias, step.stable,
                 step.canary or "-", step.generation)
        self.producer.send_and_wait(ADAPTER_ROLLOUTS, step.alias, self._record_of(step))
        if self.m is not None:
            self.m.rollouts.labels(step.alias, step.action).inc()
        if not poll(lambda: step.shown_by(self.client.route(step.alias)), bool, self.apply_timeout_s, self.poll_s,
                    self.sleep):
            raise TimeoutError(f"inference did not apply the {step.action} of {step.alias} within "
                               f"{self.apply_timeout_s:.0f} s")
        failpoints.hit(f"rollout.{step.action}.published")

    def _record_of(self, step: Step) -> events_pb2.AdapterRollout:
        r = events_pb2.AdapterRollout(adapter_alias=step.alias, rollout_id=step.rollout_id,
                                      generation=step.generation, action=step.action,
                                      canary_weight=step.weight, trigger_id=step.trigger_id)
        r.time.FromMilliseconds(int(self.clock() * 1000))
        r.stable.version, r.stable.path = step.stable, rel_path(step.alias, step.stable)
        if step.canary:
            r.canary.version, r.canary.path = step.canary, rel_path(step.alias, step.canary)
        return r

    def _record(self, step: Step, version: str, always: bool) -> None:
        """``version``'s status after the step (unless it already says so, for a journaled step)."""
        status = STATUS_AFTER[step.action]
        if version and (always or self.registry.get(step.alias, version).status != status):
            self.registry.set_status(step.alias, version, status, step.reason)
            failpoints.hit(f"rollout.{step.action}.recorded")
