"""canary_evaluate's sequential judge and its plan, run by ansible-playbook against a real
Prometheus scraping stand-in slots (conftest.py): each step stops at its first boundary, a bad
canary fails naming the metric, a restart fails the step, the plan raises the first step or
refuses, and the fixed-window judge refuses a step under two scrape intervals."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ENV = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def play(playbook: str, extra: dict, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(HERE / playbook), "-e", json.dumps(extra)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def seq(canary_prometheus, tmp_path_factory):
    out = tmp_path_factory.mktemp("canary-sequential")
    # the step "began" 30 s ago: the stand-ins have served since well before
    extra = {"prometheus_url": canary_prometheus.url, "out_dir": str(out), "step_start": time.time() - 30}
    proc = play("sequential.yml", extra, 600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    found = json.loads((out / "sequential.json").read_text())
    found["watched"] = {r["item"]: r for r in found["watched"]}
    found["_dir"] = out
    return found


def test_the_plan_keeps_the_steps_at_ample_traffic(seq):
    plan = seq["plan_ample"]
    assert plan["steps"] == [5, 25, 50, 100] and not plan["changed_steps"], plan
    assert plan["look_interval"] == 0.5 and plan["scrape_interval"] == 0.5  # read from Prometheus
    assert 150 < plan["rate"] < 260  # two stand-ins at 100 requests/s


def test_the_plan_raises_the_first_step_when_it_cannot_decide_in_time(seq):
    plan = seq["plan_raised"]
    assert plan["steps"][0] > 5 and plan["steps"][-1] == 100 and plan["changed_steps"], plan
    assert "skipped" in plan["notes"][0]


def test_the_plan_refuses_when_no_step_can_decide(seq):
    refused = seq["plan_refused"]
    assert refused["failed"] and refused["insufficient_traffic"]
    assert "insufficient traffic" in refused["msg"] and "blue_green" in refused["msg"]


def test_an_equal_canary_passes_as_soon_as_every_metric_is_bounded(seq):
    r = seq["watched"]["aa"]
    assert r["verdict"] == "pass", r["reason"]
    # the step starts with the task: two stand-ins at 100 requests/s need thousands of requests
    # before every bound is inside its tolerance; the judge looked every scrape until then
    assert 5 < r["took"] < 150 and r["looks"] > 5, (r["took"], r["looks"])
    last = r["history"][-1]["metrics"]
    assert {m: {v["decision"] for v in per.values()} for m, per in last.items()} == {
        "error_ratio": {"pass"},
        "latency_p95": {"pass"},
        "latency_p99": {"pass"},
    }
    report = (seq["_dir"] / "sequential-aa.html").read_text()
    assert "confidence sequence" in report and "<script" not in report


@pytest.mark.parametrize(
    ("scenario", "metric"), [("errors", "error_ratio"), ("latency", "latency_p95"), ("tail", "latency_p99")]
)
def test_a_worse_canary_fails_naming_the_metric(seq, scenario, metric):
    r = seq["watched"][scenario]
    assert r["verdict"] == "fail", r["reason"]
    assert any(f.startswith(metric) for f in r["failed_metrics"]), r["failed_metrics"]
    assert metric in r["reason"]
    # a clear regression is caught long before an equal canary can pass
    assert r["took"] < seq["watched"]["aa"]["took"], (r["took"], seq["watched"]["aa"]["took"])


def test_the_plan_checks_the_load_balancers_series_before_any_change(seq):
    assert "lb_error_ratio" in seq["plan_lb"]["judged_metrics"], seq["plan_lb"]
    assert "lb_error_ratio" not in seq["plan_ample"]["judged_metrics"]
    missing = seq["plan_lb_missing"]
    assert missing["failed"] and "no load balancer counters for the canary's servers" in missing["msg"], missing
    assert "_purple" in missing["msg"]


def test_a_canary_failing_at_the_load_balancer_fails_though_the_app_sees_nothing(seq):
    r = seq["lb_watched"]
    assert r["verdict"] == "fail", r["reason"]
    assert r["failed_metrics"] == ["lb_error_ratio"] and "lb_error_ratio" in r["reason"], r
    # the app's own counts of the same requests do not fail
    last = r["history"][-1]["metrics"]
    assert "fail" not in {v["decision"] for v in last["error_ratio"].values()}
    assert r["took"] < seq["watched"]["aa"]["took"]


def test_after_the_switch_an_equal_colour_is_kept(seq):
    r = seq["after_switch"]
    assert r["verdict"] == "pass", r["reason"]
    assert "no metric worse beyond tolerance" in r["reason"]


def test_a_fixed_window_step_under_two_scrapes_is_refused(seq):
    r = seq["short_step"]
    assert r["failed"] and "under two scrape intervals" in r["msg"] and "free4allweb-app" in r["msg"]


def test_a_canary_that_restarts_fails_the_step(canary_prometheus, tmp_path):
    standins = canary_prometheus.standins
    started = time.time()

    def restart_soon():
        time.sleep(6)
        _, args = standins.targets["restart-green"]
        standins.restart("restart-green", **args)

    thread = threading.Thread(target=restart_soon, daemon=True)
    thread.start()
    proc = play(
        "watch_restart.yml",
        {"prometheus_url": canary_prometheus.url, "out_dir": str(tmp_path), "step_start": started},
        180,
    )
    thread.join(30)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    r = json.loads((tmp_path / "restart.json").read_text())
    assert r["verdict"] == "fail", r["reason"]
    assert r["failed_metrics"] == ["restarts"] and "restarted" in r["reason"]
