"""Rollout steps of a retraining run, made idempotent by a journal.

A step (canary, promote, rollback) is written to the run's journal *before* it is published to the
compacted rollouts topic; publishing waits until the inference replica applied it, and only then is
the version's status recorded. A retry after a crash or a failure anywhere in between continues
from the journal's last step — it republishes that step if the replica does not show it yet, and
never plans the rollout again. So a retry can never publish a record whose stable and canary are the
same version, nor send out as a canary a version that was already rolled back or promoted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from driftloop.core import failpoints
from driftloop.core.kafka import EventProducer
from driftloop.core.metrics import RetrainerMetrics
from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.retrainer.registry import Registry
from driftloop.v1 import events_pb2, inference_pb2

log = logging.getLogger(__name__)

ACTIONS = ("canary", "promote", "rollback")
STATUS_AFTER = {"canary": "canary", "promote": "promoted", "rollback": "rolled_back"}
FINAL = ("promoted", "rejected", "rolled_back")


class RouteReader(Protocol):
    def route(self, alias: str) -> inference_pb2.AdapterRoute | None: ...


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
    """Publishes rollout steps and records each version's status after its step took effect."""

    def __init__(self, producer: EventProducer, client: RouteReader, registry: Registry,
                 metrics: RetrainerMetrics | None = None, apply_timeout_s: float = 120.0,
                 clock=time.time) -> None:
        self.producer = producer
        self.client = client
        self.registry = registry
        self.m = metrics
        self.apply_timeout_s = apply_timeout_s
        self.clock = clock

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

    def publish(self, step: Step) -> None:
        """Send the step's record and wait until the replica shows it."""
        r = events_pb2.AdapterRollout(adapter_alias=step.alias, rollout_id=step.rollout_id,
                                      generation=step.generation, action=step.action,
                                      canary_weight=step.weight, trigger_id=step.trigger_id)
        r.time.FromMilliseconds(int(self.clock() * 1000))
        r.stable.version, r.stable.path = step.stable, f"{step.alias}/{step.stable}"
        if step.canary:
            r.canary.version, r.canary.path = step.canary, f"{step.alias}/{step.canary}"
        self.producer.send_and_wait(ADAPTER_ROLLOUTS, step.alias, r)
        if self.m is not None:
            self.m.rollouts.labels(step.alias, step.action).inc()
        deadline = time.monotonic() + self.apply_timeout_s
        while time.monotonic() < deadline:  # wait until the replica applied it
            if step.shown_by(self.client.route(step.alias)):
                return
            time.sleep(0.5)
        raise TimeoutError(f"inference did not apply the {step.action} of {step.alias} within "
                           f"{self.apply_timeout_s:.0f} s")

    def take(self, journal: Journal, step: Step, version: str) -> Step:
        """Journal a new step, then carry it out (publish, wait, record ``version``'s status)."""
        journal.append(step)
        failpoints.hit(f"rollout.{step.action}.journaled")
        return self.finish(journal, version)

    def finish(self, journal: Journal, version: str) -> Step:
        """Carry out the journal's last step: republish it unless the replica already shows it (with a
        fresh generation if the route moved on meanwhile), then record the status it leads to."""
        step = journal.last()
        if step is None:
            raise RolloutRefused("nothing journaled")
        route = self.client.route(step.alias)
        if not step.shown_by(route):
            if route is not None and route.generation >= step.generation:  # superseded before it applied
                fresh = self.plan(step.alias, step.action, step.stable, step.canary, step.weight, step.trigger_id,
                                  step.reason)
                journal.append(fresh)
                step = fresh
            log.info("publishing %s of %s (stable=%s canary=%s gen=%d)", step.action, step.alias, step.stable,
                     step.canary or "-", step.generation)
            self.publish(step)
            failpoints.hit(f"rollout.{step.action}.published")
        if not step.published:
            journal.mark_published()
        status = STATUS_AFTER[step.action]
        current = self.registry.get(step.alias, version).status
        if current != status:
            self.registry.set_status(step.alias, version, status, step.reason)
            failpoints.hit(f"rollout.{step.action}.recorded")
        return step
