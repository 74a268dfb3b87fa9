"""Canary releases on the lab, judged by canary_evaluate against the real Prometheus scraping the
real app slots, under bounded load. Runs after test_blue_green.py. A good release promoted
through every step under load is tests/integration/test_rollout_everywhere.py (hosts_platform);
a release with only a heavier tail (p99), or with more 5xx in the app's own counts, is
tests/integration/canary/test_canary_sequential.py, the same judge against a real Prometheus
without the lab. Here the bad releases fail where only the lab can show it: errors that only
HAProxy counts (lb_error_ratio), a slower p95 through the real stack, Prometheus going away.

Every release here takes 30 ms per API request (injected latency standing in for real work), so
latencies are large enough for "+50 % p95" to mean more than the judge's 5 ms noise floor: the
lab's bare requests take about 3 ms, where +50 % is 1.5 ms and within any sane tolerance. 30 ms
also puts requests in the middle of the app's (25 ms, 50 ms] histogram bucket rather than on a
bucket boundary, where per-step p95 estimates of a 5 % canary would jump between buckets."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.support import lab
from tests.support.loadgen import Load

LOAD_URL = f"{lab.FRONTEND}/api/games?limit=5"
RATE = 400
BASE, ERRORS, SLOW, BLIND = "5.9.0", "7.0.0", "7.1.0", "7.3.0"
WORK_MS = 30


@pytest.fixture(scope="module", autouse=True)
def steady_traffic(provisioned_lab):
    """Traffic on the live colour all through this file, as a production site has: the deploy's
    plan reads the live colour's last minute of requests before it changes anything. (The first
    test's deploy takes longer than that minute.) Bounded: 200 requests/s for at most 30 min."""
    load = Load(LOAD_URL, connections=4, requests=10**7, max_seconds=1800, rate=200).start()
    yield load
    load.stop()


def live_version() -> str:
    return requests.get(f"{lab.FRONTEND}/health", timeout=5).json()["version"]


def canary(version: str, faults: dict | None = None, during=None):
    """Deploy `version` as a canary under load. Returns (run, load result, steps recorded)."""
    first_id = lab.last_deployment_id()
    extra = {"deploy_strategy": "canary", "app_faults": {"latency_ms": WORK_MS, **(faults or {})}}
    load = Load(LOAD_URL, connections=8, requests=10**6, max_seconds=900, rate=RATE).start()
    side = threading.Thread(target=during, daemon=True) if during else None
    try:
        if side:
            side.start()
        run = lab.playbook("deploy.yml", "-e", f"app_version={version}", "-e", json.dumps(extra))
        time.sleep(3)
    finally:
        result = load.stop()
        if side:
            side.join(60)
    records = lab.deployments(first_id)
    steps = []
    if records:
        rows = lab.sql(
            "SELECT step, result, details FROM deployment_steps WHERE deployment_id = "
            f"{int(records[-1]['id'])} ORDER BY id"
        )
        steps = [{"step": s, "result": r, "details": json.loads(d)} for s, r, d in rows]
    return run, result, steps


def metric(step: dict, name: str) -> dict:
    return next(m for m in step["details"]["metrics"] if m["name"] == name)


def assert_rolled_back(run, result, steps, version, baseline):
    assert not run.ok, "a bad canary must fail the deploy"
    assert live_version() == baseline
    state = lab.router()
    assert not state.split and state.weights[state.live_colour] == 100
    failed_step = steps[-1]
    # at the first step the plan ran: 5 % when the lab's load generator keeps up; under a loaded CI
    # machine it delivers less, and the plan (canary_budget) may start at 25 % (seen in CI)
    judged = [s["step"] for s in steps if s["step"].startswith("canary ")]
    assert judged == [failed_step["step"]], f"rolled back at {failed_step['step']}, not at the first step: {steps}"
    assert failed_step["step"] in ("canary 5 %", "canary 25 %", "canary 50 %"), steps
    # nothing but the canary's own (injected) errors: the rollback itself fails no request
    assert all(s.version == version for s in result.failed), {s.error or s.status for s in result.failed}
    # the sequential judge decided within its cap, as soon as the data allowed
    assert failed_step["details"]["took"] is not None and float(failed_step["details"]["took"]) < 600
    judged, returned = failed_step["details"]["judged_at"], failed_step["details"]["rolled_back_at"]
    assert returned is not None
    took = float(returned) - float(judged)
    print(
        f"\n{version}: verdict {failed_step['result']} after {float(failed_step['details']['took']):.0f} s "
        f"({failed_step['details']['reason']}); weights back {took:.2f} s after the verdict"
    )
    # 0.27-0.29 s on an idle machine; the CI runs this beside molecule and the clusters' tests
    # (1.14 s measured so): the bound is 5 s from the verdict
    assert took < 5.0, f"traffic returned {took:.2f} s after the verdict"
    return failed_step


def test_a_baseline_with_realistic_latency_goes_live(provisioned_lab):
    # deploy_force: a rerun of this file finds BASE live, maybe with other faults
    extra = {"app_faults": {"latency_ms": WORK_MS}, "deploy_force": True}
    run = lab.playbook("deploy.yml", "-e", f"app_version={BASE}", "-e", json.dumps(extra))
    assert run.ok, run
    assert live_version() == BASE


def test_release_failing_below_the_app_is_rolled_back_on_haproxys_count(provisioned_lab):
    # 5 % of the canary's API requests answered 500 outside the app's own metrics (as a crash below
    # its instrumentation would be): the app counts none of them, HAProxy counts them all. (A 5xx
    # the app counts fails error_ratio: tests/integration/canary against a real Prometheus.)
    step = assert_rolled_back(*canary(ERRORS, {"hidden_error_ratio": 0.05}), ERRORS, BASE)
    assert step["result"] == "fail"
    assert metric(step, "lb_error_ratio")["classification"] == "fail", step
    assert metric(step, "error_ratio")["classification"] != "fail", step


def test_release_with_slower_p95_is_rolled_back(provisioned_lab):
    # +45 ms moves requests into the (75 ms, 100 ms] bucket: p95 at least +50 % whatever the noise
    step = assert_rolled_back(*canary(SLOW, {"latency_ms": WORK_MS + 45}), SLOW, BASE)
    p95 = metric(step, "latency_p95")
    assert step["result"] == "fail" and p95["classification"] == "fail"
    assert p95["effect_relative"] >= 0.5, f"the bad release was not +50 % at p95: {p95}"


def test_release_is_rolled_back_when_prometheus_goes_away(provisioned_lab):
    def stop_prometheus_during_the_first_step():
        deadline = time.time() + 300
        while time.time() < deadline:
            state = lab.router()
            if state.split:
                lab.in_container("monitor", "systemctl stop prometheus")
                return
            time.sleep(0.5)

    try:
        run, result, steps = canary(BLIND, during=stop_prometheus_during_the_first_step)
    finally:
        lab.in_container("monitor", "systemctl start prometheus")
    assert not run.ok
    assert "canary judged error" in run.output or "no verdict" in run.output, run
    assert live_version() == BASE
    assert steps and steps[-1]["result"] == "error"
    assert not [s for s in result.failed if s.version != BLIND]
