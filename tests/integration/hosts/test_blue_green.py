"""Blue-green on the lab, end to end: the real playbooks, HAProxy, systemd slots, PostgreSQL.

The tests run in file order; each leaves the lab with a known release live.
Load goes only to the lab's frontend on 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.support import lab
from tests.support.loadgen import Load

LOAD_URL = f"{lab.FRONTEND}/api/games?limit=5"
V1, V2, BAD, V4, V5 = "1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"
MIN_REQUESTS = 20_000
CONNECTIONS = 8
RATE = 450  # requests per second: enough for 20k within a deploy, leaving CPU for the deploy


def live_version() -> str:
    return requests.get(f"{lab.FRONTEND}/health", timeout=5).json()["version"]


def deploy(version: str, *extra: str) -> lab.Run:
    return lab.playbook("deploy.yml", "-e", f"app_version={version}", *extra)


def under_load(action) -> tuple[lab.Run, object, float]:
    """Run `action` while bounded load hits the frontend; keep loading until MIN_REQUESTS are
    done and a few seconds have passed after the action. Returns (run, load result, end time)."""
    load = Load(LOAD_URL, connections=CONNECTIONS, requests=10 * MIN_REQUESTS, max_seconds=900, rate=RATE).start()
    time.sleep(2)
    run = action()
    ended = time.time()
    while load.result.total < MIN_REQUESTS or time.time() < ended + 5:
        time.sleep(0.5)
        if time.time() > ended + 120:
            break
    return run, load.stop(), ended


def assert_no_failed_requests(result):
    summary = result.summary()
    assert result.total >= MIN_REQUESTS, summary
    assert result.connections >= CONNECTIONS
    assert not result.failed, f"failed requests during the switch: {summary}"


def test_provision_is_idempotent(provisioned_lab):
    again = lab.playbook("provision.yml")
    assert again.ok, again
    assert again.changed == 0, f"second provision changed something:\n{again}"


def test_provision_check_mode_changes_nothing(provisioned_lab):
    checked = lab.playbook("provision.yml", check=True)
    assert checked.ok, checked
    assert checked.changed == 0, checked


def test_lab_creation_is_idempotent(provisioned_lab):
    again = lab.playbook("lab.yml")
    assert again.ok and again.changed == 0, again


def test_deploy_v1(provisioned_lab):
    run = deploy(V1)
    assert run.ok, run
    assert live_version() == V1
    state = lab.router()
    assert state.weights[state.live_colour] == 100 and not state.split


def test_deploy_v2_under_load_fails_no_request(provisioned_lab):
    before = lab.router()
    first_id = lab.last_deployment_id()
    run, result, ended = under_load(lambda: deploy(V2))
    assert run.ok, run
    assert_no_failed_requests(result)
    after_switch = result.versions(since=ended)
    assert after_switch and set(after_switch) == {V2}, f"after the switch: {dict(after_switch)}"
    after = lab.router()
    assert after.live_colour != before.live_colour
    assert after.weights == {before.live_colour: 0, after.live_colour: 100}
    # the old colour keeps running, healthy, for an instant rollback
    assert len(after.healthy(before.live_colour)) == 2
    [record] = lab.deployments(first_id)
    assert (record["kind"], record["version"], record["previous_version"], record["result"]) == (
        "deploy",
        V2,
        V1,
        "succeeded",
    )
    assert float(record["finished"]) > float(record["started"])
    print(f"\ndeploy {V2} under load: {result.summary()}; switch window {result.switch_seconds(V1, V2)} s")


def test_deploying_the_live_version_again_changes_nothing(provisioned_lab):
    before = lab.router()
    first_id = lab.last_deployment_id()
    run = deploy(V2)
    assert run.ok, run
    assert run.changed == 0, run
    assert "already live" in run.output
    assert lab.router().weights == before.weights
    assert lab.deployments(first_id) == []


def test_rollback_under_load_fails_no_request(provisioned_lab):
    first_id = lab.last_deployment_id()
    run, result, ended = under_load(lambda: lab.playbook("rollback.yml"))
    assert run.ok, run
    assert_no_failed_requests(result)
    assert set(result.versions(since=ended)) == {V1}
    assert live_version() == V1
    [record] = lab.deployments(first_id)
    assert (record["kind"], record["version"], record["result"]) == ("rollback", V1, "succeeded")
    print(f"\nrollback under load: {result.summary()}; took {run.seconds:.1f} s")


def test_failing_release_never_takes_traffic(provisioned_lab):
    before = lab.router()
    first_id = lab.last_deployment_id()
    faults = '{"app_faults": {"ready_fail": true}, "deploy_ready_timeout": 10}'
    run, result, _ = under_load(lambda: deploy(BAD, "-e", faults))
    assert not run.ok, "a release whose /ready fails must fail the deploy"
    assert "readiness forced to fail by fault injection" in run.output
    assert f"deploy of {BAD} failed" in run.output and "not ready" in run.output
    assert_no_failed_requests(result)
    assert set(result.versions()) == {V1}, "traffic left the live colour"
    assert lab.router().weights == before.weights
    [record] = lab.deployments(first_id)
    assert (record["version"], record["result"]) == (BAD, "failed")
    assert "not ready" in record["message"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["-e", "app_version="], "app_version"),
        (["-e", "app_version=latest!"], "app_version"),
        (["-e", f"app_version={V2}", "-e", "deploy_strategy=rainbow"], "deploy_strategy"),
        ([], "app_version"),
    ],
    ids=["empty-version", "malformed-version", "unknown-strategy", "missing-version"],
)
def test_bad_input_fails_before_any_change(provisioned_lab, extra, named):
    before = lab.router()
    first_id = lab.last_deployment_id()
    run = lab.playbook("deploy.yml", *extra)
    assert not run.ok
    assert named in run.output
    assert set(run.recap()) == {"localhost"}, "no host may be touched"
    assert run.changed == 0
    assert lab.router().weights == before.weights
    assert lab.deployments(first_id) == []


def test_a_second_deploy_waits_for_the_lock_and_fails_clearly(provisioned_lab):
    holder = lab.in_container(
        "lb",
        "python3 -c \"import json,os,time; os.makedirs('/var/lib/free4allweb', exist_ok=True);"
        " json.dump({'token': 'test-holder', 'owner': 'pytest', 'purpose': 'holding the lock',"
        " 'acquired_at': time.time(), 'expires_at': time.time() + 600, 'host': 'lb'},"
        " open('/var/lib/free4allweb/deploy.lock', 'x'))\"",
    )
    del holder
    try:
        started = time.monotonic()
        run = deploy(V4, "-e", "deploy_lock_timeout=3")
        assert not run.ok
        assert "held by 'pytest' for 'holding the lock'" in run.output
        assert time.monotonic() - started >= 3
        assert live_version() == V1
    finally:
        lab.in_container("lb", "rm -f /var/lib/free4allweb/deploy.lock")


def test_concurrent_deploys_never_interleave(provisioned_lab):
    first_id = lab.last_deployment_id()
    a = lab.start_playbook("deploy.yml", "-e", f"app_version={V4}")
    time.sleep(1)
    b = lab.start_playbook("deploy.yml", "-e", f"app_version={V5}")
    out_a, _ = a.communicate(timeout=900)
    out_b, _ = b.communicate(timeout=900)
    assert a.returncode == 0, out_a[-4000:]
    assert b.returncode == 0, out_b[-4000:]
    records = lab.deployments(first_id)
    assert len(records) == 2 and {r["result"] for r in records} == {"succeeded"}
    first, second = sorted(records, key=lambda r: float(r["started"]))
    assert float(first["finished"]) <= float(second["started"]), f"deploys interleaved: {records}"
    # the second deploy found the first one's colour live and replaced it
    assert second["previous_version"] == first["version"]
    assert live_version() == second["version"]


def test_leave_v1_live(provisioned_lab):
    run = deploy(V1)
    assert run.ok, run
    assert live_version() == V1
