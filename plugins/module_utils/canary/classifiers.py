"""Per-metric classifiers: each turns one metric's baseline and canary data into pass, fail or
inconclusive, with the effect size, p-value, sample counts and a reason an operator can read.

The rule that joins significance and tolerance is the same for every kind (written for a metric
where an increase is bad; the others mirror it):

* **fail** when the worsening is statistically significant (p < alpha) *and* its point estimate
  exceeds the tolerance. A significant but negligible difference does not fail.
* **pass** when the upper confidence bound of the worsening is within the tolerance: the data
  show that the canary is at most negligibly worse. A large difference seen in few samples has a
  wide bound, so it cannot pass.
* **inconclusive** otherwise: the data cannot tell yet. Thin data (below min_samples) are always
  inconclusive, never pass.

Plain Python on numpy and scipy; no Ansible imports.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import stats
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import (
    ContinuousData,
    CountData,
    HistogramData,
    MetricSpec,
)

PASS, FAIL, INCONCLUSIVE, NODATA = "pass", "fail", "inconclusive", "nodata"


@dataclass
class MetricResult:
    name: str
    kind: str
    classification: str  # pass | fail | inconclusive | ignored (after the no-data strategy)
    reason: str
    critical: bool
    weight: float
    group: str
    direction: str
    data: str = "ok"  # ok | thin | nodata
    n_baseline: int = 0
    n_canary: int = 0
    n_invalid_baseline: int = 0  # NaN / Inf values dropped
    n_invalid_canary: int = 0
    baseline: float = math.nan  # baseline level: median (continuous) or proportion
    canary: float = math.nan
    effect: float = math.nan  # canary - baseline (HL shift, or difference of proportions)
    effect_relative: float = math.nan  # effect / |baseline|
    lower: float = -math.inf  # one-sided confidence bounds of the effect
    upper: float = math.inf
    tolerance: float = 0.0  # effective tolerance, in the metric's unit
    p_value: float = math.nan
    alpha: float = math.nan
    tail: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return _clean(asdict(self))


def _clean(obj):
    """JSON-safe: numpy scalars to Python, NaN to None, infinities to strings."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return float(f"{obj:.10g}")  # ten significant digits: keeps tiny p-values
    return obj


def _base(spec: MetricSpec) -> MetricResult:
    return MetricResult(
        name=spec.name,
        kind=spec.kind,
        classification=INCONCLUSIVE,
        reason="",
        critical=spec.critical,
        weight=spec.weight,
        group=spec.group,
        direction=spec.direction,
    )


