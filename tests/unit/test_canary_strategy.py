"""The shipped canary strategy (module_utils/canary/strategy.py) and its Prometheus source
(live.py) on a virtual clock: a step stops at its first boundary, gives up at its cap, fails at
once on a restart; the plan raises the first step when traffic is thin and refuses without any;
the source turns Prometheus' answers into the judge's arrays and reads the scrape interval."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.canary import live
from ansible_collections.free4allweb.devops.plugins.module_utils.canary import sequential as sq
from ansible_collections.free4allweb.devops.plugins.module_utils.canary import strategy as st
from ansible_collections.free4allweb.devops.plugins.module_utils.prometheus import PrometheusClient, PrometheusError

BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, np.inf])


def bucket_probs(factor=1.0, rng=None):
    """Shares of a lognormal latency (median 50 ms x factor, sigma 0.5) per bucket."""
    from scipy.stats import lognorm

    cdf = lognorm(s=0.5, scale=0.05 * factor).cdf(BOUNDS)
    return np.diff(np.concatenate([[0.0], cdf]))


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


class SimSource:
    """Both colours' counts grow at constant rates (Poisson per scrape), one route; `draws`
    independent runs on a leading axis (0: scalar)."""

    def __init__(self, clock, rate, share, *, err=(0.01, 0.01), factor=(1.0, 1.0), draws=0, restart_at=None, seed=0):
        self.clock, self.rate, self.share = clock, rate, share
        self.err, self.factor, self.draws, self.restart_at = err, factor, draws, restart_at
        self.rng = np.random.default_rng(seed)
        self.t0 = clock()
        self.acc = None
        self.last = self.t0

    def _grow(self, until):
        shape = (self.draws,) if self.draws else ()
        if self.acc is None:
            z = np.zeros(shape)
            self.acc = {c: {"n": z.copy(), "k": z.copy(), "b": np.zeros((*shape, len(BOUNDS)))} for c in ("b", "c")}
        dt = until - self.last
        for c, share, e, f in (
            ("b", 1 - self.share, self.err[0], self.factor[0]),
            ("c", self.share, *self.err[1:], self.factor[1]),
        ):
            mean = self.rate * share * dt
            per_bucket = self.rng.poisson(mean * bucket_probs(f), (*shape, len(BOUNDS))).astype(float)
            n = per_bucket.sum(axis=-1)
            self.acc[c]["b"] += per_bucket
            self.acc[c]["n"] += n
            self.acc[c]["k"] += self.rng.binomial(n.astype(int), e)
        self.last = until

    def snapshot(self, since, until):
        self._grow(until)
        a = self.acc
        r = lambda x: x[..., None]  # noqa: E731 one route
        data = {
            "error_ratio": sq.RatioCounts(r(a["b"]["k"]), r(a["b"]["n"]), r(a["c"]["k"]), r(a["c"]["n"])),
            "latency_p95": sq.BucketCounts(BOUNDS, a["b"]["b"][..., None, :], a["c"]["b"][..., None, :]),
            "latency_p99": sq.BucketCounts(BOUNDS, a["b"]["b"][..., None, :], a["c"]["b"][..., None, :]),
        }
        restarts = 1 if (self.restart_at is not None and until >= self.t0 + self.restart_at) else 0
        return st.Snapshot(data, ["/api/games"], restarts, self.rate, a["c"]["n"], a["b"]["n"])


def judge():
    return sq.SequentialJudge(st.default_metrics(), alpha=0.01, steps=4)


def test_a_good_canary_passes_at_its_first_boundary_and_a_slow_one_fails():
    clock = Clock()
    out = st.watch_step(judge(), SimSource(clock, 200, 0.5), clock(), look_every=5, clock=clock, sleep=clock.sleep)
    assert out.verdict == "pass", out.reason
    assert out.took < st.DEFAULT_STEP_CAP and len(out.looks) == round(out.took / 5)
    assert "bounded within tolerance" in out.reason
    clock = Clock()
    slow = SimSource(clock, 200, 0.5, factor=(1.0, 1.5))
    out = st.watch_step(judge(), slow, clock(), look_every=5, clock=clock, sleep=clock.sleep)
    assert out.verdict == "fail" and "latency_p95" in out.reason, out.reason
    assert out.failed_metrics and out.as_dict()["history"][-1]["decision"] == "fail"


def test_no_decision_within_the_cap_is_inconclusive_and_names_what_is_undecided():
    clock = Clock()
    thin = SimSource(clock, 2, 0.05)
    out = st.watch_step(judge(), thin, clock(), cap=60, look_every=5, clock=clock, sleep=clock.sleep)
    assert out.verdict == "inconclusive"
    assert "cap of 60 s" in out.reason and "error_ratio" in out.reason
    assert out.took == pytest.approx(60)


def test_a_restart_fails_the_step_at_the_next_look():
    clock = Clock()
    src = SimSource(clock, 200, 0.5, restart_at=20)
    out = st.watch_step(judge(), src, clock(), look_every=5, clock=clock, sleep=clock.sleep)
    assert out.verdict == "fail" and out.failed_metrics == ["restarts"] and "restarted" in out.reason
    assert out.took == pytest.approx(20)
    # what the module returns: the restart beside the metrics, the metrics summary intact
    result = out.as_dict()
    assert result["history"][-1]["restarts"] == 1
    assert {m["name"] for m in result["metrics"]} == {"error_ratio", "latency_p95", "latency_p99"}


def test_after_the_switch_only_a_fail_ends_the_watch_early():
    clock = Clock()
    out = st.watch_step(
        judge(),
        SimSource(clock, 200, 0.5),
        clock(),
        cap=60,
        look_every=5,
        clock=clock,
        sleep=clock.sleep,
        pass_ends=False,
    )
    assert out.verdict == "pass" and out.took == pytest.approx(60)


def test_many_runs_at_once_follow_the_same_rules():
    clock = Clock()
    src = SimSource(clock, 200, 0.5, draws=200, seed=3)
    out = st.watch_step(judge(), src, clock(), look_every=5, clock=clock, sleep=clock.sleep)
    assert isinstance(out, st.VectorOutcome) and out.verdict.shape == (200,)
    assert (out.verdict == sq.PASS).mean() > 0.95 and not (out.verdict == sq.FAIL).any()
    assert np.all(out.decided_at - out.started <= st.DEFAULT_STEP_CAP + 5)


def live_snapshot(rate, seconds=300, seed=0):
    clock = Clock()
    src = SimSource(clock, rate, 1e-9, seed=seed)
    clock.sleep(seconds)
    return src.snapshot(clock() - seconds, clock())


def test_the_plan_keeps_the_steps_at_ample_traffic_and_raises_the_first_at_thin_traffic():
    plan = st.plan_steps(judge(), live_snapshot(500), [5, 25, 50, 100])
    assert plan.steps == [5, 25, 50, 100] and not plan.notes
    # 50 requests/s: the 5 % step would need over 10 minutes; the plan starts at 25 %
    thin = st.plan_steps(judge(), live_snapshot(50), [5, 25, 50, 100])
    assert thin.steps == [25, 50, 100], thin
    assert "skipped" in thin.notes[0] and "5 %" in thin.notes[0]
    assert thin.estimates[5] > st.DEFAULT_STEP_CAP


def test_the_plan_drops_the_smallest_steps_while_the_steps_together_exceed_the_budget():
    live = live_snapshot(100)
    # 100 requests/s: each step fits the 600 s cap, but 5 -> 25 -> 50 would need about 790 s
    unbounded = st.plan_steps(judge(), live, [5, 25, 50, 100], budget=1e9)
    assert unbounded.steps == [5, 25, 50, 100]
    assert sum(1.5 * unbounded.estimates[w] for w in (5, 25, 50)) > st.DEFAULT_BUDGET
    plan = st.plan_steps(judge(), live, [5, 25, 50, 100])
    assert plan.steps == [25, 50, 100], plan
    assert "600 s for the steps together" in plan.notes[0] and "5 %" in plan.notes[0]
    # the budget never raises the first step above max_first_step: 75 % may not come first
    tight = st.plan_steps(judge(), live, [5, 75, 100], budget=60)
    assert tight.steps == [5, 75, 100], tight
    assert "more than the 60 s budget" in tight.notes[-1]
    with pytest.raises(st.StrategyError, match="budget must be above 0"):
        st.plan_steps(judge(), live, [5, 100], budget=0)


def test_the_plan_refuses_when_no_step_can_decide():
    with pytest.raises(st.StrategyError, match=r"insufficient traffic.*blue_green"):
        st.plan_steps(judge(), live_snapshot(5), [5, 25, 50, 100])
    with pytest.raises(st.StrategyError, match="no traffic reached"):
        st.plan_steps(judge(), st.Snapshot(live_snapshot(100).data, ["/api/games"], 0, 0.0), [5, 100])
    with pytest.raises(st.StrategyError, match="rise strictly and end at 100"):
        st.plan_steps(judge(), live_snapshot(100), [25, 5, 100])


# --------------------------------------------------------------------------- Prometheus source


def test_build_snapshot_aligns_routes_pools_small_ones_and_keeps_nan():
    def side(routes):
        return {"routes": routes, "restarts": 0.0}

    cum = {0.05: 50.0, 0.1: 90.0, math.inf: 100.0}
    base = side(
        {
            "/api/games": {"requests": 800.0, "errors": 8.0, "buckets": cum},
            "/api/teams": {"requests": 150.0, "errors": 1.0, "buckets": cum},
            "/api/odd": {"requests": 50.0, "errors": 0.0, "buckets": cum},
        }
    )
    can = side({"/api/games": {"requests": 40.0, "errors": math.nan, "buckets": cum}})
    snap = live.build_snapshot(base, can, st.default_metrics(), 0.1, base_seconds=10, canary_seconds=10)
    assert snap.routes == ["/api/games", "/api/teams", "other"]
    err = snap.data["error_ratio"]
    assert err.baseline_total.tolist() == [800.0, 150.0, 50.0] and err.canary_total.tolist() == [40.0, 0.0, 0.0]
    assert math.isnan(err.canary_events[0])
    assert snap.data["latency_p95"].baseline[0].tolist() == [50.0, 40.0, 10.0]
    assert snap.rate == pytest.approx(104.0)
    _, looks = judge().look(snap.data, routes=3)
    assert looks["error_ratio"].decision[0] == sq.NODATA  # the NaN errors: never a pass


@pytest.fixture
def config_server():
    """Serves /api/v1/status/config (GET) with whatever `state["config"]` holds."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"config": {}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "success", "data": {"yaml": _yaml(state["config"])}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()


