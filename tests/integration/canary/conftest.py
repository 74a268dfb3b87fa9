"""A real Prometheus scraping stand-in app slots, started once for the canary tests.

Five scenarios run side by side, each a baseline exporter and a canary exporter (tests/integration/
canary/exporter.py), all on 127.0.0.1: A/A, +5 points of errors, +50 % latency, a heavier tail
with the same median, and +0.65 points of errors at six times the traffic (significant, but
within tolerance). Prometheus (the Debian package, installed by scripts/bootstrap) scrapes them every
500 ms and labels each target with `scenario` and `colour`, as the lab labels its app slots.

The fixture waits until the analysis window is filled, so every test can query at once.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
EXPORTER = HERE / "exporter.py"
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
}


def free_port(taken: set[int]) -> int:
    """A free port on 127.0.0.1 below the ephemeral range."""
    for _ in range(500):
        port = random.randint(20000, 32000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port below 32768")


def _wait_http(url: str, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready at {url} after {timeout} s")


class Lab:
    """What the tests need to know: the Prometheus URL, the scenarios and the window to ask for."""

    scenarios = tuple(SCENARIOS)
    window_s = WINDOW_S
    warmup_s = WARMUP_S

    def __init__(self, url: str, started: float):
        self.url = url
        self.started = started

    @staticmethod
    def closed_port() -> int:
        """A port on 127.0.0.1 where nothing listens."""
        return free_port(set())

    def selectors(self, scenario: str) -> tuple[dict, dict]:
        return {"scenario": scenario, "colour": "blue"}, {"scenario": scenario, "colour": "green"}


@pytest.fixture(scope="session")
def canary_prometheus(tmp_path_factory):
    binary = shutil.which("prometheus")
    if not binary:
        pytest.fail("the Debian package 'prometheus' is missing: run scripts/bootstrap (it installs it)")
    work = tmp_path_factory.mktemp("canary-prometheus")
    taken: set[int] = set()
    procs: list[subprocess.Popen] = []
    targets = []
    try:
        for i, (scenario, (base, canary)) in enumerate(SCENARIOS.items()):
            for colour, args in (("blue", base), ("green", canary)):
                port = free_port(taken)
                cmd = [
                    sys.executable,
                    str(EXPORTER),
                    "--port",
                    str(port),
                    "--colour",
                    colour,
                    "--seed",
                    str(1000 + 2 * i + (colour == "green")),
                ]
                for key, value in args.items():
                    cmd += [f"--{key.replace('_', '-')}", str(value)]
                procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
                targets.append((port, scenario, colour))
        for proc, (port, scenario, colour) in zip(procs, targets, strict=True):
            _wait_http(f"http://127.0.0.1:{port}/metrics", 20, f"exporter {scenario}/{colour}", proc)

        static = "\n".join(
            f"      - targets: ['127.0.0.1:{port}']\n        labels: {{scenario: {scenario}, colour: {colour}}}"
            for port, scenario, colour in targets
        )
        config = work / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE}\n  evaluation_interval: 5s\n"
            f"scrape_configs:\n  - job_name: app\n    scrape_interval: {SCRAPE}\n    static_configs:\n{static}\n"
        )
        prom_port = free_port(taken)
        prom = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "prometheus.log", "wb"),  # noqa: SIM115 - kept open for the process's life
            env={**os.environ, "GOMAXPROCS": "2"},
        )
        procs.append(prom)
        url = f"http://127.0.0.1:{prom_port}"
        try:
            _wait_http(f"{url}/-/ready", 30, "prometheus", prom)
        except RuntimeError as e:
            log = (work / "prometheus.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{e}; its log ends:\n{log}") from None
        started = time.time()
        # wait until every target has been scraped and the analysis window (plus warm-up) is filled
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            up = requests.get(f"{url}/api/v1/query", params={"query": "sum(up)"}, timeout=5).json()
            result = up["data"]["result"]
            if result and float(result[0]["value"][1]) == len(targets):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"Prometheus did not scrape all {len(targets)} exporters; see {work / 'prometheus.log'}")
        time.sleep(max(0.0, started + WINDOW_S + WARMUP_S + 2 - time.time()))
        yield Lab(url, started)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
