"""The drift backends: the scipy backend's vectorised MMD permutation test (the statistic is the
unbiased MMD² of the reference against the window, the permutation null is calibrated), and the
univariate tests of both backends prepared once per reference and used window after window."""

from __future__ import annotations

import numpy as np
import pytest

from driftloop.monitor.backends import ScipyBackend, _sq_dists, create_backend


def _brute_mmd2(ref: np.ndarray, win: np.ndarray, sigma2: float) -> float:
    z = np.concatenate([ref, win]).astype(np.float64)
    k = np.exp(-_sq_dists(z, z) / sigma2)
    n, m = len(ref), len(win)
    kxx = (k[:n, :n].sum() - np.trace(k[:n, :n])) / (n * (n - 1))
    kyy = (k[n:, n:].sum() - np.trace(k[n:, n:])) / (m * (m - 1))
    return float(kxx + kyy - 2 * k[:n, n:].mean())


def test_the_statistic_is_the_unbiased_mmd2() -> None:
    rng = np.random.default_rng(0)
    ref, win = rng.normal(size=(80, 6)), rng.normal(1.0, 1, size=(25, 6))
    backend = ScipyBackend(0.01, 100)
    prepared = backend.prepare_mmd(ref)
    result = backend.mmd(prepared, win)
    assert np.isclose(result.statistic, _brute_mmd2(ref, win, prepared.sigma2), rtol=1e-9, atol=1e-12)
    assert result.detected and result.p_value == 0.0 and result.statistic > result.statistic_threshold


def test_the_permutation_null_is_calibrated() -> None:
    rng = np.random.default_rng(1)
    backend = ScipyBackend(0.1, 50, seed=2)
    ref = rng.normal(size=(60, 4))
    prepared = backend.prepare_mmd(ref)
    p_values = [backend.mmd(prepared, rng.normal(size=(20, 4))).p_value for _ in range(300)]
    alarms = np.mean(np.array(p_values) < 0.1)
    assert 0.04 < alarms < 0.17, alarms  # about 10 % at p < 0.1 when nothing changed
    assert 0.35 < np.mean(np.array(p_values) < 0.5) < 0.65


@pytest.mark.parametrize("name", ["scipy", "alibi"])
def test_univariate_tests_prepared_once_give_the_same_verdicts_window_after_window(name: str) -> None:
    rng = np.random.default_rng(3)
    backend = create_backend(name, 0.01, 20)
    ks = backend.prepare_ks(rng.normal(size=500), corrections=3)
    same, shifted = backend.ks(ks, rng.normal(size=100)), backend.ks(ks, rng.normal(2, 1, size=100))
    assert not same.detected and shifted.detected and shifted.p_threshold == pytest.approx(0.01 / 3)
    assert backend.ks(ks, rng.normal(size=100)).p_value > 0.01 / 3  # the prepared reference is unchanged
    one_category = backend.prepare_chi2(np.zeros(500, dtype=int), corrections=2)
    assert not backend.chi2(one_category, np.zeros(100, dtype=int)).detected  # nothing to compare
    assert backend.chi2(one_category, np.ones(100, dtype=int)).detected  # a category the reference never had
    chi2 = backend.prepare_chi2(rng.integers(0, 3, 500), corrections=2)
    assert not backend.chi2(chi2, rng.integers(0, 3, 100)).detected
    assert backend.chi2(chi2, np.full(100, 2)).detected
