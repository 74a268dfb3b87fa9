"""The deployment record's Kubernetes store (one ConfigMap per deployment), against FakeK8s.

The same flow as test_deploy_record.py's PostgreSQL tests, and the same shapes: the fields of a
`deployments` row and of `deployment_steps` rows.
"""

from __future__ import annotations

import json

import pytest
from test_deploy_lock_kubernetes import FakeK8s

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_record, k8s_rest

NS = "prod"
CM = f"/api/v1/namespaces/{NS}/configmaps"


class Ticker:
    """A clock stuck in one millisecond unless moved: ids clash."""

    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def store(api=None, clock=None):
    return deploy_record.ConfigMapStore(api or FakeK8s(), NS, **({"clock": clock} if clock else {}))


def open_one(s, version="2.0.0", environment="production", **kw):
    return s.start(
        environment=environment,
        platform="kubernetes",
        kind=kw.pop("kind", "deploy"),
        version=version,
        operator="alice",
        **kw,
    )


def test_a_deploy_is_recorded_from_start_to_finish():
    api = FakeK8s()
    s = store(api)
    d = open_one(
        s, previous_version="1.0.0", from_colour="blue", to_colour="green", strategy="blue_green", commit="3f2c1e9"
    )
    assert set(d) == set(deploy_record.FIELDS)
    assert d["result"] == "running" and d["finished_at"] is None and d["commit"] == "3f2c1e9"
    assert isinstance(d["id"], int) and d["id"] > 0
    cm = api.objects[("configmaps", NS, f"free4allweb-record-{d['id']}")]
    assert cm["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "free4allweb",
        "free4allweb.io/record": "deployment",
        "free4allweb.io/environment": "production",
        "free4allweb.io/kind": "deploy",
        "free4allweb.io/result": "running",
    }
    assert json.loads(cm["data"]["deployment.json"]) == d and json.loads(cm["data"]["steps.json"]) == []

    s1 = s.add_step(d["id"], "health_gate", "ok", {"checks": 3})
    s2 = s.add_step(d["id"], "switch", "ok", {"apply_seconds": 0.002})
    assert set(s1) == set(deploy_record.STEP_FIELDS)
    assert (s1["id"], s2["id"], s2["deployment_id"]) == (1, 2, d["id"])

    done = s.finish(d["id"], "succeeded", "green serves 2.0.0", {"duration_s": 31.5})
    assert done["changed"] is True
    f = done["deployment"]
    assert (f["result"], f["message"], f["details"]) == ("succeeded", "green serves 2.0.0", {"duration_s": 31.5})
    assert f["finished_at"] >= f["started_at"]
    again = s.finish(d["id"], "succeeded", "green serves 2.0.0")
    assert again["changed"] is False and again["deployment"] == f
    cm = api.objects[("configmaps", NS, f"free4allweb-record-{d['id']}")]
    assert cm["metadata"]["labels"]["free4allweb.io/result"] == "succeeded"
    steps = s.steps(d["id"])
    assert [(x["step"], x["result"], x["details"]) for x in steps] == [
        ("health_gate", "ok", {"checks": 3}),
        ("switch", "ok", {"apply_seconds": 0.002}),
    ]


def test_details_merge_on_finish():
    s = store()
    d = open_one(s, details={"strategy_detail": "x", "n": 1})
    f = s.finish(d["id"], "failed", "gate failed", {"n": 2})["deployment"]
    assert f["details"] == {"strategy_detail": "x", "n": 2}


def test_latest_finds_the_newest_of_an_environment_across_pages():
    api = FakeK8s()
    clock = Ticker()
    s = store(api, clock)
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        clock.now += 1
        d = open_one(s, version=v, environment="local")
        s.finish(d["id"], "succeeded")
    clock.now += 1
    open_one(s, version="9.0.0", environment="staging")
    assert s.latest("local")["version"] == "3.0.0"
    assert s.latest("local", kind="rollback") is None
    assert s.latest("local", result="succeeded")["version"] == "3.0.0"
    assert s.latest("staging")["version"] == "9.0.0"
    assert s.latest("nowhere") is None

    # paging: the list answers two items a time, latest still sees them all
    real = api._list
    api._list = lambda kind, ns, query: real(kind, ns, {**query, "limit": "2"})
    assert s.latest("local")["version"] == "3.0.0"


def test_ids_clash_in_one_millisecond_and_the_next_is_taken():
    api, clock = FakeK8s(), Ticker()
    s = store(api, clock)
    a, b = open_one(s), open_one(s)
    assert b["id"] == a["id"] + 1
    assert a["id"] == int(clock.now * 1000)


def test_conflicting_update_is_retried_and_nothing_is_lost():
    api = FakeK8s()
    s = store(api)
    d = open_one(s)
    rival = store(api)
    fired = []

    def rival_writes_between_read_and_put(method, path):
        if method == "PUT" and not fired:
            fired.append(True)
            api.before.clear()
            rival.add_step(d["id"], "rival", "ok")

    api.before.append(rival_writes_between_read_and_put)
    mine = s.add_step(d["id"], "mine", "ok")
    assert mine["id"] == 2  # re-read after the 409: the rival's step is kept, mine follows it
    assert [x["step"] for x in s.steps(d["id"])] == ["rival", "mine"]


def test_an_update_that_keeps_conflicting_gives_up_clearly():
    api = FakeK8s()
    s = store(api)
    d = open_one(s)

    def always_conflict(method, path):
        if method == "PUT":
            raise k8s_rest.Conflict("ConfigMap x was changed by someone else meanwhile (409 Conflict)", 409)

    api.before.append(always_conflict)
    with pytest.raises(deploy_record.RecordError, match="kept changing"):
        s.add_step(d["id"], "x", "ok")


def test_missing_namespace_is_created_on_the_first_record():
    api = FakeK8s(namespaces=())
    s = store(api)
    assert s.latest("production") is None
    d = open_one(s)
    assert s.created_namespace and NS in api.namespaces
    assert s.get(d["id"])["version"] == "2.0.0"


@pytest.mark.parametrize("result", ["running", "maybe"])
def test_bad_results_are_refused(result):
    s = store()
    d = open_one(s)
    with pytest.raises(deploy_record.RecordError):
        s.finish(d["id"], result)


def test_unknown_kind_id_and_bad_environment_are_refused():
    s = store()
    with pytest.raises(deploy_record.RecordError, match="kind"):
        open_one(s, kind="upgrade")
    with pytest.raises(deploy_record.RecordError, match="no deployment"):
        s.finish(424242, "failed")
    with pytest.raises(deploy_record.RecordError, match="no deployment"):
        s.add_step(424242, "x", "ok")
    with pytest.raises(deploy_record.RecordError, match="label value"):
        open_one(s, environment="prod env!")


def test_api_errors_become_record_errors():
    class Down(FakeK8s):
        def request(self, method, path, what, **kw):
            raise k8s_rest.K8sError(f"{what}: 403 configmaps is forbidden", 403)

    with pytest.raises(deploy_record.RecordError, match=r"deployment record: .*403 configmaps is forbidden"):
        open_one(store(Down()))
