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
    def prepare_ks(self, reference: np.ndarray, corrections: int) -> object:
        """Build a two-sample KS test against one numeric feature of a reference (once per reference);
        ``corrections``: the Bonferroni divisor of the p-value."""

    @abc.abstractmethod
    def ks(self, prepared: object, window: np.ndarray) -> TestResult: ...

    @abc.abstractmethod
    def prepare_chi2(self, reference: np.ndarray, corrections: int) -> object:
        """Build a chi-squared test against one categorical feature (non-negative ints) of a reference."""

    @abc.abstractmethod
    def chi2(self, prepared: object, window: np.ndarray) -> TestResult: ...


@dataclass(frozen=True)
class _Univariate:
    reference: np.ndarray
    p: float  # the p-value threshold after correction
    detector: object = None  # alibi's, built once per reference


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

    def prepare_ks(self, reference: np.ndarray, corrections: int) -> object:
        p = self.p_value / corrections
        return _Univariate(reference, p, self._ks_cls(reference.reshape(-1, 1).astype(np.float32), p_val=p,
                                                      correction="bonferroni"))

    def ks(self, prepared: object, window: np.ndarray) -> TestResult:
        assert isinstance(prepared, _Univariate)
        d = prepared.detector.predict(window.reshape(-1, 1).astype(np.float32))["data"]  # type: ignore[attr-defined]
        pv = float(np.asarray(d["p_val"]).ravel()[0])
        return TestResult(float(np.asarray(d["distance"]).ravel()[0]), pv, prepared.p, None, pv < prepared.p)

    def prepare_chi2(self, reference: np.ndarray, corrections: int) -> object:
        p = self.p_value / corrections
        return _Univariate(reference, p, self._chi2_cls(reference.reshape(-1, 1).astype(np.int64), p_val=p,
                                                        correction="bonferroni"))

    def chi2(self, prepared: object, window: np.ndarray) -> TestResult:
        assert isinstance(prepared, _Univariate)
        if len(np.union1d(prepared.reference, window)) < 2:
            return TestResult(0.0, 1.0, prepared.p, None, False)
        d = prepared.detector.predict(window.reshape(-1, 1).astype(np.int64))["data"]  # type: ignore[attr-defined]
        pv = float(np.asarray(d["p_val"]).ravel()[0])
        return TestResult(float(np.asarray(d["distance"]).ravel()[0]), pv, prepared.p, None, pv < prepared.p)


@dataclass(frozen=True)
class _MMDReference:
    ref: np.ndarray  # the reference embeddings (float64)
    sigma2: float  # the RBF bandwidth (median heuristic on the reference)
    k_rr: np.ndarray  # the reference's kernel block, zero diagonal


class ScipyBackend(DriftBackend):
    name = "scipy"

    def __init__(self, p_value: float, permutations: int, seed: int = 0) -> None:
        super().__init__(p_value, permutations)
        from scipy.stats import chi2_contingency, ks_2samp  # at start: the import takes seconds

        self._ks_2samp, self._chi2_contingency = ks_2samp, chi2_contingency
        self._rng = np.random.default_rng(seed)

    def prepare_mmd(self, reference: np.ndarray) -> object:
        ref = reference.astype(np.float64)
        d2 = _sq_dists(ref, ref)
        sigma2 = float(np.median(d2[d2 > 0])) if np.any(d2 > 0) else 1.0
        k_rr = np.exp(-d2 / sigma2)
        np.fill_diagonal(k_rr, 0.0)
        return _MMDReference(ref, sigma2, k_rr)

    def mmd(self, prepared: object, window: np.ndarray) -> TestResult:
        """MMD² (unbiased, RBF kernel) of reference vs window and a permutation test, vectorised: the
        reference's kernel block is computed once per reference (``prepare_mmd``), each window adds
        its own blocks, and all permutations are scored with one matrix product (each permutation
        picks the ``m`` samples that play the window; MMD² follows from their kernel sums)."""
        assert isinstance(prepared, _MMDReference)
        ref, w = prepared.ref, window.astype(np.float64)
        n, m = len(ref), len(w)
        k = np.empty((n + m, n + m))
        k[:n, :n] = prepared.k_rr
        k[:n, n:] = np.exp(-_sq_dists(ref, w) / prepared.sigma2)
        k[n:, :n] = k[:n, n:].T
        k[n:, n:] = np.exp(-_sq_dists(w, w) / prepared.sigma2)
        np.fill_diagonal(k[n:, n:], 0.0)
        rows = k.sum(1)
        observed = _mmd2_from_sums(float(rows.sum()), float(rows[n:].sum()), float(k[n:, n:].sum()), n, m)
        picks = np.argpartition(self._rng.random((self.permutations, n + m)), m, axis=1)[:, :m]
        as_window = np.zeros((self.permutations, n + m))
        np.put_along_axis(as_window, picks, 1.0, axis=1)
        syy = ((as_window @ k) * as_window).sum(1)
        null = _mmd2_from_sums(float(rows.sum()), as_window @ rows, syy, n, m)
        p = float((null >= observed).mean())
        return TestResult(observed, p, self.p_value, float(np.quantile(null, 1 - self.p_value)), p < self.p_value)

    def prepare_ks(self, reference: np.ndarray, corrections: int) -> object:
        return _Univariate(reference, self.p_value / corrections)

    def ks(self, prepared: object, window: np.ndarray) -> TestResult:
        assert isinstance(prepared, _Univariate)
        res = self._ks_2samp(prepared.reference, window)
        return TestResult(float(res.statistic), float(res.pvalue), prepared.p, None, float(res.pvalue) < prepared.p)

    def prepare_chi2(self, reference: np.ndarray, corrections: int) -> object:
        return _Univariate(reference, self.p_value / corrections)

    def chi2(self, prepared: object, window: np.ndarray) -> TestResult:
        assert isinstance(prepared, _Univariate)
        reference, p = prepared.reference, prepared.p
        cats = np.union1d(reference, window)
        if len(cats) < 2:
            return TestResult(0.0, 1.0, p, None, False)
        table = np.array([[np.sum(reference == c) for c in cats], [np.sum(window == c) for c in cats]])
        stat, pv, _, _ = self._chi2_contingency(table)
        return TestResult(float(stat), float(pv), p, None, float(pv) < p)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def _mmd2_from_sums(total, window_rows, window_window, n: int, m: int):
    """Unbiased MMD² from kernel sums (zero diagonal): ``total`` over all pairs, ``window_rows`` over
    the window's rows, ``window_window`` within the window; the reference's sums follow."""
    ref_ref = total - 2 * window_rows + window_window
    ref_window = window_rows - window_window
    return ref_ref / (n * (n - 1)) + window_window / (m * (m - 1)) - 2 * ref_window / (n * m)


def create_backend(name: str, p_value: float, permutations: int) -> DriftBackend:
    if name == "alibi":
        return AlibiBackend(p_value, permutations)
    if name == "scipy":
        return ScipyBackend(p_value, permutations)
    raise ValueError(f"unknown drift backend {name!r}")
