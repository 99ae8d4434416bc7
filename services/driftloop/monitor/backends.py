"""Drift tests behind one small interface.

* ``alibi`` (default): alibi-detect's MMDDrift (PyTorch backend), KSDrift and ChiSquareDrift.
  alibi-detect ≥ 0.11.5 is under the Business Source License 1.1: production use needs a licence.
* ``scipy``: the same tests written on numpy/torch/scipy (permissive licences): an RBF-kernel MMD²
  with a median-heuristic bandwidth and a permutation test, scipy's two-sample KS and chi-squared.

Both report, per test: the statistic, the p-value, the p-value threshold (after correction), the
statistic's own threshold where one is defined (MMD: the permutation quantile), and the verdict.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    p_threshold: float
    statistic_threshold: float | None
    detected: bool


class DriftBackend(abc.ABC):
    name: str

    def __init__(self, p_value: float, permutations: int) -> None:
        self.p_value = p_value
        self.permutations = permutations

    @abc.abstractmethod
    def prepare_mmd(self, reference: np.ndarray) -> object:
        """Build whatever the MMD test needs from a reference set (done once per reference)."""

    @abc.abstractmethod
    def mmd(self, prepared: object, window: np.ndarray) -> TestResult: ...

    @abc.abstractmethod
    def ks(self, reference: np.ndarray, window: np.ndarray, corrections: int) -> TestResult: ...

    @abc.abstractmethod
    def chi2(self, reference: np.ndarray, window: np.ndarray, corrections: int) -> TestResult:
        """Categorical samples as non-negative ints."""


class AlibiBackend(DriftBackend):
    name = "alibi"

    def __init__(self, p_value: float, permutations: int) -> None:
        super().__init__(p_value, permutations)
        from alibi_detect.cd import ChiSquareDrift, KSDrift, MMDDrift

        self._mmd_cls, self._ks_cls, self._chi2_cls = MMDDrift, KSDrift, ChiSquareDrift

    def prepare_mmd(self, reference: np.ndarray) -> object:
        return self._mmd_cls(reference.astype(np.float32), backend="pytorch", p_val=self.p_value,
                             n_permutations=self.permutations, device="cpu")

    def mmd(self, prepared: object, window: np.ndarray) -> TestResult:
        d = prepared.predict(window.astype(np.float32))["data"]  # type: ignore[attr-defined]
        return TestResult(float(d["distance"]), float(d["p_val"]), float(d["threshold"]),
                          float(d["distance_threshold"]), bool(d["is_drift"]))

    def ks(self, reference: np.ndarray, window: np.ndarray, corrections: int) -> TestResult:
        p = self.p_value / corrections
        det = self._ks_cls(reference.reshape(-1, 1).astype(np.float32), p_val=p, correction="bonferroni")
        d = det.predict(window.reshape(-1, 1).astype(np.float32))["data"]
        pv = float(np.asarray(d["p_val"]).ravel()[0])
        return TestResult(float(np.asarray(d["distance"]).ravel()[0]), pv, p, None, pv < p)

    def chi2(self, reference: np.ndarray, window: np.ndarray, corrections: int) -> TestResult:
        p = self.p_value / corrections
        if len(np.union1d(reference, window)) < 2:
            return TestResult(0.0, 1.0, p, None, False)
        det = self._chi2_cls(reference.reshape(-1, 1).astype(np.int64), p_val=p, correction="bonferroni")
        d = det.predict(window.reshape(-1, 1).astype(np.int64))["data"]
        pv = float(np.asarray(d["p_val"]).ravel()[0])
        return TestResult(float(np.asarray(d["distance"]).ravel()[0]), pv, p, None, pv < p)


class ScipyBackend(DriftBackend):
    name = "scipy"

    def __init__(self, p_value: float, permutations: int, seed: int = 0) -> None:
        super().__init__(p_value, permutations)
        self._rng = np.random.default_rng(seed)

    def prepare_mmd(self, reference: np.ndarray) -> object:
        ref = reference.astype(np.float64)
        d2 = _sq_dists(ref, ref)
        sigma2 = float(np.median(d2[d2 > 0])) if np.any(d2 > 0) else 1.0
        return ref, sigma2

    def mmd(self, prepared: object, window: np.ndarray) -> TestResult:
        ref, sigma2 = prepared  # type: ignore[misc]
        z = np.concatenate([ref, window.astype(np.float64)])
        k = np.exp(-_sq_dists(z, z) / sigma2)
        n = len(ref)
        observed = _mmd2(k, np.arange(len(z)) < n)
        null = np.empty(self.permutations)
        for i in range(self.permutations):
            mask = np.zeros(len(z), dtype=bool)
            mask[self._rng.permutation(len(z))[:n]] = True
            null[i] = _mmd2(k, mask)
        p = float((null >= observed).mean())
        return TestResult(observed, p, self.p_value, float(np.quantile(null, 1 - self.p_value)), p < self.p_value)

    def ks(self, reference: np.ndarray, window: np.ndarray, corrections: int) -> TestResult:
        from scipy.stats import ks_2samp

        p = self.p_value / corrections
        res = ks_2samp(reference, window)
        return TestResult(float(res.statistic), float(res.pvalue), p, None, float(res.pvalue) < p)

    def chi2(self, reference: np.ndarray, window: np.ndarray, corrections: int) -> TestResult:
        from scipy.stats import chi2_contingency

        p = self.p_value / corrections
        cats = np.union1d(reference, window)
        if len(cats) < 2:
            return TestResult(0.0, 1.0, p, None, False)
        table = np.array([[np.sum(reference == c) for c in cats], [np.sum(window == c) for c in cats]])
        stat, pv, _, _ = chi2_contingency(table)
        return TestResult(float(stat), float(pv), p, None, float(pv) < p)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def _mmd2(k: np.ndarray, in_x: np.ndarray) -> float:
    x, y = in_x, ~in_x
    nx, ny = x.sum(), y.sum()
    kxx = (k[np.ix_(x, x)].sum() - np.trace(k[np.ix_(x, x)])) / (nx * (nx - 1))
    kyy = (k[np.ix_(y, y)].sum() - np.trace(k[np.ix_(y, y)])) / (ny * (ny - 1))
    kxy = k[np.ix_(x, y)].mean()
    return float(kxx + kyy - 2 * kxy)


def create_backend(name: str, p_value: float, permutations: int) -> DriftBackend:
    if name == "alibi":
        return AlibiBackend(p_value, permutations)
    if name == "scipy":
        return ScipyBackend(p_value, permutations)
    raise ValueError(f"unknown drift backend {name!r}")
