"""Prometheus metrics: requests by route and status, a latency histogram, and build info.

With PROMETHEUS_MULTIPROC_DIR set (one directory per slot, emptied at start by systemd), the
numbers from every worker process are merged at scrape time.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)

REQUESTS = Counter(
    "free4allweb_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "free4allweb_http_request_duration_seconds",
    "Time from request received to response sent, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
BUILD_INFO = Gauge(
    "free4allweb_build_info",
    "Always 1; labels carry the running release's version and colour.",
    ["version", "colour"],
    multiprocess_mode="max",
)
FAULTS_ACTIVE = Gauge(
    "free4allweb_fault_injection_active",
    "1 when fault injection is configured for this process.",
    multiprocess_mode="max",
)


def render() -> tuple[bytes, str]:
    """The exposition text for this process, or for every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
