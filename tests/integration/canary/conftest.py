"""A real Prometheus scraping stand-in app slots, started once for the canary tests.

Seven scenarios run side by side, each a baseline exporter and a canary exporter (tests/integration/
canary/exporter.py), all on 127.0.0.1: A/A, +5 points of errors, +50 % latency, a heavier tail
with the same median, and +0.65 points of errors at six times the traffic (significant, but
within tolerance). Prometheus (the Debian package, installed by scripts/bootstrap) scrapes them every
500 ms and labels each target with `scenario` and `colour`, as the lab labels its app slots.

The fixture waits until the analysis window is filled, so every test can query at once.
"""

from __future__ import annotations

import time

import pytest

from tests.support.app_metrics import StandIns, free_port

SCRAPE = "500ms"
WINDOW_S = 45  # analysis window the tests ask for
WARMUP_S = 5
RATE = 100.0  # requests per second per exporter

# scenario -> (baseline args, canary args)
BASE = {"error_ratio": 0.01, "latency_factor": 1.0, "tail_ratio": 0.0, "rate": RATE}
SCENARIOS = {
    "aa": (BASE, BASE),
    "errors": (BASE, {**BASE, "error_ratio": 0.06}),
    "latency": (BASE, {**BASE, "latency_factor": 1.5}),
    "tail": (BASE, {**BASE, "tail_ratio": 0.03, "tail_latency": 0.4}),
    # six times the traffic (~24,000 requests a colour in the window), so that +0.65 points is
    # significant (p below alpha/metrics, z about 2.8) while clearly short of the fail line (half the
    # 2-point tolerance): the standard error of the difference is ~0.1 point, so both margins are
    # about 3 of them (at 3x traffic with +0.6 the first margin was 1.6: it failed about 1 run in 20)
    "negligible": ({**BASE, "rate": 6 * RATE}, {**BASE, "rate": 6 * RATE, "error_ratio": 0.0165}),
    # for the sequential judge only: its canary is restarted while a step is watched
    "restart": (BASE, BASE),
    # for the sequential judge only: 6 % of the canary's requests fail at the load balancer
    # (HAProxy's response errors for its server) while the app counts them as answered
    "lbfail": (BASE, {**BASE, "lb_failure_ratio": 0.06}),
}


class Lab:
    """What the tests need to know: the Prometheus URL, the scenarios and the window to ask for."""

    scenarios = tuple(s for s in SCENARIOS if s not in ("restart", "lbfail"))
    window_s = WINDOW_S
    warmup_s = WARMUP_S

    def __init__(self, url: str, started: float, standins: StandIns | None = None):
        self.url = url
        self.started = started
        self.standins = standins

    @staticmethod
    def closed_port() -> int:
        """A port on 127.0.0.1 where nothing listens."""
        return free_port(set())

    def selectors(self, scenario: str) -> tuple[dict, dict]:
        return {"scenario": scenario, "colour": "blue"}, {"scenario": scenario, "colour": "green"}


@pytest.fixture(scope="session")
def canary_prometheus(tmp_path_factory):
    targets = {
        f"{scenario}-{colour}": (
            {"scenario": scenario, "colour": colour},
            {**args, "seed": 1000 + 2 * i + (colour == "green")},
        )
        for i, (scenario, (base, canary)) in enumerate(SCENARIOS.items())
        for colour, args in (("blue", base), ("green", canary))
    }
    with StandIns(tmp_path_factory.mktemp("canary-prometheus"), targets, scrape=SCRAPE) as standins:
        started = time.time()
        # wait until the analysis window (plus warm-up) is filled
        time.sleep(max(0.0, started + WINDOW_S + WARMUP_S + 2 - time.time()))
        yield Lab(standins.url, started, standins)
