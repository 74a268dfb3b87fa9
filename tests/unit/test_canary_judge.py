"""The canary judge's decisions on synthetic data: classifiers, scorer, verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.canary.judge import JudgeConfig, judge
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import (
    ContinuousData,
    CountData,
    HistogramData,
    MetricConfigError,
    MetricSpec,
    free4allweb_metrics,
)

BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, np.inf])


def one(spec: MetricSpec, data, **config):
    result = judge([spec], {spec.name: data}, JudgeConfig(**config))
    return result, result.metrics[0]


def latency_spec(**kw):
    return MetricSpec(**{"name": "p95", "tolerance_rel": 0.2, "critical": True, **kw})


def lognormal_hist(rng, n, factor=1.0, tail=0.0, extra=0.4):
    lat = 0.05 * factor * np.exp(0.5 * rng.standard_normal(n))
    lat += (rng.random(n) < tail) * extra
    return np.bincount(np.searchsorted(BOUNDS, lat, side="left"), minlength=len(BOUNDS)).astype(float)


# --------------------------------------------------------------------------- continuous


def test_identical_distributions_pass():
    rng = np.random.default_rng(1)
    res, m = one(latency_spec(), ContinuousData(rng.normal(0.12, 0.01, 30), rng.normal(0.12, 0.01, 30)))
    assert res.verdict == "pass" and res.score == 100
    assert m.classification == "pass"
    assert m.upper <= m.tolerance
    assert m.n_baseline == m.n_canary == 30


def test_constant_equal_series_pass_with_zero_effect():
    res, m = one(latency_spec(), ContinuousData(np.full(20, 0.1), np.full(20, 0.1)))
    assert res.verdict == "pass"
    assert (m.effect, m.lower, m.upper, m.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_constant_series_with_a_material_difference_fail():
    res, m = one(latency_spec(), ContinuousData(np.full(20, 0.1), np.full(20, 0.2)))
    assert res.verdict == "fail"
    assert m.effect == pytest.approx(0.1) and m.effect_relative == pytest.approx(1.0)


def test_significant_but_negligible_difference_passes():
    # 200 samples each, canary 0.5 % higher: very significant, far inside a 20 % tolerance
    rng = np.random.default_rng(2)
    base = rng.normal(100, 1, 200)
    res, m = one(latency_spec(), ContinuousData(base, rng.normal(100.5, 1, 200)))
    assert m.p_value < 1e-4
    assert res.verdict == "pass"
    assert "significant but within tolerance" in m.reason


def test_large_difference_in_few_samples_is_not_waved_through():
    # +50 % seen in three samples each: not enough to fail at alpha 0.01, and never a pass
    res, m = one(latency_spec(min_samples=3), ContinuousData([100.0, 101, 99], [150.0, 160, 140]))
    assert m.classification == "inconclusive"
    assert res.verdict == "inconclusive"
    assert m.effect == pytest.approx(50)


def test_thin_data_is_inconclusive_even_when_it_looks_fine():
    res, m = one(latency_spec(), ContinuousData(np.full(5, 0.1), np.full(5, 0.1)))
    assert m.data == "thin" and m.classification == "inconclusive"
    assert res.verdict == "inconclusive"
    assert "thin data" in m.reason


def test_thin_data_does_not_fail_either():
    res, _ = one(latency_spec(), ContinuousData(np.full(5, 0.1), np.full(5, 0.5)))
    assert res.verdict == "inconclusive"


def test_nan_values_are_dropped_and_counted():
    rng = np.random.default_rng(3)
    base, canary = rng.normal(1, 0.05, 30), rng.normal(1, 0.05, 30)
    canary[::3] = np.nan
    base[0] = np.inf
    res, m = one(latency_spec(), ContinuousData(base, canary))
    assert (m.n_canary, m.n_invalid_canary, m.n_baseline, m.n_invalid_baseline) == (20, 10, 29, 1)
    assert res.verdict == "pass"


def test_all_nan_is_no_data():
    res, m = one(latency_spec(), ContinuousData(np.full(10, 0.1), np.full(10, np.nan)))
    assert m.data == "nodata" and res.verdict == "inconclusive"


def test_empty_series_follow_the_nodata_strategy():
    empty = ContinuousData(np.zeros(0), np.zeros(0))
    res, m = one(latency_spec(), empty)
    assert (res.verdict, m.classification) == ("inconclusive", "inconclusive")
    assert "no data for the baseline and canary" in m.reason
    res, m = one(latency_spec(nodata="fail"), empty)
    assert (res.verdict, m.classification) == ("fail", "fail")
    other = MetricSpec(name="other", tolerance_rel=0.2)
    spec = MetricSpec(name="optional", nodata="ignore")
    rng = np.random.default_rng(4)
    res = judge(
        [other, spec],
        {"other": ContinuousData(rng.normal(1, 0.05, 20), rng.normal(1, 0.05, 20)), "optional": None},
    )
    assert [m.classification for m in res.metrics] == ["pass", "ignored"]
    assert res.verdict == "pass"


def test_heavier_tail_with_the_same_median_fails_the_tail_check():
    # 30 % of the canary's steps spike: the median hardly moves, the 90th percentile does
    rng = np.random.default_rng(5)
    base = rng.normal(100, 5, 100)
    canary = rng.normal(100, 5, 100)
    canary[rng.random(100) < 0.3] += 60
    _, m = one(MetricSpec(name="spiky", tolerance_rel=0.2), ContinuousData(base, canary))
    assert abs(np.median(canary) - np.median(base)) < 0.1 * 100
    assert m.classification == "fail"
    assert m.reason.startswith("heavier tail")
    assert m.tail["canary_above"] > m.tail["baseline_above"]
    # without the tail check the same data would not fail
    _, m = one(MetricSpec(name="spiky", tolerance_rel=0.2, tail_quantile=0), ContinuousData(base, canary))
    assert m.classification != "fail"


def test_direction_decrease_and_either():
    rng = np.random.default_rng(6)
    base = rng.normal(100, 2, 30)
    lower = rng.normal(60, 2, 30)
    _, m = one(MetricSpec(name="throughput", direction="decrease", tolerance_rel=0.1), ContinuousData(base, lower))
    assert m.classification == "fail" and m.effect < 0
    _, m = one(MetricSpec(name="throughput", direction="increase", tolerance_rel=0.1), ContinuousData(base, lower))
    assert m.classification == "pass"
    _, m = one(MetricSpec(name="throughput", direction="either", tolerance_rel=0.1), ContinuousData(base, lower))
    assert m.classification == "fail"
    _, m = one(MetricSpec(name="throughput", direction="either", tolerance_rel=0.1), ContinuousData(base, base + 0.5))
    assert m.classification == "pass"


# --------------------------------------------------------------------------- proportions


def error_spec(**kw):
    return MetricSpec(**{"name": "errors", "kind": "ratio", "tolerance_abs": 0.02, "critical": True, **kw})


def test_error_ratio_from_counts_fails_at_plus_five_points():
    res, m = one(error_spec(), CountData(10, 1000, 60, 1000))
    assert res.verdict == "fail"
    assert m.effect == pytest.approx(0.05)
    assert m.p_value < 1e-8
    assert m.lower > 0.02  # even the lower bound is beyond the tolerance


def test_error_ratio_at_plus_two_points_with_plenty_of_data_fails():
    _, m = one(error_spec(), CountData(100, 10000, 300, 10000))
    assert m.classification == "fail"


def test_error_ratio_small_increase_with_plenty_of_data_passes():
    # +0.3 points over 20,000 requests each: significant, negligible
    _, m = one(error_spec(), CountData(200, 20000, 260, 20000))
    assert m.classification == "pass"
    assert m.upper <= 0.02


def test_error_ratio_zero_errors_needs_enough_requests_to_pass():
    # 0/100 against 0/100 cannot rule out +2 points yet; 0/500 against 0/500 can
    _, m = one(error_spec(), CountData(0, 100, 0, 100))
    assert m.classification == "inconclusive"
    _, m = one(error_spec(), CountData(0, 500, 0, 500))
    assert m.classification == "pass"


def test_error_ratio_few_requests_with_errors_is_not_a_pass():
    # 2 errors out of 10 canary requests: +20 points, but 10 requests prove little
    res, m = one(error_spec(min_samples=5), CountData(0, 10, 2, 10))
    assert m.classification == "inconclusive" and res.verdict == "inconclusive"


def test_empty_numerator_counts_as_zero_events_but_empty_denominator_is_no_data():
    _, m = one(error_spec(), CountData(None, 1000, None, 1000))
    assert m.classification == "pass" and m.canary == 0.0
    res, m = one(error_spec(), CountData(0, 1000, None, None))
    assert m.data == "nodata" and res.verdict == "inconclusive"


def test_a_nan_error_count_is_missing_data_never_zero_errors():
    # Prometheus answers NaN for a counter it cannot rate (e.g. 0/0 inside the query): that is not
    # zero errors, so the error ratio cannot pass on it, and the verdict is not a pass
    for data in (
        CountData(math.nan, 1000, 5, 1000),
        CountData(5, 1000, math.nan, 1000),
        CountData(5, 1000, math.inf, 1000),
    ):
        res, m = one(error_spec(), data)
        assert m.data == "nodata" and m.classification == "inconclusive", m
        assert "not a number" in m.reason
        assert res.verdict != "pass"


def test_a_nan_histogram_bucket_is_missing_data_not_an_empty_bucket():
    rng = np.random.default_rng(11)
    base, canary = lognormal_hist(rng, 3000), lognormal_hist(rng, 3000, tail=0.05)
    canary[-2] = math.nan  # the bucket holding the heavier tail
    res, m = one(tail_spec(), HistogramData(BOUNDS, base, canary))
    assert m.data == "nodata" and "not a number" in m.reason
    assert res.verdict != "pass"


def test_success_ratio_direction_decrease():
    _, m = one(
        MetricSpec(name="ok", kind="ratio", direction="decrease", tolerance_abs=0.01), CountData(990, 1000, 950, 1000)
    )
    assert m.classification == "fail"


# --------------------------------------------------------------------------- histogram tail


def tail_spec(**kw):
    return MetricSpec(
        **{
            "name": "tail",
            "kind": "histogram",
            "critical": True,
            "tail_quantile": 0.99,
            "tolerance_abs": 0.01,
            "tolerance_rel": 1.0,
            **kw,
        }
    )


def test_histogram_tail_same_distribution_passes():
    rng = np.random.default_rng(7)
    _, m = one(tail_spec(), HistogramData(BOUNDS, lognormal_hist(rng, 3000), lognormal_hist(rng, 3000)))
    assert m.classification == "pass"
    assert m.tail["threshold"] in BOUNDS


def test_histogram_heavier_tail_same_median_fails():
    rng = np.random.default_rng(8)
    base, canary = lognormal_hist(rng, 3000), lognormal_hist(rng, 3000, tail=0.03)
    res, m = one(tail_spec(), HistogramData(BOUNDS, base, canary))
    q = m.details["quantiles"]
    assert abs(q["p50"]["canary"] - q["p50"]["baseline"]) / q["p50"]["baseline"] < 0.1  # same median
    assert m.classification == "fail" and res.verdict == "fail"
    assert m.reason.startswith("heavier tail")


def test_histogram_missing_colour_is_no_data():
    rng = np.random.default_rng(9)
    _, m = one(tail_spec(), HistogramData(BOUNDS, lognormal_hist(rng, 100), None))
    assert m.data == "nodata" and m.classification == "inconclusive"


def test_histogram_quantile_beyond_the_last_bucket_is_inconclusive():
    counts = np.zeros(len(BOUNDS))
    counts[-1] = 100
    _, m = one(tail_spec(), HistogramData(BOUNDS, counts, counts))
    assert m.classification == "inconclusive"


# --------------------------------------------------------------------------- scorer and verdict


def test_default_metric_set_judges_a_good_and_a_bad_canary():
    specs = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
    rng = np.random.default_rng(10)

    def data(err, factor):
        return {
            "error_ratio": CountData(30, 3000, err * 3000, 3000),
            "latency_p95": ContinuousData(rng.normal(0.12, 0.01, 30), rng.normal(0.12 * factor, 0.01, 30)),
            "latency_p50": ContinuousData(rng.normal(0.05, 0.004, 30), rng.normal(0.05 * factor, 0.004, 30)),
            "latency_tail": HistogramData(BOUNDS, lognormal_hist(rng, 3000), lognormal_hist(rng, 3000, factor)),
        }

    good = judge(specs, data(0.01, 1.0))
    assert good.verdict == "pass", good.reason
    bad = judge(specs, data(0.01, 1.5))
    assert bad.verdict == "fail"
    assert "latency_p95" in bad.reason
    as_dict = bad.as_dict()
    assert as_dict["verdict"] == "fail"
    assert {m["name"] for m in as_dict["metrics"]} == {s.name for s in specs}


def test_non_critical_failure_gives_marginal_and_weights_count():
    rng = np.random.default_rng(11)
    specs = [MetricSpec(name=f"m{i}", tolerance_rel=0.1) for i in range(4)]
    same = {f"m{i}": ContinuousData(rng.normal(10, 0.2, 30), rng.normal(10, 0.2, 30)) for i in range(4)}
    same["m3"] = ContinuousData(rng.normal(10, 0.2, 30), rng.normal(15, 0.2, 30))
    res = judge(specs, same)
    assert (res.verdict, res.score) == ("marginal", 75.0)
    specs[3] = MetricSpec(name="m3", tolerance_rel=0.1, weight=3)
    res = judge(specs, same)
    assert (res.verdict, res.score) == ("fail", 50.0)
    specs[3] = MetricSpec(name="m3", tolerance_rel=0.1, critical=True)
    res = judge(specs, same)
    assert res.verdict == "fail" and "critical metric failed: m3" in res.reason


def test_one_undecided_metric_blocks_a_pass_but_not_a_fail():
    rng = np.random.default_rng(12)
    specs = [MetricSpec(name="a", tolerance_rel=0.1), MetricSpec(name="b", tolerance_rel=0.1, critical=True)]
    fine = ContinuousData(rng.normal(10, 0.2, 30), rng.normal(10, 0.2, 30))
    thin = ContinuousData(np.full(3, 10.0), np.full(3, 10.0))
    res = judge(specs, {"a": thin, "b": fine})
    assert res.verdict == "inconclusive" and res.score_range == (50.0, 100.0)
    broken = ContinuousData(rng.normal(10, 0.2, 30), rng.normal(20, 0.2, 30))
    res = judge(specs, {"a": thin, "b": broken})
    assert res.verdict == "fail"


def test_nothing_to_judge_is_inconclusive():
    res = judge([MetricSpec(name="x", nodata="ignore")], {"x": None})
    assert res.verdict == "inconclusive" and res.score == 0


def test_results_are_json_safe():
    import json

    _, m = one(latency_spec(), ContinuousData(np.full(3, 1.0), np.full(3, 1.0)))
    text = json.dumps(m.as_dict())
    assert "NaN" not in text and "Infinity" not in text


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "gauge"}, "kind must be one of"),
        ({"direction": "up"}, "direction must be one of"),
        ({"kind": "histogram", "direction": "decrease"}, "only judges direction 'increase'"),
        ({"critical": True, "nodata": "ignore"}, "cannot ignore missing data"),
        ({"tolerance_rel": -1}, "tolerance_rel must be a finite number"),
        ({"tail_quantile": 1.5}, "tail_quantile must lie between"),
        ({"min_samples": 1}, "min_samples must be an integer >= 2"),
        ({"kind": "ratio", "tail_quantile": 0.9}, "does not apply to a ratio"),
        ({"color": "x"}, "unknown field(s) color"),
    ],
)
def test_bad_metric_definitions_name_the_metric_and_field(fields, message):
    with pytest.raises(MetricConfigError, match="'bad'") as err:
        MetricSpec.from_dict({"name": "bad", **fields})
    assert message in str(err.value)


def test_judge_config_validation():
    with pytest.raises(ValueError, match="alpha"):
        JudgeConfig(alpha=0)
    with pytest.raises(ValueError, match="score thresholds"):
        JudgeConfig(pass_score=50, marginal_score=75)
    with pytest.raises(ValueError, match="unique"):
        judge([MetricSpec(name="a"), MetricSpec(name="a")], {})


def test_effective_tolerance_is_the_larger_of_absolute_and_relative():
    spec = MetricSpec(name="t", tolerance_abs=0.005, tolerance_rel=0.2)
    assert spec.tolerance(0.01) == pytest.approx(0.005)
    assert spec.tolerance(0.1) == pytest.approx(0.02)
    assert spec.tolerance(math.nan) == pytest.approx(0.005)