def test_scrape_interval_is_read_from_the_running_configuration(config_server):
    config_server["config"] = {
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [{"job_name": "free4allweb-app", "scrape_interval": "5s"}, {"job_name": "node"}],
    }
    client = PrometheusClient(config_server["url"], timeout=5)
    assert live.scrape_interval(client, "free4allweb-app") == 5.0
    assert live.scrape_interval(client, "node") == 15.0
    with pytest.raises(PrometheusError, match="no scrape job 'nope'"):
        live.scrape_interval(client, "nope")
    config_server["config"] = {"scrape_configs": [{"job_name": "free4allweb-app"}]}
    assert live.scrape_interval(client, "free4allweb-app") == 60.0  # Prometheus' own default


def _yaml(data):
    import yaml

    return yaml.safe_dump(data)


# --------------------------------------------------------------------------- the load balancer's signal


class _Sample:
    def __init__(self, value, **labels):
        self.labels, self.values = labels, [value]


class FakePrometheus:
    """Answers the source's instant queries from a table of (substring, samples); records them."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def query(self, promql, at):
        self.asked.append(promql)
        for needle, samples in self.answers:
            if all(part in promql for part in needle):
                return samples
        return []


def _app_answers(colour, requests, errors):
    cum = [(0.05, requests * 0.5), (0.1, requests * 0.9), ("+Inf", requests)]
    return [
        ((f'colour="{colour}"', 'status=~"5.."'), [_Sample(errors, route="/api/games")]),
        ((f'colour="{colour}"', "_bucket"), [_Sample(v, route="/api/games", le=str(le)) for le, v in cum]),
        ((f'colour="{colour}"', "requests_total", "sum by (route)"), [_Sample(requests, route="/api/games")]),
    ]


LB = {"baseline": 'job="haproxy",server=~".+_blue"', "canary": 'job="haproxy",server=~".+_green"'}


def test_the_source_reads_haproxys_failures_for_each_colours_servers():
    answers = [
        (("_green", "connection_errors_total"), [_Sample(30.0)]),  # the canary refuses connections
        (("_blue", "connection_errors_total"), [_Sample(0.0)]),
        (("_green", 'code="5xx"'), [_Sample(3.0)]),  # the app's own 1 %
        (("_blue", 'code="5xx"'), [_Sample(30.0)]),
        (("_green", "http_responses_total"), [_Sample(270.0)]),
        (("_blue", "http_responses_total"), [_Sample(3000.0)]),
        *_app_answers("blue", 3000.0, 30.0),
        *_app_answers("green", 270.0, 3.0),  # the app itself sees nothing wrong
    ]
    client = FakePrometheus(answers)
    metrics = st.default_metrics(lb=True)
    source = live.PrometheusSource(
        client, {"job": "app", "colour": "blue"}, {"job": "app", "colour": "green"}, metrics, lb_selectors=LB
    )
    snap = source.snapshot(1000.0, 1060.0)
    lb = snap.data[st.LB_METRIC]
    assert (float(lb.canary_events), float(lb.canary_total)) == (33.0, 300.0)
    assert (float(lb.baseline_events), float(lb.baseline_total)) == (30.0, 3000.0)
    asked = "\n".join(client.asked)
    for name in ("haproxy_server_http_responses_total", *live.LB_FAILURES):
        assert f'{name}{{job="haproxy",server=~".+_green"}}[60s]' in asked
    # 10 % of the canary's requests failed at the load balancer: the step fails on that metric alone
    decision, looks = sq.SequentialJudge(metrics, alpha=0.01, steps=4).look(snap.data, routes=len(snap.routes))
    assert looks[st.LB_METRIC].decision == sq.FAIL and looks["error_ratio"].decision != sq.FAIL
    assert decision == sq.FAIL


def test_no_load_balancer_series_is_no_data_and_the_plan_refuses_it():
    answers = [(("_blue", "http_responses_total"), [_Sample(3000.0)]), *_app_answers("blue", 3000.0, 30.0)]
    client = FakePrometheus(answers)  # no failure counters at all, nothing for the canary's servers
    metrics = st.default_metrics(lb=True)
    source = live.PrometheusSource(client, {"colour": "blue"}, {"colour": "green"}, metrics, lb_selectors=LB)
    snap = source.snapshot(1000.0, 1060.0)
    lb = snap.data[st.LB_METRIC]
    assert math.isnan(lb.baseline_total) and math.isnan(lb.canary_total)
    _, looks = sq.SequentialJudge(metrics, alpha=0.01, steps=4).look(snap.data, routes=len(snap.routes))
    assert looks[st.LB_METRIC].decision == sq.NODATA  # never a pass
    from ansible_collections.free4allweb.devops.plugins.module_utils.canary import watch

    with pytest.raises(st.StrategyError, match=r"no load balancer counters for the baseline's servers"):
        watch.check_lb_series(source, snap)


def test_a_load_balancer_metric_needs_its_selectors_and_is_a_plain_ratio():
    with pytest.raises(ValueError, match="no load balancer selectors"):
        live.PrometheusSource(FakePrometheus([]), {"colour": "blue"}, {"colour": "green"}, st.default_metrics(lb=True))
    with pytest.raises(ValueError, match="baseline and canary selectors are the same"):
        live.PrometheusSource(
            FakePrometheus([]),
            {"colour": "blue"},
            {"colour": "green"},
            st.default_metrics(lb=True),
            lb_selectors={"baseline": 'job="haproxy"', "canary": 'job="haproxy"'},
        )
    with pytest.raises(sq.SequentialConfigError, match="ratio over all routes"):
        sq.SequentialMetric(name="lb", kind="ratio", tolerance_abs=0.02, source="lb")
    with pytest.raises(sq.SequentialConfigError, match="source must be one of"):
        sq.SequentialMetric(name="x", kind="ratio", tolerance_abs=0.02, source="cdn")
    assert [m.name for m in st.default_metrics()] == ["error_ratio", "latency_p95", "latency_p99"]