def _fmt(value: float, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    return f"{value:.4g}{(' ' + unit) if unit else ''}"


def _fmt_diff(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "+inf" if value > 0 else "-inf"
    if unit == "ratio":
        return f"{value * 100:+.2f} pts"
    if unit == "s":
        return f"{value * 1000:+.1f} ms"
    return f"{value:+.4g}{(' ' + unit) if unit else ''}"


def _finite(values) -> tuple[np.ndarray, int]:
    arr = np.asarray(values if values is not None else [], dtype=float).ravel()
    ok = np.isfinite(arr)
    return arr[ok], int(arr.size - ok.sum())


# --------------------------------------------------------------------------- continuous


def _one_sided_continuous(
    y: np.ndarray, x: np.ndarray, tol: float, *, alpha: float, alpha_pass: float, spec, ff: float
):
    """Judge 'canary higher is bad' on y (canary) vs x (baseline). Returns a dict of findings."""
    shift = stats.hodges_lehmann(y, x, alpha_pass)
    test = stats.mann_whitney(y, x, "greater")
    out = {
        "shift": shift,
        "test": test,
        "fail": test.p_value < alpha and shift.estimate > ff * tol,
        "pass": shift.upper <= tol,
    }
    q = spec.tail_quantile
    if q is not None:
        t_tol = spec.tail_tolerance(float(np.median(x)))
        q_base = stats.quantile(x, q)
        q_canary = stats.quantile(y, q)
        threshold = q_base + ff * t_tol
        k_c = int(np.sum(y > threshold))
        k_b = int(np.sum(x > q_base))
        p_tail = stats.fisher_greater(k_c, len(y), k_b, len(x))
        out["tail"] = {
            "quantile": q,
            "baseline": q_base,
            "canary": q_canary,
            "threshold": threshold,
            "canary_above": k_c,
            "baseline_above": k_b,
            "p_value": p_tail,
            "fail": bool(p_tail < alpha and q_canary > threshold),
        }
    return out


def classify_continuous(
    spec: MetricSpec, data: ContinuousData, alpha: float, alpha_pass: float, fail_fraction: float = 0.5
) -> MetricResult:
    r = _base(spec)
    x, r.n_invalid_baseline = _finite(data.baseline)
    y, r.n_invalid_canary = _finite(data.canary)
    r.n_baseline, r.n_canary = len(x), len(y)
    if r.n_baseline == 0 or r.n_canary == 0:
        r.data, r.classification = NODATA, NODATA
        empty = [c for c, n in (("baseline", r.n_baseline), ("canary", r.n_canary)) if n == 0]
        r.reason = f"no data for the {' and '.join(empty)}"
        return r
    base_level = float(np.median(x))
    r.baseline, r.canary = base_level, float(np.median(y))
    tol = spec.tolerance(base_level)
    r.tolerance = tol
    n_tests = 2 if spec.tail_quantile is not None else 1
    sides = ["up", "down"] if spec.direction == "either" else (["up"] if spec.direction == "increase" else ["down"])
    a = alpha / n_tests / len(sides)
    found = {}
    for side in sides:
        if side == "up":
            found[side] = _one_sided_continuous(y, x, tol, alpha=a, alpha_pass=alpha_pass, spec=spec, ff=fail_fraction)
        else:
            found[side] = _one_sided_continuous(
                -y, -x, tol, alpha=a, alpha_pass=alpha_pass, spec=spec, ff=fail_fraction
            )
    # report the effect as canary - baseline in the metric's own orientation
    main = found["up"] if "up" in found else found["down"]
    sign = 1.0 if "up" in found else -1.0
    sh = main["shift"]
    r.effect = sign * sh.estimate
    r.lower = sh.lower if sign > 0 else -sh.upper
    r.upper = sh.upper if sign > 0 else -sh.lower
    if spec.direction == "either":
        r.upper = found["up"]["shift"].upper
        r.lower = -found["down"]["shift"].upper
    r.effect_relative = r.effect / abs(base_level) if base_level != 0 else math.nan
    r.p_value = min(f["test"].p_value for f in found.values())
    r.alpha = a
    r.details["probability_superiority"] = main["test"].superiority
    r.details["exact_bounds"] = sh.exact
    tails = {side: f["tail"] for side, f in found.items() if "tail" in f}
    if tails:
        t = tails.get("up") or tails.get("down")
        r.tail = {k: (v if k not in ("baseline", "canary", "threshold") or "up" in tails else -v) for k, v in t.items()}

    unit = spec.unit
    desc = (
        f"shift {_fmt_diff(r.effect, unit)} (bounds {_fmt_diff(r.lower, unit)} .. {_fmt_diff(r.upper, unit)}), "
        f"tolerance {_fmt_diff(tol, unit).lstrip('+')}, p={r.p_value:.3g}"
    )
    thin = r.n_baseline < spec.min_samples or r.n_canary < spec.min_samples
    center_fail = any(f["fail"] for f in found.values())
    tail_fail = any(f.get("tail", {}).get("fail", False) for f in found.values())
    center_pass = all(f["pass"] for f in found.values())
    if thin:
        r.data = "thin"
        r.classification = INCONCLUSIVE
        r.reason = (
            f"thin data: {r.n_baseline} baseline and {r.n_canary} canary samples, need {spec.min_samples} each; {desc}"
        )
    elif center_fail:
        r.classification = FAIL
        r.reason = (
            f"canary {_fmt(r.canary, unit)} vs baseline {_fmt(r.baseline, unit)}: significant worsening beyond "
            f"{fail_fraction:g} x tolerance; {desc}"
        )
    elif tail_fail:
        t = r.tail
        r.classification = FAIL
        r.reason = (
            f"heavier tail: canary q{t['quantile']:g} {_fmt(t['canary'], unit)} vs baseline "
            f"{_fmt(t['baseline'], unit)}, {t['canary_above']}/{r.n_canary} canary samples beyond "
            f"{_fmt(t['threshold'], unit)} (p={t['p_value']:.3g}); {desc}"
        )
    elif center_pass:
        r.classification = PASS
        sig = " (significant but within tolerance)" if r.p_value < a else ""
        r.reason = f"within tolerance{sig}; {desc}"
    else:
        r.classification = INCONCLUSIVE
        r.reason = f"cannot rule out a worsening beyond tolerance yet; {desc}"
    return r


# --------------------------------------------------------------------------- proportions


def _judge_counts(
    r: MetricResult,
    k_c: int,
    n_c: int,
    k_b: int,
    n_b: int,
    *,
    tol: float,
    direction: str,
    alpha: float,
    alpha_pass: float,
    ff: float,
) -> tuple[bool, bool]:
    """Fill r's effect fields from counts; return (fail, pass) for the given direction."""
    sides = ["up", "down"] if direction == "either" else (["up"] if direction == "increase" else ["down"])
    a = alpha / len(sides)
    fails, passes, ps = [], [], []
    up = stats.newcombe_difference(k_c, n_c, k_b, n_b, alpha_pass)
    r.baseline, r.canary = up.p_baseline, up.p_canary
    r.effect = up.difference
    r.lower, r.upper = up.lower, up.upper
    for side in sides:
        if side == "up":
            p = stats.fisher_greater(k_c, n_c, k_b, n_b, "greater")
            fails.append(p < a and up.difference > ff * tol)
            passes.append(up.upper <= tol)
        else:
            p = stats.fisher_greater(k_c, n_c, k_b, n_b, "less")
            fails.append(p < a and -up.difference > ff * tol)
            passes.append(-up.lower <= tol)
        ps.append(p)
    r.p_value = min(ps)
    r.alpha = a
    r.effect_relative = r.effect / r.baseline if r.baseline and r.baseline > 0 else math.nan
    return any(fails), all(passes)


def _counts(value) -> int:
    return max(0, round(float(value)))


def classify_ratio(
    spec: MetricSpec, data: CountData, alpha: float, alpha_pass: float, fail_fraction: float = 0.5
) -> MetricResult:
    r = _base(spec)
    n_b = (
        None if data.baseline_total is None or not math.isfinite(data.baseline_total) else _counts(data.baseline_total)
    )
    n_c = None if data.canary_total is None or not math.isfinite(data.canary_total) else _counts(data.canary_total)
    if not n_b or not n_c:
        r.data, r.classification = NODATA, NODATA
        empty = [c for c, n in (("baseline", n_b), ("canary", n_c)) if not n]
        r.reason = f"no events counted for the {' and '.join(empty)}"
        return r
    # an empty numerator (no 5xx series exists yet) is zero events, not missing data; a numerator
    # that exists but is not a number (NaN, infinite) is missing data, never zero errors
    unknown = [
        c
        for c, k in (("baseline", data.baseline_events), ("canary", data.canary_events))
        if k is not None and not math.isfinite(k)
    ]
    if unknown:
        r.data, r.classification = NODATA, NODATA
        r.reason = f"the event count of the {' and '.join(unknown)} is not a number (NaN or infinite): missing data"
        return r
    k_b = min(n_b, _counts(data.baseline_events or 0.0))
    k_c = min(n_c, _counts(data.canary_events or 0.0))
    r.n_baseline, r.n_canary = n_b, n_c
    tol = spec.tolerance(k_b / n_b)
    r.tolerance = tol
    is_fail, is_pass = _judge_counts(
        r, k_c, n_c, k_b, n_b, tol=tol, direction=spec.direction, alpha=alpha, alpha_pass=alpha_pass, ff=fail_fraction
    )
    r.details.update({"events_baseline": k_b, "events_canary": k_c})
    unit = spec.unit or "ratio"
    desc = (
        f"{k_c}/{n_c} canary vs {k_b}/{n_b} baseline: {_fmt_diff(r.effect, unit)} "
        f"(bounds {_fmt_diff(r.lower, unit)} .. {_fmt_diff(r.upper, unit)}), "
        f"tolerance {_fmt_diff(tol, unit).lstrip('+')}, p={r.p_value:.3g}"
    )
    if n_b < spec.min_samples or n_c < spec.min_samples:
        r.data, r.classification = "thin", INCONCLUSIVE
        r.reason = f"thin data: need {spec.min_samples} events counted per colour; {desc}"
    elif is_fail:
        r.classification = FAIL
        r.reason = f"significant worsening beyond {fail_fraction:g} x tolerance; {desc}"
    elif is_pass:
        r.classification = PASS
        sig = " (significant but within tolerance)" if r.p_value < r.alpha else ""
        r.reason = f"within tolerance{sig}; {desc}"
    else:
        r.classification = INCONCLUSIVE
        r.reason = f"cannot rule out a worsening beyond tolerance yet; {desc}"
    return r


# --------------------------------------------------------------------------- histogram tail


def tail_threshold(bounds: np.ndarray, baseline_counts: np.ndarray, q: float) -> tuple[float, int]:
    """The bucket upper bound at or above the baseline's q-quantile, and that bucket's index."""
    counts = np.asarray(baseline_counts, dtype=float)
    cum = np.cumsum(counts)
    total = cum[-1]
    i = int(np.searchsorted(cum, q * total * (1 - 1e-12), side="left"))
    i = min(i, len(bounds) - 1)
    return float(bounds[i]), i


def classify_histogram(
    spec: MetricSpec, data: HistogramData, alpha: float, alpha_pass: float, fail_fraction: float = 0.5
) -> MetricResult:
    r = _base(spec)
    bounds = np.asarray(data.bounds, dtype=float)
    unknown = [
        c
        for c, counts in (("baseline", data.baseline_counts), ("canary", data.canary_counts))
        if counts is not None and not np.all(np.isfinite(np.asarray(counts, float)))
    ]
    if unknown:
        # a NaN bucket is not an empty bucket: counting it as 0 could hide the tail
        r.data, r.classification = NODATA, NODATA
        r.reason = f"a histogram bucket of the {' and '.join(unknown)} is not a number (NaN or infinite): missing data"
        return r
    cb = None if data.baseline_counts is None else np.clip(np.asarray(data.baseline_counts, float), 0, None)
    cc = None if data.canary_counts is None else np.clip(np.asarray(data.canary_counts, float), 0, None)
    n_b = 0 if cb is None else _counts(cb.sum())
    n_c = 0 if cc is None else _counts(cc.sum())
    r.n_baseline, r.n_canary = n_b, n_c
    if n_b == 0 or n_c == 0:
        r.data, r.classification = NODATA, NODATA
        empty = [c for c, n in (("baseline", n_b), ("canary", n_c)) if not n]
        r.reason = f"no requests in the histogram for the {' and '.join(empty)}"
        return r
    q = float(spec.tail_quantile)
    quantiles = {}
    for qq in (0.5, 0.9, 0.95, 0.99):
        quantiles[f"p{round(qq * 100):d}"] = {
            "baseline": stats.histogram_quantile(qq, bounds, cb),
            "canary": stats.histogram_quantile(qq, bounds, cc),
        }
    r.details["quantiles"] = quantiles
    threshold, i = tail_threshold(bounds, cb, q)
    if math.isinf(threshold):
        r.classification = INCONCLUSIVE
        r.reason = f"the baseline's q{q:g} lies beyond the largest finite bucket; the tail cannot be judged"
        return r
    k_b = _counts(cb[i + 1 :].sum())
    k_c = _counts(cc[i + 1 :].sum())
    tol = spec.tolerance(k_b / n_b)
    r.tolerance = tol
    is_fail, is_pass = _judge_counts(
        r, k_c, n_c, k_b, n_b, tol=tol, direction="increase", alpha=alpha, alpha_pass=alpha_pass, ff=fail_fraction
    )
    r.tail = {
        "quantile": q,
        "threshold": threshold,
        "canary_above": k_c,
        "baseline_above": k_b,
        "baseline": quantiles.get(f"p{round(q * 100):d}", {}).get("baseline", stats.histogram_quantile(q, bounds, cb)),
        "canary": stats.histogram_quantile(q, bounds, cc),
    }
    thr = _fmt(threshold, "s")
    desc = (
        f"slower than {thr}: canary {k_c}/{n_c} ({_fmt(r.canary, 'ratio')}) vs baseline {k_b}/{n_b} "
        f"({_fmt(r.baseline, 'ratio')}), {_fmt_diff(r.effect, 'ratio')} "
        f"(bounds {_fmt_diff(r.lower, 'ratio')} .. {_fmt_diff(r.upper, 'ratio')}), "
        f"tolerance {_fmt_diff(tol, 'ratio').lstrip('+')}, p={r.p_value:.3g}"
    )
    if n_b < spec.min_samples or n_c < spec.min_samples:
        r.data, r.classification = "thin", INCONCLUSIVE
        r.reason = f"thin data: need {spec.min_samples} requests per colour; {desc}"
    elif is_fail:
        r.classification = FAIL
        r.reason = f"heavier tail: {desc}"
    elif is_pass:
        r.classification = PASS
        r.reason = f"tail within tolerance; {desc}"
    else:
        r.classification = INCONCLUSIVE
        r.reason = f"cannot rule out a heavier tail yet; {desc}"
    return r


CLASSIFIERS = {
    "continuous": classify_continuous,
    "ratio": classify_ratio,
    "histogram": classify_histogram,
}


def classify(spec: MetricSpec, data, alpha: float, alpha_pass: float, fail_fraction: float = 0.5) -> MetricResult:
    """Classify one metric, then apply its no-data strategy."""
    expected = {"continuous": ContinuousData, "ratio": CountData, "histogram": HistogramData}[spec.kind]
    if data is None:
        r = _base(spec)
        r.data, r.classification, r.reason = NODATA, NODATA, "the query returned no data"
    elif not isinstance(data, expected):
        raise TypeError(f"metric {spec.name!r} of kind {spec.kind} needs {expected.__name__}")
    else:
        r = CLASSIFIERS[spec.kind](spec, data, alpha, alpha_pass, fail_fraction)
    if r.classification == NODATA:
        if spec.nodata == "fail":
            r.classification = FAIL
            r.reason += " (no-data strategy: fail)"
        elif spec.nodata == "ignore":
            r.classification = "ignored"
            r.reason += " (no-data strategy: ignore)"
        else:
            r.classification = INCONCLUSIVE
            r.reason += " (no-data strategy: inconclusive)"
    return r
