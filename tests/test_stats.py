"""Tests of paperlib.stats against scipy and against cases small enough to compute by hand."""
import warnings

import numpy as np
import pytest
import scipy.stats

from paperlib.core import ConfigError
from paperlib.stats import (Interval, PermutationNull, accuracy_ci, bootstrap_ci, chance_level, paired_difference_ci,
                            permutation_null, seed_interval)


def toy(n=300, p=0.8, seed=1, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < p, y, (y + rng.integers(1, k, n)) % k)
    return y, pred


# ---------------------------------------------------------------- bootstrap over test examples

def test_all_correct_gives_one_one_with_every_method():
    y = np.arange(30) % 3
    for method in ("percentile", "basic", "BCa"):
        assert tuple(accuracy_ci(y, y, method=method)) == (1.0, 1.0, 1.0)
    assert tuple(accuracy_ci(y, (y + 1) % 3)) == (0.0, 0.0, 0.0)


def test_matches_scipy_bootstrap_on_the_same_stream():
    import zlib
    y, p = toy()
    c = (y == p).astype(float)
    for method in ("percentile", "BCa"):
        ref = scipy.stats.bootstrap((c,), np.mean, n_resamples=1000, method=method,
                                    rng=np.random.default_rng([3, zlib.crc32(b"bootstrap")])).confidence_interval
        est, lo, hi = accuracy_ci(y, p, n_boot=1000, seed=3, method=method)
        assert est == pytest.approx(c.mean())
        assert (lo, hi) == pytest.approx((ref.low, ref.high))


def test_binomial_case_is_close_to_the_normal_approximation():
    n, k = 400, 320                                    # accuracy 0.8
    y = np.zeros(n, int); p = np.zeros(n, int); p[k:] = 1
    est, lo, hi = accuracy_ci(y, p, n_boot=4000, seed=0)
    half = scipy.stats.norm.ppf(0.975) * np.sqrt(0.8 * 0.2 / n)   # 0.0392
    assert est == 0.8
    assert lo == pytest.approx(0.8 - half, abs=0.01) and hi == pytest.approx(0.8 + half, abs=0.01)
    assert lo <= 0.8 - half + 0.01 and hi >= 0.8 + half - 0.01   # covers the Wald interval, up to resampling noise


def test_deterministic_given_seed_and_different_across_seeds():
    y, p = toy()
    assert accuracy_ci(y, p, seed=5) == accuracy_ci(y, p, seed=5)
    draws = {accuracy_ci(y, p, seed=s)[1:] for s in range(6)}
    assert len(draws) > 1


def test_level_widens_the_interval_and_returns_an_interval():
    y, p = toy()
    ci90, ci99 = accuracy_ci(y, p, level=0.90), accuracy_ci(y, p, level=0.99)
    assert isinstance(ci90, Interval) and ci90.estimate == ci99.estimate
    assert ci99.lo <= ci90.lo and ci99.hi >= ci90.hi


def test_bootstrap_ci_with_a_non_vectorised_statistic_on_label_pairs():
    y, p = toy(n=120)
    labels = np.array(list("abcd"))
    f = lambda a, b: float(np.mean(a == b))            # no axis: called per resample
    est, lo, hi = bootstrap_ci((labels[y], labels[p]), f, n_boot=300, seed=0)
    ref = accuracy_ci(y, p, n_boot=300, seed=0)
    assert est == pytest.approx(ref.estimate)
    assert lo == pytest.approx(ref.lo) and hi == pytest.approx(ref.hi)   # same resamples on the same stream


def test_bootstrap_of_a_mean_is_close_to_the_t_interval():
    x = np.random.default_rng(0).normal(2.0, 1.0, 500)
    est, lo, hi = bootstrap_ci(x, n_boot=3000)
    t_lo, t_hi = scipy.stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy.stats.sem(x))
    assert est == pytest.approx(x.mean())
    assert lo == pytest.approx(t_lo, abs=0.02) and hi == pytest.approx(t_hi, abs=0.02)


