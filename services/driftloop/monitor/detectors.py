"""A closed window's drift tests against its stream's reference: MMD on prompt embeddings, KS on
the numeric features, chi-squared on the categorical ones (Bonferroni-corrected per kind). Pure
statistics: each test's result comes back with its sample count and how long it ran. What a test
needs from the reference (the MMD's kernel block, alibi's detectors, the feature columns) is built
once per reference (:class:`PreparedReference`), not per window."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from driftloop.monitor.backends import DriftBackend, TestResult
from driftloop.monitor.features import Features, Sample, column
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import CHI2_SIGNALS, KS_SIGNALS


@dataclass(frozen=True)
class Tested:
    result: TestResult
    samples: int
    seconds: float  # run time of the test (with preparing the reference, when it was not ready)


@dataclass
class PreparedReference:
    """A complete reference as the tests use it; each test's part is prepared on first use."""

    backend: DriftBackend
    features: list[Features]
    embeddings: list[np.ndarray]
    _prepared: dict[str, tuple[object, int]] = field(default_factory=dict)  # signal -> (prepared, samples)

    def samples(self, name: str) -> int:
        """Reference values a test has (embeddings; numeric values that are not NaN; categories)."""
        if name == "input_embedding":
            return len(self.embeddings)
        return self._get(name)[1]

    def prepared(self, name: str) -> object:
        return self._get(name)[0]

    def _get(self, name: str) -> tuple[object, int]:
        if name not in self._prepared:
            self._prepared[name] = self._prepare(name)
        return self._prepared[name]

    def _prepare(self, name: str) -> tuple[object, int]:
        if name == "input_embedding":
            return self.backend.prepare_mmd(np.stack(self.embeddings)), len(self.embeddings)
        values = column(self.features, name)
        if name in KS_SIGNALS:
            values = values[~np.isnan(values)]
            return self.backend.prepare_ks(values, corrections=len(KS_SIGNALS)), len(values)
        return self.backend.prepare_chi2(values.astype(int), corrections=len(CHI2_SIGNALS)), len(values)


def _timed(test: Callable[[], TestResult], samples: int) -> Tested:
    t0 = time.perf_counter()
    result = test()
    return Tested(result, samples, time.perf_counter() - t0)


def run_window_tests(s: MonitorSettings, reference: PreparedReference, window: list[Sample],
                     features: bool = True) -> dict[str, Tested]:
    """The tests that have enough data, by signal (``features`` False: input drift only)."""
    out: dict[str, Tested] = {}
    backend = reference.backend
    emb = [x.embedding for x in window if x.embedding is not None]
    if len(emb) >= s.mmd_min_window and reference.samples("input_embedding") >= s.mmd_min_reference:
        out["input_embedding"] = _timed(lambda: backend.mmd(reference.prepared("input_embedding"), np.stack(emb)),
                                        len(emb))
    if not features:
        return out
    current = [x.features for x in window]
    for name in KS_SIGNALS:
        c = column(current, name)
        c = c[~np.isnan(c)]
        if len(c) >= s.ks_min_samples and reference.samples(name) >= s.ks_min_samples:
            out[name] = _timed(lambda name=name, c=c: backend.ks(reference.prepared(name), c), len(c))
    for name in CHI2_SIGNALS:
        c = column(current, name).astype(int)
        out[name] = _timed(lambda name=name, c=c: backend.chi2(reference.prepared(name), c), len(c))
    return out
