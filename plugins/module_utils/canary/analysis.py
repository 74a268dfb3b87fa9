"""Fetch each metric for the baseline and the canary from Prometheus, then judge.

Templates carry two placeholders, substituted per colour and per query:

* ``$selector`` - the colour's label matchers, e.g. ``colour="green"`` (without braces), so a
  template reads ``rate(free4allweb_http_requests_total{$selector,status=~"5.."}[$window])``;
* ``$window`` - the range of a rate/increase: the step for per-step series, the whole analysis
  window for the totals that ratio and histogram metrics are judged on.

Continuous metrics come from one range query per colour (every returned series is pooled). Ratio
and histogram metrics are judged on totals from an instant query over the whole window
(`increase(...[<window>])` at its end), and drawn from a range query per step.

Plain Python; no Ansible imports. Prometheus errors propagate as PrometheusError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import stats
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.classifiers import tail_threshold
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.judge import JudgeConfig, JudgeResult, judge
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import (
    ContinuousData,
    CountData,
    HistogramData,
    MetricSpec,
    Series,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.prometheus import (
    PrometheusClient,
    PrometheusError,
    format_duration,
    parse_duration,
    parse_time,
)

COLOURS = ("baseline", "canary")
_PLACEHOLDER = re.compile(r"\$(?:\{(selector|window)\}|(selector|window)\b)")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class AnalysisError(ValueError):
    """The analysis was asked for something impossible (bad window, bad selector, bad template)."""


def selector_text(selector) -> str:
    """Label matchers without braces, from a dict {label: value} (exact match) or a string."""
    if isinstance(selector, dict):
        if not selector:
            raise AnalysisError("a selector needs at least one label")
        parts = []
        for label, value in selector.items():
            if not _LABEL.match(str(label)):
                raise AnalysisError(f"not a Prometheus label name: {label!r}")
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            parts.append(f'{label}="{escaped}"')
        return ",".join(parts)
    text = str(selector or "").strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text:
        raise AnalysisError('a selector must not be empty: give label matchers such as colour="green"')
    return text


def render(template: str, selector: str, window_s: float) -> str:
    """Substitute $selector and $window in a PromQL template; other `$` are left alone."""
    if not template or ("$selector" not in template and "${selector}" not in template):
        raise AnalysisError(f"the query template must contain $selector: {template!r}")

    def sub(m):
        name = m.group(1) or m.group(2)
        return selector if name == "selector" else format_duration(window_s)

    return _PLACEHOLDER.sub(sub, template)


@dataclass
class Window:
    start: float  # analysis start, after the warm-up
    end: float
    step: float
    rate_window: float  # the $window of per-step queries
    warmup: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "step": self.step,
            "rate_window": self.rate_window,
            "warmup": self.warmup,
            "duration": round(self.duration, 3),
            "steps": int(self.duration // self.step),
        }


def resolve_window(*, start=None, end=None, lookback=None, step="10s", warmup=0, rate_window=None, now=None) -> Window:
    """The analysis window from start/end or a lookback, with the warm-up cut from its start."""
    step_s = parse_duration(step)
    if step_s <= 0:
        raise AnalysisError("step must be positive")
    warm = parse_duration(warmup or 0)
    end_s = parse_time(end if end is not None else "now", now)
    if start is not None and lookback is not None:
        raise AnalysisError("give either start or lookback, not both")
    if start is not None:
        start_s = parse_time(start, now)
    elif lookback is not None:
        start_s = end_s - parse_duration(lookback)
    else:
        raise AnalysisError("give start (and optionally end) or lookback for the analysis window")
    rw = parse_duration(rate_window) if rate_window else step_s
    analysis_start = start_s + warm
    if analysis_start + max(step_s, rw) > end_s:
        raise AnalysisError(
            f"the analysis window is too short: {end_s - start_s:g} s minus a {warm:g} s warm-up "
            f"leaves less than one step ({max(step_s, rw):g} s)"
        )
    return Window(analysis_start, end_s, step_s, rw, warm)


# --------------------------------------------------------------------------- fetching


def _pool(series) -> tuple[np.ndarray, np.ndarray]:
    if not series:
        return np.zeros(0), np.zeros(0)
    ts = np.concatenate([np.asarray(s.timestamps, float) for s in series])
    vs = np.concatenate([np.asarray(s.values, float) for s in series])
    order = np.argsort(ts, kind="stable")
    return ts[order], vs[order]


def _sum_by_time(series) -> tuple[np.ndarray, np.ndarray]:
    """Sum several series per timestamp (a template that did not aggregate)."""
    if not series:
        return np.zeros(0), np.zeros(0)
    acc: dict[float, float] = {}
    for s in series:
        for t, v in zip(s.timestamps, s.values, strict=True):
            acc[t] = acc.get(t, 0.0) + v
    ts = np.array(sorted(acc))
    return ts, np.array([acc[t] for t in ts])


def _total(series) -> float | None:
    """The sum of an instant query's series: None when it returned no series at all, NaN when a
    series it returned holds no number (a NaN or infinite count is missing data: dropping it would
    count fewer errors than there were, and never a pass)."""
    if not series:
        return None
    vals = [v for s in series for v in s.values]
    if not vals or not all(math.isfinite(v) for v in vals):
        return math.nan
    return float(sum(vals))


def _buckets(series, where: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounds and cumulative counts from series labelled by `le` (summed per bound)."""
    if not series:
        return None
    acc: dict[float, float] = {}
    for s in series:
        if "le" not in s.labels:
            raise AnalysisError(f"{where}: a histogram query must return series by le (use sum by (le) (...))")
        le = float(s.labels["le"])
        # a NaN bucket count stays NaN: the classifier reports missing data, never a smaller tail
        acc[le] = acc.get(le, 0.0) + sum(s.values)
    bounds = np.array(sorted(acc))
    return bounds, np.array([acc[b] for b in bounds])


