"""Counts for the sequential judge from Prometheus: the reference app's requests, 5xx and latency
buckets per route and colour since an instant, the canary's restarts, and the scrape interval
the judge must respect.

Every query is an instant query of ``increase(...[W])`` at the look's time, W the time since the
step's warm-up ended, so each look sees everything since then (Prometheus corrects counter
resets; a reset is also reported as a restart). Plain Python; no Ansible imports.
"""

from __future__ import annotations

import math

import numpy as np

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import sequential as sq
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.analysis import selector_text
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.strategy import ROUTE_MIN_SHARE, Snapshot
from ansible_collections.free4allweb.devops.plugins.module_utils.prometheus import (
    PrometheusClient,
    PrometheusError,
    format_duration,
    parse_duration,
)

# HAProxy's own counters per server (its Prometheus exporter): the responses it got from each
# server by class, and what failed there without a response (refused or failed connections,
# responses aborted or timed out: HAProxy answers those 502/503/504 itself). Its 5xx include
# what the server stack answered below the app's instrumentation, which the app never counts.
LB_RESPONSES = "haproxy_server_http_responses_total"
LB_FAILURES = ("haproxy_server_connection_errors_total", "haproxy_server_response_errors_total")
REQUESTS = "free4allweb_http_requests_total"
BUCKETS = "free4allweb_http_request_duration_seconds_bucket"
# what users ask for: not the health checks (the same on both colours), not the event streams
API = 'route=~"/api/.+",route!="/api/events"'
OTHER = "other"


def scrape_interval(client: PrometheusClient, job: str) -> float:
    """The scrape interval Prometheus uses for `job`, read from its running configuration (the
    job's own, else the global one, else Prometheus' default of 1 minute)."""
    import yaml

    try:
        resp = client.session.get(f"{client.url}/api/v1/status/config", timeout=client.timeout)
        body = resp.json()
    except Exception as e:  # transport or JSON errors, worded like the client's
        raise PrometheusError(f"cannot read the configuration of Prometheus at {client.url}: {e}") from None
    if resp.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"Prometheus at {client.url} did not return its configuration (HTTP {resp.status_code})")
    try:
        config = yaml.safe_load(body["data"]["yaml"]) or {}
    except (KeyError, TypeError, yaml.YAMLError) as e:
        raise PrometheusError(f"Prometheus at {client.url} returned a configuration that is not YAML: {e}") from None
    default = (config.get("global") or {}).get("scrape_interval", "1m")
    for sc in config.get("scrape_configs") or []:
        if sc.get("job_name") == job:
            return parse_duration(sc.get("scrape_interval", default))
    raise PrometheusError(
        f"Prometheus at {client.url} has no scrape job {job!r}: the judge's selectors name a job it does not scrape"
    )


class PrometheusSource:
    """Snapshots of both colours since an instant (strategy.Source)."""

    def __init__(
        self,
        client: PrometheusClient,
        baseline_selector,
        canary_selector,
        metrics: list[sq.SequentialMetric],
        *,
        route_min_share: float = ROUTE_MIN_SHARE,
        baseline_window: tuple[float, float] | None = None,
        lb_selectors: dict | None = None,
    ):
        self.client = client
        self.selectors = {"baseline": selector_text(baseline_selector), "canary": selector_text(canary_selector)}
        if self.selectors["baseline"] == self.selectors["canary"]:
            raise ValueError(
                "the baseline and the canary selectors are the same: the judge would compare a colour with itself"
            )
        # the load balancer's series of each colour's servers (e.g. job="haproxy",server=~".+_green")
        self.lb_selectors = None
        if lb_selectors:
            self.lb_selectors = {c: selector_text(lb_selectors.get(c)) for c in ("baseline", "canary")}
            if self.lb_selectors["baseline"] == self.lb_selectors["canary"]:
                raise ValueError("the load balancer's baseline and canary selectors are the same")
        if any(m.source == "lb" for m in metrics) and self.lb_selectors is None:
            raise ValueError("a load balancer metric is judged but no load balancer selectors were given")
        self.metrics = metrics
        self.route_min_share = route_min_share
        # after the switch the baseline has no traffic: its counts come from a fixed window
        self.baseline_window = baseline_window
        self.queries: list[str] = []
        self._baseline_cache = None

    def _query(self, promql: str, at: float):
        self.queries.append(promql)
        return self.client.query(promql, at)

    def _colour(self, colour: str, since: float, until: float) -> dict:
        """{route: {"requests": n, "errors": k, "buckets": {le: cumulative}}} and restarts."""
        sel = self.selectors[colour]
        w = format_duration(max(until - since, 1.0))
        routes: dict[str, dict] = {}

        def slot(route):
            return routes.setdefault(route, {"requests": 0.0, "errors": 0.0, "buckets": {}})

        for s in self._query(f"sum by (route) (increase({REQUESTS}{{{sel},{API}}}[{w}]))", until):
            slot(s.labels.get("route", ""))["requests"] += s.values[0]
        for s in self._query(f'sum by (route) (increase({REQUESTS}{{{sel},{API},status=~"5.."}}[{w}]))', until):
            slot(s.labels.get("route", ""))["errors"] += s.values[0]
        for s in self._query(f"sum by (route, le) (increase({BUCKETS}{{{sel},{API}}}[{w}]))", until):
            b = slot(s.labels.get("route", ""))["buckets"]
            le = float(s.labels["le"])
            b[le] = b.get(le, 0.0) + s.values[0]
        lb = None
        if self.lb_selectors is not None:
            lsel = self.lb_selectors[colour]
            answered = self._query(f"sum(increase({LB_RESPONSES}{{{lsel}}}[{w}]))", until)
            answered_5xx = self._query(f'sum(increase({LB_RESPONSES}{{{lsel},code="5xx"}}[{w}]))', until)
            failures = " + ".join(f"sum(increase({name}{{{lsel}}}[{w}]))" for name in LB_FAILURES)
            lost = self._query(failures, until)
            lost_n = sum(s.values[0] for s in lost)
            lb = {
                # all present, or no data (an empty sum is no series, not zero)
                "series": min(len(answered), len(answered_5xx), len(lost)),
                # a request HAProxy sent that got no response is not among the responses
                "requests": sum(s.values[0] for s in answered) + lost_n,
                "errors": sum(s.values[0] for s in answered_5xx) + lost_n,
            }
        restarts = 0.0
        if colour == "canary":
            # a counter that went back to zero is a process that restarted; a scrape that found
            # the target down counts too (sum of up over the window below its count of samples)
            for q in (
                f"sum(resets({REQUESTS}{{{sel}}}[{w}]))",
                f"sum(count_over_time(up{{{sel}}}[{w}])) - sum(sum_over_time(up{{{sel}}}[{w}]))",
            ):
                for s in self._query(q, until):
                    v = s.values[0]
                    restarts += v if math.isfinite(v) else 0.0
        return {"routes": routes, "restarts": restarts, "lb": lb}

    def snapshot(self, since: float, until: float) -> Snapshot:
        if self.baseline_window is not None:
            if self._baseline_cache is None:
                self._baseline_cache = self._colour("baseline", *self.baseline_window)
            base = self._baseline_cache
            base_seconds = self.baseline_window[1] - self.baseline_window[0]
        else:
            base = self._colour("baseline", since, until)
            base_seconds = until - since
        can = self._colour("canary", since, until)
        return build_snapshot(
            base, can, self.metrics, self.route_min_share, base_seconds=base_seconds, canary_seconds=until - since
        )


