"""The anytime-valid sequential judge (module_utils/canary/sequential.py) on synthetic counts:
its bounds against a root finder, its error rates however often it looks, its decisions on the
regressions it exists for, and missing data that is never a pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import betaln

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import sequential as sq
from ansible_collections.free4allweb.devops.plugins.module_utils.canary import stats

BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, np.inf])
ERRORS = sq.SequentialMetric(name="errors", kind="ratio", tolerance_abs=0.02)
P95 = sq.SequentialMetric(name="p95", kind="quantile", quantile=0.95, tolerance_rel=0.2, tolerance_abs=0.005)
TAIL = sq.SequentialMetric(name="tail", kind="tail", quantile=0.99, tolerance_abs=0.01)


def reference_cs(k, n, alpha, a=0.5, b=0.5):
    level = math.log(1 / alpha)

    def f(p):
        log_p = k * math.log(p) if k else 0.0
        log_q = (n - k) * math.log1p(-p) if n - k else 0.0
        return betaln(a + k, b + n - k) - betaln(a, b) - log_p - log_q - level

    m = k / n
    return (0.0 if k == 0 else brentq(f, 1e-300, m)), (1.0 if k == n else brentq(f, m, 1 - 1e-16))


@pytest.mark.parametrize(
    ("k", "n", "alpha"),
    [(0, 800, 3e-4), (8, 800, 3e-4), (1, 2, 0.01), (5, 5, 0.01), (400, 800, 1e-6), (3, 100000, 1e-4), (50, 1000, 0.05)],
)
def test_bounds_are_the_roots_of_the_mixture_martingale(k, n, alpha):
    lo, hi = sq.proportion_cs(k, n, alpha)
    ref_lo, ref_hi = reference_cs(k, n, alpha)
    assert float(lo) == pytest.approx(ref_lo, abs=1e-10)
    assert float(hi) == pytest.approx(ref_hi, abs=1e-10)


def test_no_requests_bounds_nothing_and_nan_counts_are_not_numbers():
    lo, hi = sq.proportion_cs([0, 0], [0, math.nan], 0.01)
    assert lo.tolist() == [0.0, 0.0] and hi.tolist() == [1.0, 1.0]
    with pytest.raises(sq.SequentialConfigError, match="alpha"):
        sq.proportion_cs(1, 10, 0)


def test_the_bounds_hold_at_every_look_at_once():
    # 2,000 streams of 4,000 requests at 1 % errors, looked at after every 20 requests (200
    # looks): the share of streams whose bounds ever miss the truth stays under alpha
    rng = np.random.default_rng(1)
    alpha, p = 0.05, 0.01
    k = np.cumsum(rng.random((2000, 4000)) < p, axis=1)[:, 19::20]
    n = np.arange(20, 4001, 20)
    lo, hi = sq.proportion_cs(k, np.broadcast_to(n, k.shape), alpha)
    ever_missed = np.any((lo > p) | (hi < p), axis=1).mean()
    assert ever_missed <= alpha, ever_missed
    # a fixed-sample interval at the same level, looked at as often, misses far more often
    se = np.sqrt(np.maximum(k / n * (1 - k / n), 1e-12) / n)
    naive = np.any(np.abs(k / n - p) > 1.96 * se, axis=1).mean()
    assert naive > 3 * ever_missed


def test_an_aa_canary_is_failed_at_most_alpha_however_often_it_is_looked_at():
    rng = np.random.default_rng(2)
    alpha = 0.02
    # 2,000 A/A runs: baseline 19x the canary's traffic, both at 1 % errors, 300 looks
    nc = np.arange(1, 301) * 10.0
    kc = np.cumsum(rng.binomial(10, 0.01, (2000, 300)), axis=1)
    kb = np.cumsum(rng.binomial(190, 0.01, (2000, 300)), axis=1)
    lo, hi = sq.difference_cs(kc, np.broadcast_to(nc, kc.shape), kb, np.broadcast_to(nc * 19, kb.shape), alpha)
    d = sq.decide(lo, hi, 0.02, 0.5)
    first = np.where((d != sq.CONTINUE).any(axis=1), (d != sq.CONTINUE).argmax(axis=1), -1)
    decided = d[np.arange(2000), np.maximum(first, 0)]
    assert (decided[first >= 0] == sq.FAIL).mean() <= alpha
    assert (first >= 0).mean() > 0.95  # and it does decide: 3,000 canary requests suffice


def test_plus_two_points_of_errors_is_never_passed_and_usually_failed():
    # at half the traffic, 30,000 canary requests (3 % errors against 1 %), 300 looks: never a
    # pass; a fail needs the lower bound past +1 point, which takes thousands of requests
    rng = np.random.default_rng(3)
    nc = np.arange(1, 301) * 100.0
    kc = np.cumsum(rng.binomial(100, 0.03, (1000, 300)), axis=1)
    kb = np.cumsum(rng.binomial(100, 0.01, (1000, 300)), axis=1)
    lo, hi = sq.difference_cs(kc, np.broadcast_to(nc, kc.shape), kb, np.broadcast_to(nc, kb.shape), 0.005)
    d = sq.decide(lo, hi, 0.02, 0.5)
    assert not (d == sq.PASS).any()
    assert (d == sq.FAIL).any(axis=1).mean() > 0.95


def test_quantile_matches_prometheus_histogram_quantile():
    rng = np.random.default_rng(4)
    for _ in range(20):
        counts = rng.integers(0, 50, len(BOUNDS)).astype(float)
        counts[-1] = 0
        for q in (0.5, 0.95, 0.99):
            assert float(sq.quantile_at(BOUNDS, counts, q)) == pytest.approx(
                stats.histogram_quantile(q, BOUNDS, counts), rel=1e-9
            )
    assert math.isnan(float(sq.quantile_at(BOUNDS, np.zeros(len(BOUNDS)), 0.95)))


def lognormal_counts(rng, n, factor=1.0, tail=0.0, extra=0.4, size=None):
    shape = (n,) if size is None else (size, n)
    lat = 0.05 * factor * np.exp(0.5 * rng.standard_normal(shape))
    lat = lat + (rng.random(shape) < tail) * extra
    idx = np.searchsorted(BOUNDS, lat, side="left")
    if size is None:
        return np.bincount(idx, minlength=len(BOUNDS)).astype(float)
    return np.stack([np.bincount(row, minlength=len(BOUNDS)) for row in idx]).astype(float)


def test_p95_plus_fifty_percent_fails_and_an_equal_canary_passes():
    rng = np.random.default_rng(5)
    base = lognormal_counts(rng, 20000)
    same, slow = lognormal_counts(rng, 2000), lognormal_counts(rng, 2000, factor=1.5)
    good = sq.look_quantile(P95, sq.BucketCounts(BOUNDS, base, same), 0.001, 0.5)
    bad = sq.look_quantile(P95, sq.BucketCounts(BOUNDS, base, slow), 0.001, 0.5)
    assert int(good.decision) == sq.PASS, (good.lower, good.upper, good.tolerance)
    assert int(bad.decision) == sq.FAIL, (bad.lower, bad.upper, bad.tolerance)
    # with few canary requests neither is decided yet
    few = sq.look_quantile(P95, sq.BucketCounts(BOUNDS, base, lognormal_counts(rng, 20)), 0.001, 0.5)
    assert int(few.decision) == sq.CONTINUE


def test_a_heavier_tail_with_the_same_median_fails_the_tail():
    rng = np.random.default_rng(6)
    base = lognormal_counts(rng, 100000)
    heavy = lognormal_counts(rng, 10000, tail=0.04)
    look = sq.look_tail(TAIL, sq.BucketCounts(BOUNDS, base, heavy), 0.001, 0.5)
    assert int(look.decision) == sq.FAIL
    same = sq.look_tail(TAIL, sq.BucketCounts(BOUNDS, base, lognormal_counts(rng, 10000)), 0.001, 0.5)
    assert int(same.decision) == sq.PASS


@pytest.mark.parametrize(
    "broken",
    [
        {"canary_events": math.nan},
        {"canary_total": math.nan},
        {"baseline_events": math.inf},
        {"canary_events": -3.0},  # a counter reset Prometheus did not correct
        {"canary_total": 0.0},  # no canary request at all
    ],
    ids=["nan-errors", "nan-requests", "inf-errors", "negative", "empty"],
)
def test_missing_or_broken_counts_are_nodata_never_a_pass(broken):
    counts = {"baseline_events": 10.0, "baseline_total": 100000.0, "canary_events": 0.0, "canary_total": 100000.0}
    counts.update(broken)
    look = sq.look_ratio(ERRORS, sq.RatioCounts(**counts), 0.01, 0.5)
    assert int(look.decision) == sq.NODATA
    judge = sq.SequentialJudge([ERRORS], steps=1)
    decision, _ = judge.look({"errors": sq.RatioCounts(**counts)})
    assert int(decision) == sq.NODATA


def test_a_nan_bucket_is_nodata():
    rng = np.random.default_rng(7)
    canary = lognormal_counts(rng, 3000)
    canary[4] = math.nan
    for metric, look in ((P95, sq.look_quantile), (TAIL, sq.look_tail)):
        out = look(metric, sq.BucketCounts(BOUNDS, lognormal_counts(rng, 30000), canary), 0.01, 0.5)
        assert int(out.decision) == sq.NODATA


def test_routes_must_all_pass_and_one_failing_route_fails_the_step():
    judge = sq.SequentialJudge([ERRORS], steps=1)
    ok = sq.RatioCounts(np.array([10.0, 10.0]), np.array([1e5, 1e5]), np.array([1.0, 1.0]), np.array([1e4, 1e4]))
    decision, looks = judge.look({"errors": ok}, routes=2)
    assert int(decision) == sq.PASS and looks["errors"].decision.tolist() == [sq.PASS, sq.PASS]
    one_bad = sq.RatioCounts(np.array([10.0, 10.0]), np.array([1e5, 1e5]), np.array([1.0, 800.0]), np.array([1e4, 1e4]))
    decision, looks = judge.look({"errors": one_bad}, routes=2)
    assert int(decision) == sq.FAIL and looks["errors"].decision.tolist() == [sq.PASS, sq.FAIL]
    thin = sq.RatioCounts(np.array([10.0, 0.0]), np.array([1e5, 50.0]), np.array([1.0, 0.0]), np.array([1e4, 3.0]))
    decision, _ = judge.look({"errors": thin}, routes=2)
    assert int(decision) == sq.CONTINUE  # the thin route is not decided: no pass yet


def test_combine_orders_fail_over_nodata_over_continue():
    d = np.array([[1, 1], [1, 0], [1, 3], [3, 2], [0, 2]], dtype=np.int8)
    assert sq.combine(d).tolist() == [sq.PASS, sq.CONTINUE, sq.NODATA, sq.FAIL, sq.FAIL]


def test_the_alpha_is_split_over_steps_metrics_and_routes():
    judge = sq.SequentialJudge([ERRORS, P95, TAIL], alpha=0.01, steps=4)
    assert judge.alpha_per_test(routes=1) == pytest.approx(0.01 / 4 / 3)
    # with three routes each metric is four tests: all routes together, and each route
    assert judge.alpha_per_test(routes=3) == pytest.approx(0.01 / 4 / 12)


def test_one_slow_route_is_never_passed_though_all_routes_together_would_be():
    # +40 % latency on the route with 20 % of the traffic: all routes together move about +10 %,
    # inside the +20 % tolerance; the route itself is caught, and never passed at any look
    rng = np.random.default_rng(12)
    judge = sq.SequentialJudge([P95], steps=1)
    base = np.stack([lognormal_counts(rng, 30000), lognormal_counts(rng, 10000), lognormal_counts(rng, 10000)])
    decisions = []
    for n in (500, 1000, 2000, 4000, 8000):
        can = np.stack([lognormal_counts(rng, 3 * n), lognormal_counts(rng, n, factor=1.4), lognormal_counts(rng, n)])
        decision, looks = judge.look({"p95": sq.BucketCounts(BOUNDS, base, can)}, routes=3)
        decisions.append(int(decision))
        assert int(looks["p95"].pooled.decision) != sq.FAIL
    assert sq.PASS not in decisions and decisions[-1] == sq.FAIL, decisions


def test_requests_to_decide_grows_as_the_share_shrinks_and_is_enough():
    rng = np.random.default_rng(8)
    judge = sq.SequentialJudge([ERRORS, P95, TAIL], alpha=0.01, steps=4)
    base = lognormal_counts(rng, 50000)
    data = {
        "errors": sq.RatioCounts(500.0, 50000.0, 0.0, 0.0),
        "p95": sq.BucketCounts(BOUNDS, base, np.zeros(len(BOUNDS))),
        "tail": sq.BucketCounts(BOUNDS, base, np.zeros(len(BOUNDS))),
    }
    n5 = sq.requests_to_decide(judge, data, 0.05)
    n25 = sq.requests_to_decide(judge, data, 0.25)
    # in time (total requests) a larger share decides sooner, though the canary needs more of its own
    assert math.isfinite(n5) and n25 / 0.25 < n5 / 0.05
    # an A/A canary given twice that many requests (and the baseline its share) mostly passes
    n = int(2 * n5)
    passed = 0
    for _ in range(40):
        b = lognormal_counts(rng, 19 * n)
        c = lognormal_counts(rng, n)
        look = {
            "errors": sq.RatioCounts(rng.binomial(19 * n, 0.01), 19 * n, rng.binomial(n, 0.01), n),
            "p95": sq.BucketCounts(BOUNDS, b, c),
            "tail": sq.BucketCounts(BOUNDS, b, c),
        }
        decision, _ = judge.look(look)
        passed += int(decision) == sq.PASS
    assert passed >= 30, passed
    empty = {k: v for k, v in data.items()}
    empty["errors"] = sq.RatioCounts(0.0, 0.0, 0.0, 0.0)
    assert sq.requests_to_decide(judge, empty, 0.05) == math.inf


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "median"}, "kind must be one of"),
        ({"tolerance_abs": -1}, "tolerance_abs"),
        ({"tolerance_abs": 0, "tolerance_rel": 0}, "both are 0"),
        ({"kind": "quantile"}, "quantile must lie"),
        ({"kind": "ratio", "quantile": 0.9}, "does not apply"),
    ],
)
def test_bad_metric_definitions_name_the_metric(fields, message):
    with pytest.raises(sq.SequentialConfigError, match=message) as err:
        sq.SequentialMetric(**{"name": "m1", "tolerance_abs": 0.01, **fields})
    assert "'m1'" in str(err.value)
    with pytest.raises(sq.SequentialConfigError, match="unknown field"):
        sq.SequentialMetric.from_dict({"name": "m2", "tolerance": 1})
