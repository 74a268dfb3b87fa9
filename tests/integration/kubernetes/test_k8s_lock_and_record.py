"""The deploy lock as a Lease and the deployment record as ConfigMaps, against the real API server.

The modules run as their own processes (the way Ansible runs them: a JSON argument file), so two
of them really race at the API server; the record's flow and check mode run through
ansible-playbook. Each test has a namespace of its own that does not exist beforehand: the
first lock or record creates it.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_lock, deploy_record, k8s_rest

ROOT = Path(__file__).resolve().parents[3]
LEASE = "free4allweb-deploy"


def lease_path(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"


def get(k8s, path: str):
    """An object as a dict, or None when absent (through k8s_rest, as the modules read it)."""
    try:
        return k8s_rest.Client(k8s.api).request("GET", path, path)
    except k8s_rest.NotFound:
        return None


def start_module(k8s, tmp_path: Path, module: str, args: dict, *, check: bool = False) -> subprocess.Popen:
    """Start a module as Ansible would run it on the controller: python, a JSON argument file."""
    args = {**args, "_ansible_check_mode": check}
    argfile = tmp_path / f"args-{time.monotonic_ns()}.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = {**k8s.env(), "PYTHONPATH": str(ROOT / "collections")}
    return subprocess.Popen(
        [sys.executable, "-m", f"ansible_collections.free4allweb.devops.plugins.modules.{module}", str(argfile)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"module printed no JSON (rc {proc.returncode}): {out}\n{err}") from None


def lock(k8s, tmp_path, namespace, *, check=False, **args) -> dict:
    opts = {"namespace": namespace, "kubeconfig": str(k8s.kubeconfig), "request_timeout": 10}
    return result(
        start_module(k8s, tmp_path, "deploy_lock", {"backend": "kubernetes", "options": opts, **args}, check=check)
    )


def busy_message(namespace: str, owner: str, purpose: str, timeout: int) -> re.Pattern:
    return re.compile(
        rf"^deploy lock Lease {namespace}/{LEASE} is held by '{owner}' for '{purpose}' since "
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+ s ago, expires in \d+ s\); "
        rf"waited \d+ s \(timeout {timeout} s\)$"
    )


def test_two_runs_race_for_the_lease_exactly_one_wins(k8s_cluster, namespace, tmp_path):
    k8s = k8s_cluster
    opts = {"namespace": namespace, "kubeconfig": str(k8s.kubeconfig)}
    runs = {
        "alice": {"token": "run-alice", "owner": "alice", "purpose": "deploy 2.0.0"},
        "bob": {"token": "run-bob", "owner": "bob", "purpose": "rollback"},
    }
    procs = {
        who: start_module(k8s, tmp_path, "deploy_lock", {"backend": "kubernetes", "options": opts, "timeout": 2, **a})
        for who, a in runs.items()
    }
    out = {who: result(p) for who, p in procs.items()}
    winners = [who for who, r in out.items() if not r.get("failed")]
    assert len(winners) == 1, out
    winner, loser = winners[0], next(w for w in runs if w not in winners)
    # the loser's error names the holder, in the file lock's shape
    assert busy_message(namespace, winner, runs[winner]["purpose"], 2).match(out[loser]["msg"]), out[loser]
    assert out[winner]["holder"]["token"] == runs[winner]["token"]
    assert out[winner]["lock"] == f"Lease {namespace}/{LEASE}"

    lease = get(k8s, lease_path(namespace))
    spec, notes = lease["spec"], lease["metadata"]["annotations"]
    assert spec["holderIdentity"] == runs[winner]["token"]
    assert spec["leaseDurationSeconds"] == 1800
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", spec["acquireTime"]), spec
    assert notes["free4allweb.io/owner"] == winner and notes["free4allweb.io/purpose"] == runs[winner]["purpose"]
    assert notes["free4allweb.io/host"]
    # the namespace did not exist: the lock created it
    ns = get(k8s, f"/api/v1/namespaces/{namespace}")
    assert ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "free4allweb"

    # the loser cannot release it; the holder can; releasing it again is a no-op
    refused = lock(k8s, tmp_path, namespace, state="released", token=runs[loser]["token"])
    assert refused.get("failed") and "not by this run; left in place" in refused["msg"], refused
    assert f"held by '{winner}'" in refused["msg"]
    assert get(k8s, lease_path(namespace))["spec"]["holderIdentity"] == runs[winner]["token"]
    released = lock(k8s, tmp_path, namespace, state="released", token=runs[winner]["token"])
    assert released["released"] is True and not released.get("failed"), released
    assert get(k8s, lease_path(namespace)) is None
    again = lock(k8s, tmp_path, namespace, state="released", token=runs[winner]["token"])
    assert again["released"] is False and not again.get("failed"), again


def _race(kubeconfig, namespace, token, barrier, results):
    store = deploy_lock.LeaseStore(k8s_rest.Client(kubeconfig=kubeconfig), namespace)
    store.read()  # connect first, so the race is on the writes
    barrier.wait(30)
    try:
        got = deploy_lock.acquire(store, token, token, "race", timeout=0)
        results.put((token, "won", got["acquired"].token))
    except deploy_lock.LockBusy as exc:
        results.put((token, "busy", str(exc)))


def test_processes_released_together_at_the_api_exactly_one_wins(k8s_cluster, namespace):
    k8s = k8s_cluster
    k8s_rest.ensure_namespace(k8s_rest.Client(k8s.api), namespace)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(str(k8s.kubeconfig), namespace, f"run-{i}", barrier, results)) for i in range(4)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    won = [token for token, what, _ in out if what == "won"]
    assert len(won) == 1, out
    for _token, what, msg in out:
        if what == "busy":
            assert f"held by '{won[0]}' for 'race'" in msg, msg
    assert get(k8s, lease_path(namespace))["spec"]["holderIdentity"] == won[0]


def test_an_expired_lease_is_taken_over(k8s_cluster, namespace, tmp_path):
    k8s = k8s_cluster
    dead = lock(k8s, tmp_path, namespace, token="run-dead", owner="alice", purpose="deploy 1.0.0", ttl=1)
    assert not dead.get("failed"), dead
    before = get(k8s, lease_path(namespace))
    assert before["spec"]["leaseDurationSeconds"] == 1
    time.sleep(2.2)
    took = lock(k8s, tmp_path, namespace, token="run-new", owner="bob", purpose="deploy 2.0.0", timeout=0)
    assert not took.get("failed"), took
    assert took["broke_expired"]["token"] == "run-dead" and took["broke_expired"]["owner"] == "alice"
    after = get(k8s, lease_path(namespace))
    assert after["spec"]["holderIdentity"] == "run-new" and after["spec"]["leaseTransitions"] == 1
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # updated in place, by resourceVersion
    assert after["metadata"]["annotations"]["free4allweb.io/owner"] == "bob"
    # the same token again: re-entrant, at once
    again = lock(k8s, tmp_path, namespace, token="run-new", owner="bob", timeout=0)
    assert not again.get("failed") and again["holder"]["token"] == "run-new", again


def test_bad_options_are_named(k8s_cluster, namespace, tmp_path):
    k8s = k8s_cluster
    bad = result(
        start_module(
            k8s, tmp_path, "deploy_lock", {"backend": "kubernetes", "options": {"namespce": namespace}, "token": "x"}
        )
    )
    assert bad.get("failed") and "unknown options.namespce" in bad["msg"], bad
    missing = result(
        start_module(k8s, tmp_path, "deploy_record", {"store": "kubernetes", "state": "latest", "environment": "x"})
    )
    assert missing.get("failed") and "store_options.namespace" in missing["msg"], missing


def playbook(k8s, tmp_path: Path, tasks: list, *, check: bool = False) -> subprocess.CompletedProcess:
    path = tmp_path / f"play-{time.monotonic_ns()}.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(path),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]
    if check:
        cmd.append("--check")
    return subprocess.run(cmd, cwd=ROOT, env=k8s.env(), capture_output=True, text=True, timeout=300, check=False)


def save(tmp_path: Path, expr: str) -> dict:
    """A task writing `expr` as JSON to out.json (in check mode too)."""
    return {
        "ansible.builtin.copy": {"content": "{{ " + expr + " | to_json }}", "dest": str(tmp_path / "out.json")},
        "check_mode": False,
    }


def test_check_mode_acquires_nothing(k8s_cluster, namespace, tmp_path):
    k8s = k8s_cluster
    args = {
        "backend": "kubernetes",
        "options": {"namespace": namespace, "kubeconfig": str(k8s.kubeconfig)},
        "token": "run-check",
        "owner": "carol",
    }
    run = playbook(
        k8s,
        tmp_path,
        [
            {"free4allweb.devops.deploy_lock": args, "register": "took"},
            {"free4allweb.devops.deploy_lock": {**args, "state": "released"}, "register": "gave"},
            save(tmp_path, "{'took': took, 'gave': gave}"),
        ],
        check=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["took"]["free"] is True and out["took"]["holder"] is None and out["took"]["changed"] is False
    assert out["gave"]["released"] is False
    # nothing was written: no Lease, not even the namespace
    assert get(k8s, f"/api/v1/namespaces/{namespace}") is None

    # held by someone else, check mode says so and still writes nothing
    held = lock(k8s, tmp_path, namespace, token="run-alice", owner="alice", purpose="deploy 2.0.0")
    assert not held.get("failed"), held
    version = get(k8s, lease_path(namespace))["metadata"]["resourceVersion"]
    peek = lock(k8s, tmp_path, namespace, check=True, token="run-check", owner="carol")
    assert peek["free"] is False and peek["holder"]["owner"] == "alice", peek
    gone = lock(k8s, tmp_path, namespace, check=True, state="released", token="run-alice")
    assert gone["released"] is True, gone
    assert get(k8s, lease_path(namespace))["metadata"]["resourceVersion"] == version


def test_a_deploy_is_recorded_in_configmaps_and_read_back(k8s_cluster, namespace, tmp_path):
    k8s = k8s_cluster
    common = {
        "store": "kubernetes",
        "store_options": {"namespace": namespace, "kubeconfig": str(k8s.kubeconfig)},
    }
    run = playbook(
        k8s,
        tmp_path,
        [
            {
                "free4allweb.devops.deploy_record": {
                    **common,
                    "state": "started",
                    "environment": "production",
                    "platform": "kubernetes",
                    "strategy": "blue_green",
                    "version": "2.0.0",
                    "previous_version": "1.0.0",
                    "from_colour": "blue",
                    "to_colour": "green",
                    "operator": "alice",
                    "run_id": "run-42",
                    "commit": "3f2c1e9",
                },
                "register": "opened",
            },
            {
                "free4allweb.devops.deploy_record": {
                    **common,
                    "state": "step",
                    "id": "{{ opened.deployment.id }}",
                    "step": "health_gate",
                    "result": "ok",
                    "details": {"checks": 3},
                },
                "register": "step1",
            },
            {
                "free4allweb.devops.deploy_record": {
                    **common,
                    "state": "step",
                    "id": "{{ opened.deployment.id }}",
                    "step": "switch",
                    "result": "ok",
                    "details": {"apply_seconds": 0.02},
                },
            },
            {
                "free4allweb.devops.deploy_record": {
                    **common,
                    "state": "finished",
                    "id": "{{ opened.deployment.id }}",
                    "result": "succeeded",
                    "summary": "green serves 2.0.0",
                    "details": {"duration_s": 31.5},
                },
                "register": "closed",
            },
            {
                "free4allweb.devops.deploy_record": {**common, "state": "latest", "environment": "production"},
                "register": "newest",
            },
            save(tmp_path, "{'opened': opened, 'step1': step1, 'closed': closed, 'newest': newest}"),
        ],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    opened, newest = out["opened"]["deployment"], out["newest"]["deployment"]
    assert out["opened"]["changed"] and out["opened"]["namespace_created"] is True
    assert opened["result"] == "running" and opened["commit"] == "3f2c1e9"
    assert out["step1"]["step"]["id"] == 1 and out["step1"]["step"]["deployment_id"] == opened["id"]
    assert out["closed"]["changed"] is True
    assert newest["id"] == opened["id"]
    assert (newest["result"], newest["message"], newest["details"]) == (
        "succeeded",
        "green serves 2.0.0",
        {"duration_s": 31.5},
    )
    assert (newest["version"], newest["previous_version"], newest["operator"], newest["commit"]) == (
        "2.0.0",
        "1.0.0",
        "alice",
        "3f2c1e9",
    )
    assert newest["finished_at"] >= newest["started_at"]
    assert [(s["step"], s["result"]) for s in out["newest"]["steps"]] == [("health_gate", "ok"), ("switch", "ok")]

    cm = get(k8s, f"/api/v1/namespaces/{namespace}/configmaps/free4allweb-record-{opened['id']}")
    assert cm["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "free4allweb",
        "free4allweb.io/record": "deployment",
        "free4allweb.io/environment": "production",
        "free4allweb.io/kind": "deploy",
        "free4allweb.io/result": "succeeded",
    }
    assert json.loads(cm["data"]["deployment.json"]) == newest
    assert [s["step"] for s in json.loads(cm["data"]["steps.json"])] == ["health_gate", "switch"]


def test_concurrent_steps_are_all_kept(k8s_cluster, namespace):
    """Steps written at once by several clients: the resourceVersion retries keep every one."""
    k8s, n = k8s_cluster, 3
    store = deploy_record.ConfigMapStore(k8s_rest.Client(k8s.api), namespace)
    d = store.start(environment="staging", platform="kubernetes", kind="deploy", version="1", operator="a")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)

    def add(i):
        s = deploy_record.ConfigMapStore(k8s_rest.Client(kubeconfig=str(k8s.kubeconfig)), namespace)
        s.attempts = 20
        barrier.wait(30)
        s.add_step(d["id"], f"step-{i}", "ok")

    procs = [ctx.Process(target=add, args=(i,)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    steps = store.steps(d["id"])
    assert sorted(s["step"] for s in steps) == [f"step-{i}" for i in range(n)]
    assert sorted(s["id"] for s in steps) == list(range(1, n + 1))
