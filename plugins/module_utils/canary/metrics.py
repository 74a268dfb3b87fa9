"""What the canary judge compares: metric definitions, the data it is given, and the default set.

A metric is one of three kinds:

* ``continuous``: one value per step for each colour (a per-step p95 latency, a CPU rate). Judged
  with Mann-Whitney U, the Hodges-Lehmann shift and its confidence bounds, and a tail check on a
  high quantile of the per-step values.
* ``ratio``: events out of a total (5xx out of all requests), judged from the counts with a
  two-proportion comparison (Fisher's exact test, Newcombe's interval), never from averaged
  per-step ratios.
* ``histogram``: Prometheus histogram bucket counts (by ``le``); judged on the share of requests
  slower than the baseline's ``tail_quantile`` bucket boundary, from the counts. This is the tail
  check that a heavier tail with the same median cannot slip past.

Plain Python; no Ansible imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

KINDS = ("continuous", "ratio", "histogram")
DIRECTIONS = ("increase", "decrease", "either")
NODATA_STRATEGIES = ("inconclusive", "fail", "ignore")
DEFAULT_MIN_SAMPLES = {"continuous": 10, "ratio": 50, "histogram": 50}
DEFAULT_TAIL_QUANTILE = {"continuous": 0.9, "ratio": None, "histogram": 0.99}


class MetricConfigError(ValueError):
    """A metric definition is wrong; the message names the metric and the field."""


@dataclass
class MetricSpec:
    """One metric to compare. Tolerances are in the metric's own unit (abs) or a fraction (rel).

    The effective tolerance is max(tolerance_abs, tolerance_rel * |baseline level|): a difference
    is negligible when it is small in absolute terms or in relative terms.
    """

    name: str
    kind: str = "continuous"
    direction: str = "increase"
    critical: bool = False
    weight: float = 1.0
    group: str = ""
    tolerance_abs: float = 0.0
    tolerance_rel: float = 0.0
    min_samples: int | None = None
    nodata: str = "inconclusive"
    tail_quantile: float | None = None
    tail_tolerance_abs: float | None = None
    tail_tolerance_rel: float | None = None
    unit: str = ""
    description: str = ""
    # PromQL templates ($selector and $window are substituted); the judge itself ignores them.
    query: str = ""
    numerator: str = ""
    denominator: str = ""

    def __post_init__(self):
        if not self.name:
            raise MetricConfigError("every metric needs a name")
        where = f"metric {self.name!r}"
        if self.kind not in KINDS:
            raise MetricConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.direction not in DIRECTIONS:
            raise MetricConfigError(
                f"{where}: direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}"
            )
        if self.kind == "histogram" and self.direction != "increase":
            raise MetricConfigError(f"{where}: a histogram (tail) metric only judges direction 'increase'")
        if self.nodata not in NODATA_STRATEGIES:
            raise MetricConfigError(
                f"{where}: nodata must be one of {', '.join(NODATA_STRATEGIES)}, not {self.nodata!r}"
            )
        if self.critical and self.nodata == "ignore":
            raise MetricConfigError(f"{where}: a critical metric cannot ignore missing data")
        for attr in ("weight", "tolerance_abs", "tolerance_rel"):
            value = getattr(self, attr)
            if value is None or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise MetricConfigError(f"{where}: {attr} must be a finite number >= 0, not {value!r}")
        if self.weight == 0 and self.critical:
            raise MetricConfigError(f"{where}: a critical metric needs a weight above 0")
        if self.min_samples is None:
            self.min_samples = DEFAULT_MIN_SAMPLES[self.kind]
        if not isinstance(self.min_samples, int) or self.min_samples < 2:
            raise MetricConfigError(f"{where}: min_samples must be an integer >= 2, not {self.min_samples!r}")
        if self.tail_quantile is None:
            self.tail_quantile = DEFAULT_TAIL_QUANTILE[self.kind]
        elif self.tail_quantile is False or self.tail_quantile == 0:
            self.tail_quantile = None  # 0 or false switches the tail check off
        elif not isinstance(self.tail_quantile, (int, float)) or not 0.5 < float(self.tail_quantile) < 1.0:
            raise MetricConfigError(f"{where}: tail_quantile must lie between 0.5 and 1 (0 switches it off)")
        if self.kind == "histogram" and self.tail_quantile is None:
            raise MetricConfigError(f"{where}: a histogram metric needs tail_quantile")
        if self.kind == "ratio" and self.tail_quantile is not None:
            raise MetricConfigError(f"{where}: tail_quantile does not apply to a ratio metric")
        if not self.group:
            self.group = self.name

    def tolerance(self, baseline_level: float) -> float:
        level = abs(baseline_level) if math.isfinite(baseline_level) else 0.0
        return max(self.tolerance_abs, self.tolerance_rel * level)

    def tail_tolerance(self, baseline_level: float) -> float:
        t_abs = self.tolerance_abs if self.tail_tolerance_abs is None else self.tail_tolerance_abs
        t_rel = self.tolerance_rel if self.tail_tolerance_rel is None else self.tail_tolerance_rel
        level = abs(baseline_level) if math.isfinite(baseline_level) else 0.0
        return max(t_abs, t_rel * level)

    @classmethod
    def from_dict(cls, data: dict) -> MetricSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise MetricConfigError(f"metric {data.get('name', '?')!r}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in data.items() if v is not None})


# --------------------------------------------------------------------------- the data


@dataclass
class Series:
    """Per-step values of one colour, for the report (timestamps in unix seconds)."""

    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class ContinuousData:
    baseline: np.ndarray
    canary: np.ndarray
    baseline_series: Series | None = None
    canary_series: Series | None = None


@dataclass
class CountData:
    """Totals over the analysis window; None when the query returned nothing at all."""

    baseline_events: float | None
    baseline_total: float | None
    canary_events: float | None
    canary_total: float | None
    baseline_series: Series | None = None  # per-step ratio, for the report
    canary_series: Series | None = None


@dataclass
class HistogramData:
    """Non-cumulative bucket counts over the window; bounds are the `le` upper bounds, +Inf last."""

    bounds: np.ndarray
    baseline_counts: np.ndarray | None
    canary_counts: np.ndarray | None
    baseline_series: Series | None = None  # per-step share above the tail threshold, for the report
    canary_series: Series | None = None


# --------------------------------------------------------------------------- defaults for the app

_REQUESTS = "free4allweb_http_requests_total"
_BUCKETS = "free4allweb_http_request_duration_seconds_bucket"
# Only what users ask for: the load balancer's health checks (/ready, the same on both colours)
# would dilute a canary's errors and latency, and /api/events streams last for minutes.
_API = 'route=~"/api/.+",route!="/api/events"'


def free4allweb_metrics() -> list[dict]:
    """The suggested metric set for the reference app (see docs/canary.md)."""
    latency_step = f"sum by (le) (rate({_BUCKETS}{{$selector,{_API}}}[$window]))"
    return [
        {
            "name": "error_ratio",
            "kind": "ratio",
            "description": "Share of requests answered 5xx, judged from the counts",
            "numerator": f'sum(increase({_REQUESTS}{{$selector,{_API},status=~"5.."}}[$window]))',
            "denominator": f"sum(increase({_REQUESTS}{{$selector,{_API}}}[$window]))",
            "direction": "increase",
            "critical": True,
            "tolerance_abs": 0.02,
            "unit": "ratio",
        },
        {
            "name": "latency_p95",
            "kind": "continuous",
            "description": "Per-step p95 request latency",
            "query": f"histogram_quantile(0.95, {latency_step})",
            "direction": "increase",
            "critical": True,
            "tolerance_rel": 0.2,
            "tolerance_abs": 0.005,
            "unit": "s",
        },
        {
            "name": "latency_p50",
            "kind": "continuous",
            "description": "Per-step median request latency",
            "query": f"histogram_quantile(0.5, {latency_step})",
            "direction": "increase",
            "critical": False,
            "tolerance_rel": 0.2,
            "tolerance_abs": 0.005,
            "unit": "s",
        },
        {
            "name": "latency_tail",
            "kind": "histogram",
            "description": "Share of requests slower than the baseline's p99 bucket",
            "query": f"sum by (le) (increase({_BUCKETS}{{$selector,{_API}}}[$window]))",
            "direction": "increase",
            "critical": True,
            "tail_quantile": 0.99,
            "tolerance_abs": 0.01,
            "tolerance_rel": 1.0,
            "unit": "ratio",
        },
    ]
