"""Stand-ins for the app's slots or pods, scraped by a real Prometheus on 127.0.0.1.

Each target is tests/integration/canary/exporter.py: it answers a Poisson stream of synthetic
requests and counts them exactly as the app does (request counter, latency histogram). Prometheus
(the Debian package, installed by `scripts/bootstrap --test`) scrapes them under the job
`free4allweb-app` and labels each with `colour` (and whatever else the caller gives), as the lab's
Prometheus and the k8s_monitoring chart label the real app: so canary_evaluate asks it the same
queries. Used where the app itself serves no metrics (kwok's pods) and by the judge's own tests.

A target can be restarted with other behaviour (`StandIns.restart`) on the same port: a canary
that turns bad.
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

import requests

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = ROOT / "tests" / "integration" / "canary" / "exporter.py"
JOB = "free4allweb-app"


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


def wait_http(url: str, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
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


class StandIns:
    """Exporters (one per target) and the Prometheus that scrapes them.

    `targets`: name -> (labels, exporter arguments such as rate, error_ratio, latency_factor,
    tail_ratio, tail_latency, seed). Use as a context manager; `url` is Prometheus's."""

    def __init__(self, workdir: Path, targets: dict[str, tuple[dict, dict]], scrape: str = "1s"):
        self.workdir = Path(workdir)
        self.targets = targets
        self.scrape = scrape
        self.taken: set[int] = set()
        self.ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.prometheus: subprocess.Popen | None = None
        self.url = ""

    # -- the exporters ------------------------------------------------------------------------
    def _start(self, name: str, args: dict) -> subprocess.Popen:
        labels, _ = self.targets[name]
        cmd = [sys.executable, str(EXPORTER), "--port", str(self.ports[name]), "--colour", labels.get("colour", name)]
        for key, value in args.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def restart(self, name: str, **args) -> None:
        """Restart one target with other behaviour, on the same port (its counters restart too,
        as a restarted process's would)."""
        self._stop(self.procs.pop(name))
        self.targets[name] = (self.targets[name][0], args)
        self.procs[name] = self._start(name, args)
        wait_http(f"http://127.0.0.1:{self.ports[name]}/metrics", 20, f"exporter {name}", self.procs[name])

    # -- Prometheus ---------------------------------------------------------------------------
    def __enter__(self) -> StandIns:
        binary = shutil.which("prometheus")
        if not binary:
            raise RuntimeError("the Debian package 'prometheus' is missing: run scripts/bootstrap --test")
        try:
            for name, (_, args) in self.targets.items():
                self.ports[name] = free_port(self.taken)
                self.procs[name] = self._start(name, args)
            for name, proc in self.procs.items():
                wait_http(f"http://127.0.0.1:{self.ports[name]}/metrics", 20, f"exporter {name}", proc)
            static = "\n".join(
                f"      - targets: ['127.0.0.1:{self.ports[name]}']\n        labels: "
                + "{"
                + ", ".join(f"{k}: {v}" for k, v in labels.items())
                + "}"
                for name, (labels, _) in self.targets.items()
            )
            config = self.workdir / "prometheus.yml"
            config.write_text(
                f"global:\n  scrape_interval: {self.scrape}\n  evaluation_interval: 5s\n"
                f"scrape_configs:\n  - job_name: {JOB}\n    scrape_interval: {self.scrape}\n"
                f"    static_configs:\n{static}\n"
            )
            port = free_port(self.taken)
            log = self.workdir / "prometheus.log"
            self.prometheus = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log.open("wb"),  # kept open for the process's life
                env={**os.environ, "GOMAXPROCS": "2"},
            )
            self.url = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{self.url}/-/ready", 30, "prometheus", self.prometheus)
            except RuntimeError as e:
                raise RuntimeError(f"{e}; its log ends:\n{log.read_text(errors='replace')[-2000:]}") from None
            self.wait_all_up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def wait_all_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = requests.get(f"{self.url}/api/v1/query", params={"query": "sum(up)"}, timeout=5).json()
            result = up["data"]["result"]
            if result and float(result[0]["value"][1]) == len(self.targets):
                return
            time.sleep(0.5)
        raise RuntimeError(f"Prometheus did not scrape all {len(self.targets)} exporters; see {self.workdir}")

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    def __exit__(self, *exc) -> None:
        for proc in [*self.procs.values(), *([self.prometheus] if self.prometheus else [])]:
            self._stop(proc)


#: one colour's stand-in with the reference app's ordinary behaviour (1 % errors, 50 ms median), at
#: 300 requests/s: the sequential judge decides a good step in about 15 s
GOOD = {"rate": 300.0, "error_ratio": 0.01, "latency_factor": 1.0, "tail_ratio": 0.0}


def colours(seed: int = 1) -> dict[str, tuple[dict, dict]]:
    """A blue and a green stand-in that behave alike (a good release on either colour)."""
    return {c: ({"colour": c}, {**GOOD, "seed": seed + i}) for i, c in enumerate(("blue", "green"))}
