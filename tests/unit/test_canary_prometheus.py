"""The Prometheus client and the analysis around it, against a tiny HTTP server on 127.0.0.1.

The server answers each path the way a test asks: errors, garbage, slow answers, or canned
Prometheus data. Every failure must surface as PrometheusError (a clear failure), never as a
verdict, let alone a pass.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np
import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.canary.analysis import (
    AnalysisError,
    analyse,
    render,
    resolve_window,
    selector_text,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.metrics import MetricSpec, free4allweb_metrics
from ansible_collections.free4allweb.devops.plugins.module_utils.canary.report import render_html
from ansible_collections.free4allweb.devops.plugins.module_utils.prometheus import (
    PrometheusClient,
    PrometheusError,
    format_duration,
    parse_duration,
    parse_time,
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (32768+)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


class Stub:
    """What the stub server answers: a function of (path, form) -> (status, body, content type)."""

    def __init__(self):
        self.handler = lambda path, form: (200, "{}", "application/json")
        self.requests: list[tuple[str, dict, dict]] = []


@pytest.fixture(scope="module")
def stub():
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            state.requests.append((self.path, form, dict(self.headers)))
            status, body, ctype = state.handler(self.path, form)
            data = body.encode() if isinstance(body, str) else body
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, *args):
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{port}"
    yield state
    server.shutdown()
    server.server_close()


def answer(data: dict, status: int = 200):
    body = json.dumps({"status": "success", "data": data})
    return lambda path, form: (status, body, "application/json")


# --------------------------------------------------------------------------- failures


def test_unreachable_prometheus_is_a_clear_error():
    port = free_port()  # nothing listens there
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(PrometheusError, match=r"cannot reach Prometheus at http://127.0.0.1:\d+"):
        client.query("up")


def test_http_500_with_garbage(stub):
    stub.handler = lambda path, form: (500, "<html>upstream exploded</html>", "text/html")
    with pytest.raises(PrometheusError, match="answered HTTP 500: <html>upstream exploded"):
        PrometheusClient(stub.url).query("up")


def test_prometheus_error_answer_names_the_query(stub):
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": 'parse error at char 5: unexpected "}"'})
    stub.handler = lambda path, form: (400, body, "application/json")
    with pytest.raises(PrometheusError, match=r"rejected the query \(HTTP 400, bad_data\): parse error.*query: up\{\}"):
        PrometheusClient(stub.url).query("up{}")


def test_ok_status_but_not_prometheus(stub):
    stub.handler = lambda path, form: (200, "<html>login page</html>", "text/html")
    with pytest.raises(PrometheusError, match="did not answer like the Prometheus API"):
        PrometheusClient(stub.url).query("up")
    stub.handler = lambda path, form: (200, json.dumps({"status": "success"}), "application/json")
    with pytest.raises(PrometheusError, match="did not answer like the Prometheus API"):
        PrometheusClient(stub.url).query("up")


def test_authentication_refused(stub):
    stub.handler = lambda path, form: (401, "Unauthorized", "text/plain")
    with pytest.raises(PrometheusError, match=r"refused the request \(HTTP 401\): check the token"):
        PrometheusClient(stub.url, token="wrong").query("up")


def test_slow_answer_times_out(stub):
    def slow(path, form):
        time.sleep(1.5)
        return 200, "{}", "application/json"

    stub.handler = slow
    with pytest.raises(PrometheusError, match=r"did not answer within 0\.5 s"):
        PrometheusClient(stub.url, timeout=0.5).query("up")


def test_wrong_result_type_and_malformed_samples(stub):
    stub.handler = answer({"resultType": "vector", "result": []})
    with pytest.raises(PrometheusError, match="expected a matrix"):
        PrometheusClient(stub.url).query_range("up", 0, 60, 10)
    stub.handler = answer({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "abc"]]}]})
    with pytest.raises(PrometheusError, match="unexpected sample value 'abc'"):
        PrometheusClient(stub.url).query_range("up", 0, 60, 10)
    stub.handler = answer({"resultType": "vector", "result": [{"metric": {}}]})
    with pytest.raises(PrometheusError, match="malformed instant-query answer"):
        PrometheusClient(stub.url).query("up")


def test_too_many_points_is_refused_before_asking():
    client = PrometheusClient("http://127.0.0.1:1")
    with pytest.raises(PrometheusError, match="exceed Prometheus' limit"):
        client.query_range("up", 0, 200000, 1)


def test_bad_url_and_mixed_auth():
    with pytest.raises(PrometheusError, match="must start with http"):
        PrometheusClient("127.0.0.1:9090")
    with pytest.raises(PrometheusError, match="either a bearer token or basic auth"):
        PrometheusClient("http://x", token="t", username="u", password="p")


# --------------------------------------------------------------------------- success paths


def test_range_query_parses_values_including_nan_and_sends_auth(stub):
    stub.requests.clear()
    stub.handler = answer(
        {
            "resultType": "matrix",
            "result": [{"metric": {"colour": "green"}, "values": [[10, "0.5"], [20, "NaN"], [30, "+Inf"]]}],
        }
    )
    series = PrometheusClient(stub.url, token="s3cret").query_range("up", 0, 30, 10)
    assert series[0].labels == {"colour": "green"}
    assert series[0].timestamps == [10.0, 20.0, 30.0]
    assert series[0].values[0] == 0.5 and np.isnan(series[0].values[1]) and np.isinf(series[0].values[2])
    path, form, headers = stub.requests[-1]
    assert path == "/api/v1/query_range"
    assert form == {"query": "up", "start": "0.000", "end": "30.000", "step": "10"}
    assert headers["Authorization"] == "Bearer s3cret"


def test_basic_auth_and_scalar(stub):
    stub.requests.clear()
    stub.handler = answer({"resultType": "scalar", "result": [5, "42"]})
    series = PrometheusClient(stub.url, username="ops", password="pw").query("42", time=5)
    assert series[0].values == [42.0]
    assert stub.requests[-1][2]["Authorization"].startswith("Basic ")


# --------------------------------------------------------------------------- helpers


def test_durations_and_times():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration(15) == 15.0
    assert parse_duration("90") == 90.0
    for bad in ("5 minutes", "", "-1s", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_time("now-5m", now=1000.0) == 700.0
    assert parse_time("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_time(12.5) == 12.5
    with pytest.raises(ValueError):
        parse_time("yesterday")
    assert format_duration(300) == "300s"
    assert format_duration(2.5) == "2500ms"


def test_selectors_and_templates():
    assert selector_text({"colour": "blue", "job": 'a"b'}) == 'colour="blue",job="a\\"b"'
    assert selector_text('{colour="green"}') == 'colour="green"'
    with pytest.raises(AnalysisError):
        selector_text("")
    with pytest.raises(AnalysisError):
        selector_text({"bad-label": "x"})
    q = render('rate(x{$selector,path=~"/api/.*$"}[$window]) / ${window}', 'colour="green"', 10)
    assert q == 'rate(x{colour="green",path=~"/api/.*$"}[10s]) / 10s'
    with pytest.raises(AnalysisError, match=r"must contain \$selector"):
        render("rate(x[$window])", "a", 1)


def test_windows():
    w = resolve_window(lookback="5m", warmup="30s", step="10s", end=1000.0)
    assert (w.start, w.end, w.duration, w.rate_window) == (730.0, 1000.0, 270.0, 10.0)
    w = resolve_window(start="now-2m", step="5s", rate_window="15s", now=600.0)
    assert (w.start, w.end, w.rate_window) == (480.0, 600.0, 15.0)
    with pytest.raises(AnalysisError, match="too short"):
        resolve_window(lookback="30s", warmup="25s", step="10s", end=1000.0)
    with pytest.raises(AnalysisError, match="either start or lookback"):
        resolve_window(start=0, lookback="5m", end=1000.0)
    with pytest.raises(AnalysisError, match="give start"):
        resolve_window(end=1000.0)


# --------------------------------------------------------------------------- the analysis


def canned_prometheus(canary_errors: float, fail_on: str | None = None):
    """Answers like Prometheus for the default metrics: constant counts per step."""
    bounds = ["0.05", "0.1", "0.2", "+Inf"]
    cum = {"blue": [500, 900, 1000, 1000], "green": [500, 900, 1000, 1000]}

    def handler(path, form):
        q = form["query"]
        if fail_on and fail_on in q:
            return 503, "Service Unavailable", "text/plain"
        colour = "green" if 'colour="green"' in q else "blue"
        instant = path.endswith("/query")
        if "_bucket" in q and "histogram_quantile" not in q:
            if instant:
                result = [
                    {"metric": {"le": b}, "value": [form["time"], str(c)]}
                    for b, c in zip(bounds, cum[colour], strict=True)
                ]
                return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}), "a/j"
            start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
            ts = np.arange(start, end + 1e-9, step)
            result = [
                {"metric": {"le": b}, "values": [[t, str(c / len(ts))] for t in ts]}
                for b, c in zip(bounds, cum[colour], strict=True)
            ]
            return 200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}), "a/j"
        if instant:
            total = 1000.0
            value = total * (canary_errors if colour == "green" else 0.01) if 'status=~"5.."' in q else total
            result = [{"metric": {}, "value": [form["time"], str(value)]}]
            return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}), "a/j"
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        ts = np.arange(start, end + 1e-9, step)
        rng = np.random.default_rng(abs(hash((q, colour))) % 2**32)
        vals = 0.1 + 0.002 * rng.standard_normal(len(ts))
        result = [{"metric": {}, "values": [[t, str(v)] for t, v in zip(ts, vals, strict=True)]}]
        return 200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}), "a/j"

    return handler


def test_analysis_queries_both_colours_and_judges(stub):
    stub.requests.clear()
    stub.handler = canned_prometheus(canary_errors=0.01)
    specs = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
    window = resolve_window(lookback="5m", step="10s", end=10000.0)
    analysis = analyse(PrometheusClient(stub.url), specs, {"colour": "blue"}, {"colour": "green"}, window)
    out = analysis.as_dict()
    assert out["verdict"] == "pass", out["reason"]
    sent = [form["query"] for _, form, _ in stub.requests]
    # totals over the window
    green_errors = 'colour="green",route=~"/api/.+",route!="/api/events",status=~"5.."'
    assert any(green_errors in q and "[300s]" in q for q in sent)
    assert any('colour="blue"' in q and "[10s]" in q for q in sent)  # per-step series
    assert {q["colour"] for q in out["queries"]} == {"baseline", "canary"}
    assert out["window"]["steps"] == 30


def test_analysis_fails_on_bad_errors_and_reports_it(stub):
    stub.handler = canned_prometheus(canary_errors=0.08)
    specs = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
    specs.insert(0, MetricSpec(name="cpu <b>", query="x{$selector}", tolerance_rel=0.5))
    window = resolve_window(lookback="5m", step="10s", end=10000.0)
    analysis = analyse(PrometheusClient(stub.url), specs, {"colour": "blue"}, {"colour": "green"}, window)
    out = analysis.as_dict()
    assert out["verdict"] == "fail"
    assert "error_ratio" in out["reason"]

    html = render_html(analysis, title="Canary <test>")
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html  # self-contained, nothing fetched
    assert html.count("<svg") >= 10
    assert "Canary &lt;test&gt;" in html and "cpu &lt;b&gt;" in html  # names are escaped
    # the failed metric comes first, before the passing ones configured ahead of it
    assert html.index('id="m-error_ratio"') < html.index('id="m-cpu &lt;b&gt;"')
    assert "significant worsening beyond 0.5 x tolerance" in html


def test_a_nan_error_count_from_prometheus_is_not_a_pass(stub):
    # the canary's 5xx count comes back as NaN: the analysis must not read it as 0 errors
    canned = canned_prometheus(canary_errors=0.01)

    def handler(path, form):
        status, body, ctype = canned(path, form)
        q = form["query"]
        if path.endswith("/query") and 'colour="green"' in q and 'status=~"5.."' in q:
            data = json.loads(body)
            for r in data["data"]["result"]:
                r["value"][1] = "NaN"
            body = json.dumps(data)
        return status, body, ctype

    stub.handler = handler
    specs = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
    window = resolve_window(lookback="5m", step="10s", end=10000.0)
    out = analyse(PrometheusClient(stub.url), specs, {"colour": "blue"}, {"colour": "green"}, window).as_dict()
    errors = next(m for m in out["metrics"] if m["name"] == "error_ratio")
    assert errors["data"] == "nodata" and "not a number" in errors["reason"]
    assert out["verdict"] != "pass", out["reason"]


def test_prometheus_failing_mid_analysis_raises_instead_of_judging(stub):
    # the first metrics answer, then the latency histogram query gets a 503
    stub.handler = canned_prometheus(canary_errors=0.01, fail_on="histogram_quantile(0.5")
    specs = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
    window = resolve_window(lookback="5m", step="10s", end=10000.0)
    with pytest.raises(PrometheusError, match="HTTP 503"):
        analyse(PrometheusClient(stub.url), specs, {"colour": "blue"}, {"colour": "green"}, window)


def test_same_selector_for_both_colours_is_refused():
    specs = [MetricSpec.from_dict(d) for d in free4allweb_metrics()]
    window = resolve_window(lookback="5m", step="10s", end=10000.0)
    with pytest.raises(AnalysisError, match="judged against itself"):
        analyse(PrometheusClient("http://127.0.0.1:1"), specs, 'colour="blue"', {"colour": "blue"}, window)