def build_snapshot(
    base: dict, can: dict, metrics, route_min_share: float, *, base_seconds: float, canary_seconds: float
) -> Snapshot:
    """Align the colours' routes and buckets into the judge's arrays. Routes carrying less than
    `route_min_share` of the baseline's requests are summed into one route, "other"."""
    b_routes, c_routes = base["routes"], can["routes"]
    total_b = sum(r["requests"] for r in b_routes.values() if math.isfinite(r["requests"]))
    names = sorted(set(b_routes) | set(c_routes))
    big = [r for r in names if total_b > 0 and b_routes.get(r, {}).get("requests", 0.0) >= route_min_share * total_b]
    small = [r for r in names if r not in big]
    groups = [(r, [r]) for r in big] + ([(OTHER, small)] if small else [])
    if not groups:
        groups = [(OTHER, [])]
    bounds = sorted({le for side in (b_routes, c_routes) for r in side.values() for le in r["buckets"]})
    if not bounds or not math.isinf(bounds[-1]):
        bounds = [*bounds, math.inf] if bounds else [math.inf]
    bounds_arr = np.array(bounds)

    def arrays(side: dict):
        req, err, cum = [], [], []
        for _name, members in groups:
            rows = [side[m] for m in members if m in side]
            req.append(sum(r["requests"] for r in rows) if rows else 0.0)
            err.append(sum(r["errors"] for r in rows) if rows else 0.0)
            c = np.zeros(len(bounds))
            for r in rows:
                c += np.array([r["buckets"].get(le, math.nan if r["buckets"] else 0.0) for le in bounds])
            cum.append(c)
        cum = np.array(cum)
        counts = np.diff(np.concatenate([np.zeros((len(groups), 1)), cum], axis=1), axis=1)
        # increase() of cumulative buckets can come out a hair out of order: no negative bucket
        counts = np.where(np.isfinite(counts), np.maximum(counts, 0.0), counts)
        return np.array(req), np.array(err), counts

    nb, kb, cb = arrays(b_routes)
    nc, kc, cc = arrays(c_routes)
    data = {}
    for m in metrics:
        if m.source == "lb":
            b, c = base.get("lb"), can.get("lb")
            if b is None or c is None:
                raise ValueError(f"no load balancer counts for metric {m.name}")
            # no series (HAProxy not scraped, or the selector names no server) is no data, never 0 failures
            data[m.name] = sq.RatioCounts(
                *(
                    np.float64(x[k]) if x["series"] else np.float64(math.nan)
                    for x in (b, c)
                    for k in ("errors", "requests")
                )
            )
        elif m.kind == "ratio":
            data[m.name] = (
                sq.RatioCounts(kb, nb, kc, nc) if m.by_route else sq.RatioCounts(kb.sum(), nb.sum(), kc.sum(), nc.sum())
            )
        else:
            data[m.name] = (
                sq.BucketCounts(bounds_arr, cb, cc)
                if m.by_route
                else sq.BucketCounts(bounds_arr, cb.sum(axis=0), cc.sum(axis=0))
            )
    rate_b = nb.sum() / base_seconds if base_seconds > 0 else math.nan
    rate_c = nc.sum() / canary_seconds if canary_seconds > 0 else math.nan
    return Snapshot(
        data=data,
        routes=[g for g, _members in groups],
        restarts=round(can.get("restarts", 0.0)),
        rate=float(np.nansum([rate_b, rate_c])),
        canary_requests=float(np.nansum(nc)),
        baseline_requests=float(np.nansum(nb)),
    )