def _noncumulative(cum: np.ndarray) -> np.ndarray:
    counts = np.diff(np.concatenate([[0.0], cum]))
    return np.clip(counts, 0, None)


class Fetcher:
    """Runs a metric's queries for both colours and builds the judge's data object."""

    def __init__(self, client: PrometheusClient, selectors: dict, window: Window):
        self.client = client
        self.selectors = selectors
        self.window = window
        self.queries: list[dict] = []
        self.notes: list[str] = []

    def _range(self, metric: str, colour: str, template: str):
        w = self.window
        q = render(template, self.selectors[colour], w.rate_window)
        self.queries.append({"metric": metric, "colour": colour, "type": "range", "query": q})
        return self.client.query_range(q, w.start + w.rate_window, w.end, w.step)

    def _instant(self, metric: str, colour: str, template: str):
        w = self.window
        q = render(template, self.selectors[colour], w.duration)
        self.queries.append({"metric": metric, "colour": colour, "type": "instant", "query": q})
        return self.client.query(q, w.end)

    def fetch(self, spec: MetricSpec):
        if spec.kind == "continuous":
            return self._continuous(spec)
        if spec.kind == "ratio":
            return self._ratio(spec)
        return self._histogram(spec)

    def _continuous(self, spec: MetricSpec) -> ContinuousData:
        out = {}
        for colour in COLOURS:
            series = self._range(spec.name, colour, spec.query)
            if len(series) > 1:
                self.notes.append(f"{spec.name}: {len(series)} {colour} series returned; their samples are pooled")
            ts, vs = _pool(series)
            out[colour] = (ts, vs)
        return ContinuousData(
            baseline=out["baseline"][1],
            canary=out["canary"][1],
            baseline_series=Series(*out["baseline"]),
            canary_series=Series(*out["canary"]),
        )

    def _ratio(self, spec: MetricSpec) -> CountData:
        totals, series = {}, {}
        for colour in COLOURS:
            num = _total(self._instant(spec.name, colour, spec.numerator))
            den = _total(self._instant(spec.name, colour, spec.denominator))
            totals[colour] = (num if den is not None else None, den)
            nts, nvs = _sum_by_time(self._range(spec.name, colour, spec.numerator))
            dts, dvs = _sum_by_time(self._range(spec.name, colour, spec.denominator))
            nmap = dict(zip(nts.tolist(), nvs.tolist(), strict=True))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.array(
                    [
                        nmap.get(t, 0.0) / d if d > 0 else math.nan
                        for t, d in zip(dts.tolist(), dvs.tolist(), strict=True)
                    ]
                )
            series[colour] = Series(dts, ratio)
        return CountData(
            baseline_events=totals["baseline"][0],
            baseline_total=totals["baseline"][1],
            canary_events=totals["canary"][0],
            canary_total=totals["canary"][1],
            baseline_series=series["baseline"],
            canary_series=series["canary"],
        )

    def _histogram(self, spec: MetricSpec) -> HistogramData:
        found = {}
        for colour in COLOURS:
            found[colour] = _buckets(self._instant(spec.name, colour, spec.query), f"{spec.name} ({colour})")
        if found["baseline"] is None and found["canary"] is None:
            return HistogramData(np.array([math.inf]), None, None)
        if found["baseline"] is not None and found["canary"] is not None:
            bb, cb = found["baseline"][0], found["canary"][0]
            if not np.array_equal(bb, cb):
                common = np.intersect1d(bb, cb)
                self.notes.append(
                    f"{spec.name}: the colours' buckets differ; compared on the {len(common)} shared bounds"
                )
                found = {c: (common, found[c][1][np.isin(found[c][0], common)]) for c in COLOURS}
        bounds = (found["baseline"] or found["canary"])[0]
        if not math.isinf(bounds[-1]):
            raise AnalysisError(f"{spec.name}: the histogram has no +Inf bucket; query the _bucket series by le")
        counts = {c: (None if found[c] is None else _noncumulative(found[c][1])) for c in COLOURS}
        data = HistogramData(bounds, counts["baseline"], counts["canary"])
        # per-step tail quantile for the report
        q = float(spec.tail_quantile)
        for colour in COLOURS:
            per_step: dict[float, dict[float, float]] = {}
            for s in self._range(spec.name, colour, spec.query):
                if "le" not in s.labels:
                    continue
                le = float(s.labels["le"])
                for t, v in zip(s.timestamps, s.values, strict=True):
                    per_step.setdefault(t, {})
                    per_step[t][le] = per_step[t].get(le, 0.0) + (v if math.isfinite(v) else 0.0)
            ts = np.array(sorted(per_step))
            vals = []
            for t in ts:
                cum = np.array([per_step[t].get(b, 0.0) for b in bounds])
                vals.append(stats.histogram_quantile(q, bounds, _noncumulative(cum)))
            setattr(data, f"{colour}_series", Series(ts, np.array(vals)))
        return data


