"""A version that passed the gate goes out: canary → observe → promote or roll back (the first version
of an alias goes straight to stable). Each step is journaled before it is published (see
``rollouts.py``), so a retry continues where the last try stopped; ``Release.abandon`` rolls back a
canary a run that failed for good left behind."""

from __future__ import annotations

import time
from collections.abc import Callable

from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer.inference_client import RouteReader
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.rollouts import FINAL, Journal, Rollouts, Step
from driftloop.retrainer.triggers import RunOutcome, outcome
from driftloop.v1 import events_pb2

Observe = Callable[[str, str, str], tuple[bool, str]]
"""(alias, stable, canary) → (healthy, detail), once the canary has had its traffic."""


class Release:
    def __init__(self, rollouts: Rollouts, routes: RouteReader, registry: Registry, observe: Observe,
                 metrics: RetrainerMetrics, canary_weight: float, clock: Callable[[], float] = time.time) -> None:
        self.rollouts = rollouts
        self.routes = routes
        self.registry = registry
        self.observe = observe
        self.m = metrics
        self.canary_weight = canary_weight
        self.clock = clock

    def run(self, journal: Journal, trigger: events_pb2.RetrainTrigger, version: str) -> RunOutcome:
        step = journal.last()
        if step is None:
            return self._start(journal, trigger, version)
        if step.action != "canary":  # a retry after the verdict: carry out what was journaled last
            return self._outcome(trigger, version, self.rollouts.resume(journal, version))
        with self.m.stage_seconds.labels("canary").time():
            step = self.rollouts.resume(journal, version)
            healthy, detail = self.observe(trigger.adapter_alias, step.stable, version)
        return self._verdict(journal, trigger, version, step, healthy, detail)

    def abandon(self, journal: Journal, trigger: events_pb2.RetrainTrigger, version: str) -> str:
        """After a run failed for good: if its version is out as a canary, route all traffic back to
        stable and record the version as rolled back. Returns a note for the outcome's detail."""
        alias = trigger.adapter_alias
        step = journal.last()
        if step is None or step.action != "canary" or not self.registry.exists(alias, version):
            return ""
        if self.registry.get(alias, version).status in FINAL:
            return ""
        self.rollouts.rollback(journal, alias, step.stable, version, trigger.trigger_id,
                               "run failed during the canary")
        return f"; canary {version} rolled back"

    def _start(self, journal: Journal, trigger: events_pb2.RetrainTrigger, version: str) -> RunOutcome:
        alias = trigger.adapter_alias
        route = self.routes.route(alias)
        if route is None:  # nothing routed yet: the first version goes straight to stable
            step = self.rollouts.promote(journal, alias, version, trigger.trigger_id, "first version of the alias")
            return self._outcome(trigger, version, step, "first version")
        with self.m.stage_seconds.labels("canary").time():
            step = self.rollouts.canary(journal, alias, route.stable_version, version, self.canary_weight,
                                        trigger.trigger_id, f"weight {self.canary_weight}")
            healthy, detail = self.observe(alias, step.stable, version)
        return self._verdict(journal, trigger, version, step, healthy, detail)

    def _verdict(self, journal: Journal, trigger: events_pb2.RetrainTrigger, version: str, canary: Step,
                 healthy: bool, detail: str) -> RunOutcome:
        alias, tid = trigger.adapter_alias, trigger.trigger_id
        step = (self.rollouts.promote(journal, alias, version, tid, detail) if healthy
                else self.rollouts.rollback(journal, alias, canary.stable, version, tid, detail))
        return self._outcome(trigger, version, step)

    def _outcome(self, trigger: events_pb2.RetrainTrigger, version: str, step: Step,
                 detail: str | None = None) -> RunOutcome:
        if step.action == "promote":
            self.m.last_success.labels(trigger.adapter_alias).set(self.clock())
            return outcome(trigger, version, "promoted", step.reason if detail is None else detail)
        return outcome(trigger, version, "rolled_back", step.reason)
