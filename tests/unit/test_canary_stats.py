"""The canary judge's statistics against hand-checked values and published examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import stats


def test_u_null_distribution_4_by_4_matches_the_hand_count():
    # Arrangements of two samples of 4 by U = 0..16 (they sum to C(8,4) = 70).
    counts = [1, 1, 2, 3, 5, 5, 7, 7, 8, 7, 7, 5, 5, 3, 2, 1, 1]
    assert sum(counts) == 70
    expected = np.cumsum(counts) / 70
    np.testing.assert_allclose(stats.u_null_cdf(4, 4), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("m", "n"), [(3, 3), (5, 9), (12, 12), (30, 30), (50, 41)])
def test_u_null_distribution_agrees_with_scipy_exact(m, n):
    rng = np.random.default_rng(m * 100 + n)
    cdf = stats.u_null_cdf(m, n)
    for _ in range(4):
        y, x = rng.normal(size=m) + 0.4, rng.normal(size=n)
        res = st.mannwhitneyu(y, x, alternative="less", method="exact")  # P(U <= u)
        assert cdf[int(res.statistic)] == pytest.approx(res.pvalue, rel=1e-9)


def test_three_against_three_all_higher():
    # every canary value above every baseline value: U = 9, exact one-sided p = 1/C(6,3) = 1/20
    test = stats.mann_whitney([4, 5, 6], [1, 2, 3], "greater")
    assert test.u == 9
    assert test.p_value == pytest.approx(0.05)
    assert test.superiority == 1.0
    # pairwise differences 1,2,2,3,3,3,4,4,5: HL = 3; at alpha 0.05 C = 1, so the bounds are min and max
    hl = stats.hodges_lehmann([4, 5, 6], [1, 2, 3], 0.05)
    assert (hl.estimate, hl.lower, hl.upper, hl.exact) == (3.0, 1.0, 5.0, True)
    # a stricter level cannot be reached with 3 + 3 samples: the bounds are infinite
    hl = stats.hodges_lehmann([4, 5, 6], [1, 2, 3], 0.01)
    assert math.isinf(hl.lower) and math.isinf(hl.upper)


def test_four_against_four_interleaved():
    # differences (canary - baseline) sorted: -2.5 -1.5 -1.5 -.5 -.5 -.5 .5 .5 .5 .5 1.5 1.5 1.5 2.5 2.5 3.5
    canary, baseline = [1.5, 2.5, 3.5, 4.5], [1, 2, 3, 4]
    hl = stats.hodges_lehmann(canary, baseline, 0.05)
    assert hl.estimate == 0.5
    test = stats.mann_whitney(canary, baseline, "greater")
    assert test.u == 10
    # P(U >= 10) = (7+5+5+3+2+1+1)/70
    assert test.p_value == pytest.approx(24 / 70)
    # alpha 0.05: P(U <= 1) = 2/70 <= .05 < P(U <= 2) = 4/70, so C = 2: the 2nd and 15th differences
    assert stats.critical_count(4, 4, 0.05) == (2, True)
    assert (hl.lower, hl.upper) == (-1.5, 2.5)


def test_critical_count_matches_r_qwilcox():
    # R: qwilcox(0.025, 10, 10) = 24 is the trim of wilcox.test(conf.int = TRUE) for 10 + 10
    assert stats.critical_count(10, 10, 0.025) == (24, True)


def test_normal_approximation_is_close_to_exact_where_both_apply():
    c_exact, _ = stats.critical_count(40, 40, 0.05)
    # the same sizes with a single tie (forcing the approximation) give nearly the same trim
    c_approx, exact = stats.critical_count(40, 40, 0.05, np.array([2]))
    assert not exact
    assert abs(c_exact - c_approx) <= 2


def test_constant_and_tied_series():
    same = stats.mann_whitney([5, 5, 5, 5], [5, 5, 5])
    assert same.p_value == 1.0 and same.superiority == 0.5
    hl = stats.hodges_lehmann([5.0] * 20, [5.0] * 20, 0.05)
    assert (hl.estimate, hl.lower, hl.upper) == (0.0, 0.0, 0.0)
    # two different constants: the shift is exact and the test is decisive
    hl = stats.hodges_lehmann([0.2] * 20, [0.1] * 20, 0.05)
    assert hl.estimate == pytest.approx(0.1) and hl.lower == pytest.approx(0.1) and hl.upper == pytest.approx(0.1)
    assert stats.mann_whitney([0.2] * 20, [0.1] * 20).p_value < 1e-6
    # heavy ties (three distinct values) go through the tie-corrected approximation without NaN
    rng = np.random.default_rng(3)
    y, x = rng.integers(1, 4, 60).astype(float), rng.integers(1, 4, 60).astype(float)
    hl = stats.hodges_lehmann(y, x, 0.05)
    assert not hl.exact and all(math.isfinite(v) for v in (hl.estimate, hl.lower, hl.upper))
    assert 0 <= stats.mann_whitney(y, x).p_value <= 1


def test_empty_samples():
    hl = stats.hodges_lehmann([], [1, 2, 3])
    assert math.isnan(hl.estimate) and math.isinf(hl.upper)
    assert stats.mann_whitney([], [1.0]).p_value == 1.0


def test_wilson_interval_zero_events():
    lo, hi = stats.wilson_interval(0, 10, 1.96)
    assert float(lo) == pytest.approx(0.0, abs=1e-15)
    assert float(hi) == pytest.approx(1.96**2 / (10 + 1.96**2))


def test_wilson_interval_matches_scipy():
    for k, n in [(3, 100), (0, 40), (40, 40), (17, 23)]:
        ci = st.binomtest(k, n).proportion_ci(0.95, method="wilson")
        lo, hi = stats.wilson_interval(k, n, stats.z_for(0.025))
        assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_newcombe_matches_the_published_examples():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10, 95 % two-sided
    d = stats.newcombe_difference(56, 70, 48, 80, 0.025)
    assert (d.difference, d.lower, d.upper) == pytest.approx((0.2, 0.0524, 0.3339), abs=5e-5)
    d = stats.newcombe_difference(5, 56, 0, 29, 0.025)
    assert (d.lower, d.upper) == pytest.approx((-0.0381, 0.1926), abs=5e-5)


def test_fisher_one_sided():
    # 30/1000 against 10/1000 is clearly more; the reverse is not
    assert stats.fisher_greater(30, 1000, 10, 1000) < 0.002
    assert stats.fisher_greater(10, 1000, 30, 1000) > 0.99
    assert stats.fisher_greater(0, 0, 0, 10) == 1.0


def test_histogram_quantile_like_prometheus():
    bounds = np.array([0.1, 0.2, np.inf])
    assert stats.histogram_quantile(0.75, bounds, np.array([10, 10, 0])) == pytest.approx(0.15)
    assert stats.histogram_quantile(0.25, bounds, np.array([10, 10, 0])) == pytest.approx(0.05)
    # a quantile in the +Inf bucket is the largest finite bound
    assert stats.histogram_quantile(0.99, bounds, np.array([1, 1, 8])) == 0.2
    assert math.isnan(stats.histogram_quantile(0.5, bounds, np.array([0, 0, 0])))
