"""What the canary benchmarks share: the app's latency model and histogram buckets, Prometheus'
histogram_quantile, and the fixed-window judges they compare (this collection's older judge, a
Flagger-style fixed-threshold check, a Kayenta-style Mann-Whitney classifier).

Imported by benchmarks/canary/window and benchmarks/canary/run (their directory is on
sys.path when they run as scripts). The judges take per-colour dicts of arrays with a leading
axis of draws and a second axis of steps: "n" requests, "errors", "buckets" (non-cumulative
counts per latency bucket), and per step "ratio", "p50", "p95", "p99".
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.special import ndtr

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "collections") not in sys.path:
    sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import stats as cstats  # noqa: E402
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.judge import JudgeConfig, judge  # noqa: E402
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import (  # noqa: E402
    ContinuousData,
    CountData,
    HistogramData,
    MetricSpec,
    free4allweb_metrics,
)

BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, np.inf])
MEDIAN_S, SIGMA = 0.05, 0.5
BASE_ERR = 0.01
TAIL_EXTRA_S = 0.3


def latency_cdf(t, factor: float = 1.0, tail: float = 0.0, extra: float = TAIL_EXTRA_S) -> np.ndarray:
    """P(latency <= t): the lognormal (median x factor), a share `tail` of it shifted by `extra` s."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        main = ndtr(np.log(t / (MEDIAN_S * factor)) / SIGMA)
        shifted = np.where(t > extra, ndtr(np.log((t - extra) / (MEDIAN_S * factor)) / SIGMA), 0.0)
    out = (1 - tail) * main + tail * shifted
    return np.where(np.isinf(t), 1.0, out)


def bucket_probs(factor: float, tail: float, extra: float = TAIL_EXTRA_S) -> np.ndarray:
    """P(latency in each bucket) for the lognormal (x factor), a share `tail` shifted by `extra`."""
    c = latency_cdf(BOUNDS, factor, tail, extra)
    p = np.diff(np.concatenate([[0.0], c]))
    return np.clip(p, 0, None) / p.sum()


def vec_histogram_quantile(q: float, counts: np.ndarray) -> np.ndarray:
    """Prometheus' histogram_quantile over the last axis of non-cumulative counts (vectorised)."""
    cum = np.cumsum(counts, axis=-1).astype(float)
    total = cum[..., -1]
    rank = q * total
    idx = np.minimum((cum < rank[..., None]).sum(axis=-1), len(BOUNDS) - 1)
    upper = BOUNDS[idx]
    lower = np.where(idx > 0, BOUNDS[np.maximum(idx - 1, 0)], 0.0)
    below = np.where(idx > 0, np.take_along_axis(cum, np.maximum(idx - 1, 0)[..., None], -1)[..., 0], 0.0)
    in_b = np.take_along_axis(counts, idx[..., None], -1)[..., 0].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = lower + (upper - lower) * (rank - below) / in_b
    val = np.where(np.isinf(upper), BOUNDS[-2], val)
    val = np.where(in_b <= 0, upper, val)
    return np.where(total > 0, val, np.nan)


def per_step(n: np.ndarray, errors: np.ndarray, buckets: np.ndarray) -> dict:
    """A colour's dict for the judges from its counts per step ((draws, steps) and buckets last)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(n > 0, errors / n, np.nan)
    return {
        "n": n,
        "errors": errors,
        "buckets": buckets,
        "ratio": ratio,
        "p50": vec_histogram_quantile(0.5, buckets),
        "p95": vec_histogram_quantile(0.95, buckets),
        "p99": vec_histogram_quantile(0.99, buckets),
    }


# --------------------------------------------------------------------------- the fixed-window judges

SPECS = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
CONFIG = JudgeConfig()


def ours(b: dict, c: dict, i: int, k: int) -> str:
    """This collection's fixed-window judge (judge.py) on draw i's first k steps."""
    data = {
        "error_ratio": CountData(
            float(b["errors"][i, :k].sum()),
            float(b["n"][i, :k].sum()),
            float(c["errors"][i, :k].sum()),
            float(c["n"][i, :k].sum()),
        ),
        "latency_p95": ContinuousData(b["p95"][i, :k], c["p95"][i, :k]),
        "latency_p50": ContinuousData(b["p50"][i, :k], c["p50"][i, :k]),
        "latency_tail": HistogramData(BOUNDS, b["buckets"][i, :k].sum(axis=0), c["buckets"][i, :k].sum(axis=0)),
    }
    return judge(SPECS, data, CONFIG).verdict


TRUE_P95 = cstats.histogram_quantile(0.95, BOUNDS, bucket_probs(1.0, 0.0))
TRUE_P99 = cstats.histogram_quantile(0.99, BOUNDS, bucket_probs(1.0, 0.0))


def flagger_check(n: float, errors: float, hist: np.ndarray) -> str:
    """One Flagger-style check of the canary's counts over a window against fixed limits set from
    the true baseline: error ratio <= 1 % + 2 points, p95 and p99 <= 1.2x; no data fails."""
    if n == 0:
        return "fail"  # no values found
    if errors / n > BASE_ERR + 0.02:
        return "fail"
    p95 = cstats.histogram_quantile(0.95, BOUNDS, hist)
    p99 = cstats.histogram_quantile(0.99, BOUNDS, hist)
    if not (math.isfinite(p95) and math.isfinite(p99)):
        return "fail"
    if p95 > 1.2 * TRUE_P95 or p99 > 1.2 * TRUE_P99:
        return "fail"
    return "pass"


def flagger(b: dict, c: dict, i: int, k: int, first: int = 0) -> str:
    """The Flagger-style check over draw i's steps first .. k-1 (the baseline is not used)."""
    return flagger_check(c["n"][i, first:k].sum(), c["errors"][i, first:k].sum(), c["buckets"][i, first:k].sum(axis=0))


KAYENTA_METRICS = (("ratio", True, 3.0), ("p50", False, 1.2), ("p95", True, 1.2), ("p99", False, 1.2))


def _iqr_clean(v: np.ndarray) -> np.ndarray:
    v = v[np.isfinite(v)]
    if v.size < 4:
        return v
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    if iqr <= 0:
        return v
    return v[(v >= q1 - 3 * iqr) & (v <= q3 + 3 * iqr)]


def kayenta_metric(x: np.ndarray, y: np.ndarray, allowed: float) -> str:
    x, y = _iqr_clean(x), _iqr_clean(y)
    if x.size == 0 or y.size == 0:
        return "nodata"
    if np.array_equal(np.sort(x), np.sort(y)) or np.unique(np.concatenate([x, y])).size == 1:
        return "pass"
    hl = cstats.hodges_lehmann(y, x, 0.01)  # 98 % two-sided interval; Kayenta decides on it, not on p
    if hl.lower > 0.25 * abs(hl.estimate):
        mx = x.mean()
        ratio = y.mean() / mx if mx > 0 else math.inf
        return "pass" if ratio <= allowed else "high"
    return "pass"


def kayenta(b: dict, c: dict, i: int, k: int) -> str:
    """The Kayenta-style classifier on draw i's per-step values of its first k steps."""
    labels = []
    for key, critical, allowed in KAYENTA_METRICS:
        label = kayenta_metric(b[key][i, :k], c[key][i, :k], allowed)
        if critical and label != "pass":
            return "fail"
        labels.append(label)
    scored = [lab for lab in labels if lab != "nodata"]
    score = 100.0 * sum(lab == "pass" for lab in scored) / len(labels)  # no-data groups add 0
    if score >= 95:
        return "pass"
    return "marginal" if score >= 75 else "fail"
