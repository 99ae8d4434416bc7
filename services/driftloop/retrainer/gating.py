"""The acceptance gate of a run, measured through a running inference replica: the candidate loaded
under a private alias, the serving version as routed, both on the held-out rows; the verdict by
``evaluate.gate`` with the criteria fixed before training, and the scores exported as gauges."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer.data import Example
from driftloop.retrainer.evaluate import Answerer, Evaluation, GateCriteria, GateReport, evaluate, gate
from driftloop.retrainer.inference_client import RouteReader

log = logging.getLogger(__name__)

Evaluator = Callable[[Answerer, Sequence[Example], int], Evaluation]


class GateClient(RouteReader, Protocol):
    def answerer(self, alias: str = "", version: str = "") -> Answerer: ...
    def load(self, alias: str, version: str, path: str) -> None: ...
    def unload(self, alias: str, version: str) -> None: ...


def gate_alias(alias: str) -> str:
    """The private alias a candidate is loaded under while the gate measures it (never routed)."""
    return f"gate-{hashlib.sha256(alias.encode()).hexdigest()[:16]}"


class Gate:
    def __init__(self, client: GateClient, metrics: RetrainerMetrics, seed: int = 0,
                 evaluator: Evaluator = evaluate) -> None:
        self.client = client
        self.m = metrics
        self.seed = seed
        self.evaluate = evaluator

    def __call__(self, alias: str, version: str, path: str, test: list[Example],
                 criteria: GateCriteria) -> GateReport:
        """Judge the candidate at ``path`` (relative to the registry root) against what serves ``alias``."""
        candidate = self._candidate(alias, version, path, test)
        serving = self._serving(alias, version, test)
        self._export(alias, candidate, serving)
        return gate(candidate, serving, criteria)

    def _candidate(self, alias: str, version: str, path: str, test: list[Example]) -> Evaluation:
        eval_alias = gate_alias(alias)
        self.client.load(eval_alias, version, path)
        t0 = time.perf_counter()
        try:
            ev = self.evaluate(self.client.answerer(eval_alias, version), test, self.seed)
        finally:
            self.client.unload(eval_alias, version)
        log.info("gate %s/%s: candidate measured in %.0f s (test EM %.3f)", alias, version,
                 time.perf_counter() - t0, ev.test.exact_match)
        return ev

    def _serving(self, alias: str, version: str, test: list[Example]) -> Evaluation:
        t0 = time.perf_counter()
        route = self.client.route(alias)
        ev = self.evaluate(self.client.answerer(alias if route else "", route.stable_version if route else ""),
                           test, self.seed)
        log.info("gate %s/%s: serving version measured in %.0f s (test EM %.3f)", alias, version,
                 time.perf_counter() - t0, ev.test.exact_match)
        return ev

    def _export(self, alias: str, candidate: Evaluation, serving: Evaluation) -> None:
        for role, ev in (("candidate", candidate), ("serving", serving)):
            self.m.gate_score.labels(alias, "exact_match", role).set(ev.test.exact_match)
            self.m.gate_score.labels(alias, "regression_exact_match", role).set(ev.regression.exact_match)
            self.m.gate_score.labels(alias, "corrections_exact_match", role).set(ev.fresh.exact_match)

