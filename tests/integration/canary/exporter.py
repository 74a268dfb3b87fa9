"""A stand-in for one app slot: serves the reference app's request metrics, driven by synthetic load.

    python exporter.py --port 21001 --rate 100 --error-ratio 0.01 --latency-factor 1.0 \
        --tail-ratio 0 --tail-latency 0.3 --colour blue --seed 1

Every 100 ms it "answers" a Poisson number of requests (rate per second): each is a 5xx with
probability error-ratio, and takes a lognormal latency (median 50 ms x latency-factor, sigma 0.5),
plus tail-latency seconds for a share tail-ratio of them. It counts them exactly as the app does
(free4allweb_http_requests_total{route,method,status}, free4allweb_http_request_duration_seconds
with the app's buckets, free4allweb_build_info). It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TICK_S = 0.1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--error-ratio", type=float, default=0.01)
    ap.add_argument("--latency-factor", type=float, default=1.0)
    ap.add_argument("--tail-ratio", type=float, default=0.0)
    ap.add_argument("--tail-latency", type=float, default=0.3)
    ap.add_argument("--colour", default="blue")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--seed", type=int, default=0)
    # HAProxy's counters for this slot's server: a share of requests fail at the load balancer
    # (refused or aborted: HAProxy answers 502/503 itself) while the app counts them as answered
    ap.add_argument("--lb-failure-ratio", type=float, default=0.0)
    args = ap.parse_args()

    registry = CollectorRegistry()
    requests = Counter(
        "free4allweb_http_requests_total", "HTTP requests answered.", ["route", "method", "status"], registry=registry
    )
    latency = Histogram(
        "free4allweb_http_request_duration_seconds",
        "Request latency.",
        ["route", "method"],
        buckets=BUCKETS,
        registry=registry,
    )
    Gauge("free4allweb_build_info", "Build info.", ["version", "colour"], registry=registry).labels(
        args.version, args.colour
    ).set(1)
    lb_labels = {"proxy": "app", "server": f"s1_{args.colour}"}
    lb_responses = Counter(
        "haproxy_server_http_responses", "HAProxy: responses by class.", [*lb_labels, "code"], registry=registry
    )
    lb_failed = {
        name: Counter(f"haproxy_server_{name}", f"HAProxy: {name}.", list(lb_labels), registry=registry).labels(
            **lb_labels
        )
        for name in ("connection_errors", "response_errors")
    }
    route = ("/api/games", "GET")
    # create the series up front, as a long-running app would have them
    requests.labels(*route, "200")
    requests.labels(*route, "500")
    latency.labels(*route)

    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    rng = np.random.default_rng(args.seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ok, err, hist = requests.labels(*route, "200"), requests.labels(*route, "500"), latency.labels(*route)
    next_tick = time.monotonic()
    while not stop.is_set():
        n = int(rng.poisson(args.rate * TICK_S))
        if n:
            errors = int(rng.binomial(n, args.error_ratio))
            lat = 0.05 * args.latency_factor * np.exp(0.5 * rng.standard_normal(n))
            lat += (rng.random(n) < args.tail_ratio) * args.tail_latency
            for v in lat:
                hist.observe(float(v))
            err.inc(errors)
            ok.inc(n - errors)
            lost = int(rng.binomial(n, args.lb_failure_ratio)) if args.lb_failure_ratio else 0
            lb_failed["response_errors"].inc(lost)
            lb_responses.labels(**lb_labels, code="5xx").inc(max(0, errors - lost))
            lb_responses.labels(**lb_labels, code="2xx").inc(n - max(errors, lost))
        next_tick += TICK_S
        stop.wait(max(0.0, next_tick - time.monotonic()))


if __name__ == "__main__":
    main()