@pytest.mark.parametrize("call, match", [
    (lambda: accuracy_ci([0, 1, 2], [0, 1]), "differ in length"),
    (lambda: accuracy_ci([1], [1]), "at least 2"),
    (lambda: accuracy_ci([[0, 1]], [[0, 1]]), "shape"),
    (lambda: accuracy_ci([0, 1], [0, 1], level=95), "level"),
    (lambda: accuracy_ci([0, 1], [0, 1], method="bca"), "method"),
    (lambda: accuracy_ci([0, 1], [0, 1], n_boot=0), "n_boot"),
    (lambda: accuracy_ci([0, 1], [0, 1], seed=-1), "seed"),
    (lambda: bootstrap_ci([1.0, np.nan, 2.0]), "NaN"),
    (lambda: bootstrap_ci(["a", "b"]), "dtype"),
    (lambda: bootstrap_ci(([1.0, 2.0], [1.0, 2.0])), "no statistic"),
    (lambda: bootstrap_ci([1.0, 2.0], statistic=3), "callable"),
])
def test_bad_input_is_a_config_error_with_a_fix(call, match):
    with pytest.raises(ConfigError, match=match) as e:
        call()
    assert e.value.fix


# ---------------------------------------------------------------- paired differences

def test_identical_predictors_differ_by_exactly_zero():
    y, p = toy()
    assert tuple(paired_difference_ci(y == p, y == p)) == (0.0, 0.0, 0.0)


def test_paired_difference_of_a_constant_shift_and_antisymmetry():
    a = np.ones(50); b = np.zeros(50)
    assert tuple(paired_difference_ci(a, b)) == (1.0, 1.0, 1.0)
    y, p = toy(seed=2); _, q = toy(seed=3)
    ab, ba = paired_difference_ci(y == p, y == q, seed=4), paired_difference_ci(y == q, y == p, seed=4)
    assert ab.estimate == pytest.approx(-ba.estimate)
    assert ab.lo == pytest.approx(-ba.hi) and ab.hi == pytest.approx(-ba.lo)


def test_pairing_makes_the_interval_narrower_than_separate_intervals():
    rng = np.random.default_rng(0)
    y, p = toy(n=400)
    q = np.where(rng.random(400) < 0.95, p, (p + 1) % 4)   # B agrees with A on most examples
    d = paired_difference_ci(y == p, y == q)
    a, b = accuracy_ci(y, p), accuracy_ci(y, q)
    assert d.estimate == pytest.approx(a.estimate - b.estimate)
    assert d.hi - d.lo < 0.6 * min(a.hi - a.lo, b.hi - b.lo)


def test_paired_difference_rejects_a_non_vectorised_statistic():
    with pytest.raises(ConfigError, match="axis"):
        paired_difference_ci([1, 0, 1], [0, 0, 1], statistic=lambda x: x.mean())


# ---------------------------------------------------------------- seeds

def test_seed_interval_matches_scipy_t_interval():
    v = np.array([0.81, 0.84, 0.80, 0.83, 0.82])
    est, lo, hi = seed_interval(v, level=0.9)
    ref = scipy.stats.t.interval(0.9, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
    assert est == pytest.approx(v.mean()) and (lo, hi) == pytest.approx(ref)
    assert tuple(seed_interval([0.5, 0.5, 0.5])) == (0.5, 0.5, 0.5)


def test_seed_interval_hand_case_two_seeds():
    # mean 1, s = sqrt(2), half = t_{0.975,1} * sqrt(2)/sqrt(2) = 12.706
    est, lo, hi = seed_interval([0.0, 2.0])
    assert est == 1.0 and hi - est == pytest.approx(12.7062, abs=1e-3) and est - lo == pytest.approx(hi - est)


def test_one_seed_gives_nan_and_a_warning():
    with pytest.warns(RuntimeWarning, match="one seed"):
        est, lo, hi = seed_interval([0.8])
    assert est == 0.8 and np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ConfigError):
        seed_interval([])


# ---------------------------------------------------------------- permutation null and chance

