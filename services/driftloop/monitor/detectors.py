"""A closed window's drift tests against its stream's reference: MMD on prompt embeddings, KS on
the numeric features, chi-squared on the categorical ones (Bonferroni-corrected per kind). Pure
statistics: each test's result comes back with its sample count and how long it ran."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driftloop.monitor.backends import DriftBackend, TestResult
from driftloop.monitor.features import Features, Sample, column
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import CHI2_SIGNALS, KS_SIGNALS


@dataclass(frozen=True)
class Tested:
    result: TestResult
    samples: int
    seconds: float  # run time of the test (MMD: with preparing the reference, when it was not ready)


def _timed(test: Callable[[], TestResult], samples: int) -> Tested:
    t0 = time.perf_counter()
    result = test()
    return Tested(result, samples, time.perf_counter() - t0)


def run_window_tests(s: MonitorSettings, backend: DriftBackend, reference: list[Features],
                ref_embeddings: list[np.ndarray], mmd_reference: Callable[[], object],
                window: list[Sample]) -> dict[str, Tested]:
    """The tests that have enough data, by signal. ``mmd_reference`` gives the backend's prepared
    reference (built once per reference by the caller)."""
    out: dict[str, Tested] = {}
    emb = [x.embedding for x in window if x.embedding is not None]
    if len(emb) >= s.mmd_min_window and len(ref_embeddings) >= s.mmd_min_reference:
        out["input_embedding"] = _timed(lambda: backend.mmd(mmd_reference(), np.stack(emb)), len(emb))
    current = [x.features for x in window]
    for name in KS_SIGNALS:
        r, c = column(reference, name), column(current, name)
        r, c = r[~np.isnan(r)], c[~np.isnan(c)]
        if len(r) >= s.ks_min_samples and len(c) >= s.ks_min_samples:
            out[name] = _timed(lambda r=r, c=c: backend.ks(r, c, corrections=len(KS_SIGNALS)), len(c))
    for name in CHI2_SIGNALS:
        r, c = column(reference, name).astype(int), column(current, name).astype(int)
        out[name] = _timed(lambda r=r, c=c: backend.chi2(r, c, corrections=len(CHI2_SIGNALS)), len(c))
    return out