@dataclass
class Analysis:
    result: JudgeResult
    window: Window
    selectors: dict
    specs: list[MetricSpec]
    data: dict
    queries: list[dict]
    notes: list[str]
    warnings: list[str]

    def as_dict(self) -> dict:
        out = self.result.as_dict()
        out.update(
            {
                "window": self.window.as_dict(),
                "selectors": dict(self.selectors),
                "queries": self.queries,
                "notes": self.notes,
                "prometheus_warnings": self.warnings,
            }
        )
        return out


def analyse(
    client: PrometheusClient,
    specs: list[MetricSpec],
    baseline_selector,
    canary_selector,
    window: Window,
    *,
    config: JudgeConfig | None = None,
) -> Analysis:
    """Query every metric for both colours over the window and judge the canary."""
    selectors = {"baseline": selector_text(baseline_selector), "canary": selector_text(canary_selector)}
    if selectors["baseline"] == selectors["canary"]:
        raise AnalysisError("the baseline and canary selectors are the same: the canary would be judged against itself")
    for spec in specs:
        templates = [spec.query] if spec.kind != "ratio" else [spec.numerator, spec.denominator]
        for t in templates:
            render(t, "x", 1)  # fail early, before any query, on a template without $selector
    fetcher = Fetcher(client, selectors, window)
    data = {spec.name: fetcher.fetch(spec) for spec in specs}
    result = judge(specs, data, config)
    # the histogram's threshold is known only now: note it for the report
    for spec, r in zip(specs, result.metrics, strict=True):
        if spec.kind == "histogram" and r.tail.get("threshold") is not None:
            d = data[spec.name]
            if d.baseline_counts is not None:
                r.details["threshold_index"] = tail_threshold(d.bounds, d.baseline_counts, float(spec.tail_quantile))[1]
    return Analysis(result, window, selectors, specs, data, fetcher.queries, fetcher.notes, list(client.warnings))


__all__ = [
    "Analysis",
    "AnalysisError",
    "PrometheusError",
    "Window",
    "analyse",
    "render",
    "resolve_window",
    "selector_text",
]