def test_permutation_null_of_a_perfect_labelling():
    y = np.repeat([0, 1, 2], 10)
    res = permutation_null(y, y, lambda a, b: np.mean(a == b), n_perm=199, seed=0)
    assert isinstance(res, PermutationNull)
    assert res.observed == 1.0 and res.p_value == pytest.approx(1 / 200)
    assert res.null.shape == (199,)
    assert res.null_mean == pytest.approx(chance_level(y, y, "prior"), abs=0.03)
    assert res == res and permutation_null(y, y, lambda a, b: np.mean(a == b), n_perm=199, seed=0).null.tolist() == res.null.tolist()


def test_permutation_null_exact_for_tiny_samples_and_matches_scipy():
    lab = np.array([0, 0, 1, 1, 1])                   # 5! = 120 <= n_perm: scipy enumerates every permutation
    res = permutation_null(lab, lab, lambda a, b: np.mean(a == b), n_perm=999)
    assert res.null.shape == (120,)
    # 2! 3! = 12 of the 120 permutations keep every label in place -> p = 12/120
    assert res.p_value == pytest.approx(0.1)
    assert res.null_mean == pytest.approx((2 * 2 + 3 * 3) / 25)    # E[accuracy] = sum_k n_k^2 / n^2


def test_permutation_null_with_features_and_other_label_types():
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["x", "y"]), 20)
    X = rng.normal(size=(40, 2)); X[y == "y"] += 5
    score = lambda labels, X: float(np.linalg.norm(X[labels == "x"].mean(0) - X[labels == "y"].mean(0)))
    res = permutation_null(y, X, score, n_perm=99, seed=1)
    assert res.observed > res.null_hi and res.p_value == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="labels has 40"):
        permutation_null(y, X[:10], score)
    with pytest.raises(ConfigError, match="alternative"):
        permutation_null(y, X, score, alternative="up")


def test_chance_levels_by_hand():
    ytr = [0] * 6 + [1] * 3 + [2] * 1
    yte = [0] * 2 + [1] * 2 + [2] * 1
    assert chance_level(ytr, yte, "majority") == pytest.approx(2 / 5)
    assert chance_level(ytr, yte, "uniform") == pytest.approx(1 / 3)
    assert chance_level(ytr, yte, "prior") == pytest.approx(0.6 * 0.4 + 0.3 * 0.4 + 0.1 * 0.2)
    assert chance_level(ytr) == pytest.approx(0.6)
    assert chance_level(ytr, kind="prior") == pytest.approx(0.36 + 0.09 + 0.01)
    assert chance_level({"a": 6, "b": 3, "c": 1}, {"a": 2, "b": 2, "c": 1}) == pytest.approx(2 / 5)
    assert chance_level(["a", "b"], ["c", "c"], "uniform") == 0.0       # unseen test class: always wrong
    assert chance_level([1, 1, 0, 0], [0, 1, 1, 1]) == pytest.approx(0.25)   # tie -> first class in sorted order


def test_chance_level_bad_input():
    with pytest.raises(ConfigError, match="kind"):
        chance_level([0, 1], kind="random")
    with pytest.raises(ConfigError, match="counts"):
        chance_level({"a": -1})
    with pytest.raises(ConfigError):
        chance_level([])


def test_bca_falls_back_to_the_basic_interval_where_it_is_undefined():
    from sklearn.metrics import normalized_mutual_info_score as nmi
    r = np.random.default_rng(0)
    y, c = r.integers(0, 10, 60), r.integers(0, 10, 60)     # a random clustering: every resample's NMI is above the estimate
    e = bootstrap_ci((y, c), nmi, n_boot=200, seed=0, method="BCa")
    assert np.isfinite(e.lo) and np.isfinite(e.hi) and e.lo < e.estimate
    basic = bootstrap_ci((y, c), nmi, n_boot=200, seed=0, method="basic")
    assert (e.lo, e.hi) == pytest.approx((basic.lo, basic.hi), abs=1e-9)
