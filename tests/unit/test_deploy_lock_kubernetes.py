"""The deploy lock's Lease store and k8s_rest, against an in-memory stand-in for the API server.

FakeK8s keeps the REST semantics the stores rely on: create refused with 409 when the object
exists, 404 for a missing object or namespace, update refused with 409 when the resourceVersion
moved on, delete preconditions on uid and resourceVersion, label-selected lists with paging.
(tests/integration/kubernetes/test_k8s_lock_and_record.py runs the same stores against a real
kube-apiserver.) test_deploy_record_kubernetes.py imports FakeK8s from here.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils import deploy_lock, k8s_rest

NS = "prod"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/free4allweb-deploy"
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PATH = re.compile(r"^(?P<prefix>/apis?/.+?)/namespaces/(?P<ns>[^/]+)/(?P<kind>[^/]+)(?:/(?P<name>[^/]+))?$")


class FakeK8s:
    """The Kubernetes REST calls the stores make, in memory; thread-safe. `before` hooks run
    ahead of a matching call (to let a rival write first)."""

    def __init__(self, namespaces=(NS,)):
        self.namespaces = set(namespaces)
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.version = 100
        self.calls: list[tuple[str, str]] = []
        self.before: list = []  # callables (method, path) -> None
        self.mutex = threading.RLock()

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    def request(self, method, path, what, *, body=None, query=None, content_type=None, timeout=None):
        for hook in list(self.before):
            hook(method, path)
        with self.mutex:
            self.calls.append((method, path))
            body = copy.deepcopy(body)
            if path == "/api/v1/namespaces" and method == "POST":
                name = body["metadata"]["name"]
                if name in self.namespaces:
                    raise k8s_rest.Conflict(f"{what} exists already (409 Conflict)", 409)
                self.namespaces.add(name)
                return body
            m = PATH.match(path)
            assert m, path
            ns, kind, name = m["ns"], m["kind"], m["name"]
            if method == "GET" and name is None:
                return self._list(kind, ns, dict(query or []))
            if ns not in self.namespaces:
                raise k8s_rest.NotFound(f"{what} not found in namespace {ns}", 404)
            if method == "POST":
                name = body["metadata"]["name"]
                if kind == "leases":
                    self._check_lease(body)
                if (kind, ns, name) in self.objects:
                    raise k8s_rest.Conflict(f"{what} exists already (409 Conflict)", 409)
                meta = body["metadata"]
                meta.update(
                    namespace=ns,
                    uid=str(uuid.uuid4()),
                    resourceVersion=self._bump(),
                    creationTimestamp="2026-12-02T18:00:00Z",
                )
                self.objects[(kind, ns, name)] = body
                return copy.deepcopy(body)
            key = (kind, ns, name)
            if key not in self.objects:
                raise k8s_rest.NotFound(f"{what} not found in namespace {ns}", 404)
            current = self.objects[key]
            if method == "GET":
                return copy.deepcopy(current)
            if method == "PUT":
                if kind == "leases":
                    self._check_lease(body)
                wanted = body["metadata"].get("resourceVersion")
                if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
                    raise k8s_rest.Conflict(f"{what} was changed by someone else meanwhile (409 Conflict)", 409)
                for keep in ("uid", "creationTimestamp"):
                    body["metadata"][keep] = current["metadata"].get(keep)
                body["metadata"].update(namespace=ns, resourceVersion=self._bump())
                self.objects[key] = body
                return copy.deepcopy(body)
            if method == "DELETE":
                pre = (body or {}).get("preconditions") or {}
                for field in ("uid", "resourceVersion"):
                    if pre.get(field) is not None and pre[field] != current["metadata"][field]:
                        raise k8s_rest.Conflict(f"{what}: precondition failed on {field} (409 Conflict)", 409)
                del self.objects[key]
                return {"kind": "Status", "status": "Success"}
            raise AssertionError(f"unexpected call {method} {path}")

    def _list(self, kind, ns, query):
        want = dict(kv.split("=", 1) for kv in query.get("labelSelector", "").split(",") if kv)
        items = [
            copy.deepcopy(o)
            for (k, n, _), o in sorted(self.objects.items())
            if k == kind and n == ns and all(o["metadata"].get("labels", {}).get(a) == b for a, b in want.items())
        ]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {"items": page, "metadata": {"continue": str(start + limit) if more else None}}

    @staticmethod
    def _check_lease(body):
        spec = body["spec"]
        assert isinstance(spec["leaseDurationSeconds"], int) and spec["leaseDurationSeconds"] >= 1, spec
        for field in ("acquireTime", "renewTime"):
            assert MICROTIME.match(spec[field]), spec[field]

    def close(self):
        pass


class Clock:
    """Fake time: sleeping advances it."""

    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def store(api, name="free4allweb-deploy", namespace=NS):
    return deploy_lock.LeaseStore(api, namespace, name)


def test_acquire_writes_the_lease_and_release_deletes_it():
    api = FakeK8s()
    got = deploy_lock.acquire(store(api), "run-1", "alice", "deploy 2.0.0", ttl=600.4)
    assert not got["already_held"] and got["broke"] is None
    lease = api.objects[("leases", NS, "free4allweb-deploy")]
    spec, notes = lease["spec"], lease["metadata"]["annotations"]
    assert spec["holderIdentity"] == "run-1" and spec["leaseDurationSeconds"] == 601
    assert spec["acquireTime"] == spec["renewTime"]
    assert notes["free4allweb.io/owner"] == "alice" and notes["free4allweb.io/purpose"] == "deploy 2.0.0"
    assert notes["free4allweb.io/host"]
    assert lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "free4allweb"}
    info = got["acquired"]
    assert info.token == "run-1" and info.expires_at - info.acquired_at == pytest.approx(601)
    assert deploy_lock.status(store(api)).owner == "alice"
    out = deploy_lock.release(store(api), "run-1")
    assert out["released"] is True and out["holder"].token == "run-1"
    assert ("leases", NS, "free4allweb-deploy") not in api.objects
    assert api.calls[-1][0] == "DELETE"


def test_same_token_reenters_without_writing():
    api = FakeK8s()
    deploy_lock.acquire(store(api), "run-1", "alice")
    writes = sum(1 for m, _ in api.calls if m != "GET")
    again = deploy_lock.acquire(store(api), "run-1", "alice", timeout=0)
    assert again["already_held"] is True
    assert sum(1 for m, _ in api.calls if m != "GET") == writes


def test_busy_message_has_the_file_lock_shape():
    api, clock = FakeK8s(), Clock()
    deploy_lock.acquire(store(api), "run-1", "alice", "deploy 2.0.0", ttl=1800, clock=clock)
    clock.now += 42
    with pytest.raises(deploy_lock.LockBusy) as err:
        deploy_lock.acquire(store(api), "run-2", "bob", timeout=30, clock=clock, sleep=clock.sleep)
    assert re.fullmatch(
        r"deploy lock Lease prod/free4allweb-deploy is held by 'alice' for 'deploy 2.0.0' since "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(72 s ago, expires in 1728 s\); waited 30 s \(timeout 30 s\)",
        str(err.value),
    ), str(err.value)
    # it polled at the store's interval (1 s) and never slept past the deadline
    assert clock.now == pytest.approx(1_800_000_000 + 42 + 30)


def test_waiter_gets_the_lease_when_it_is_released():
    api, clock = FakeK8s(), Clock()
    deploy_lock.acquire(store(api), "run-1", "alice", clock=clock)

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.now >= 1_800_000_005 and deploy_lock.status(store(api)):
            deploy_lock.release(store(api), "run-1")

    got = deploy_lock.acquire(store(api), "run-2", "bob", timeout=60, clock=clock, sleep=sleep)
    assert got["acquired"].token == "run-2" and 5 <= got["waited"] <= 6


def test_expired_lease_is_taken_over_by_a_conditional_update():
    api, clock = FakeK8s(), Clock()
    deploy_lock.acquire(store(api), "dead-run", "alice", ttl=10, clock=clock)
    uid = api.objects[("leases", NS, "free4allweb-deploy")]["metadata"]["uid"]
    clock.now += 11
    got = deploy_lock.acquire(store(api), "run-2", "bob", timeout=0, clock=clock)
    assert got["broke"].token == "dead-run" and got["acquired"].token == "run-2"
    lease = api.objects[("leases", NS, "free4allweb-deploy")]
    assert lease["metadata"]["uid"] == uid  # the same object, updated in place
    assert lease["spec"]["leaseTransitions"] == 1
    assert lease["metadata"]["annotations"]["free4allweb.io/owner"] == "bob"
    assert ("PUT", LEASE) in api.calls


def test_of_two_taking_over_an_expired_lease_one_wins_the_other_waits():
    api, clock = FakeK8s(), Clock()
    deploy_lock.acquire(store(api), "dead-run", "alice", ttl=10, clock=clock)
    clock.now += 11
    rival_done = []

    def rival_first(method, path):
        # carol reads the expired lease too and writes first, between bob's read and his PUT
        if method == "PUT" and not rival_done:
            rival_done.append(True)
            api.before.clear()
            deploy_lock.acquire(store(api), "run-carol", "carol", "rollback", timeout=0, clock=clock)
            api.before.append(rival_first)

    api.before.append(rival_first)
    with pytest.raises(deploy_lock.LockBusy, match=r"held by 'carol' for 'rollback'"):
        deploy_lock.acquire(store(api), "run-bob", "bob", timeout=3, clock=clock, sleep=clock.sleep)
    assert deploy_lock.status(store(api)).token == "run-carol"


def test_create_race_lost_with_409_keeps_waiting():
    api, clock = FakeK8s(), Clock()

    def rival_creates(method, path):
        if method == "POST" and not api.objects:
            api.before.clear()
            deploy_lock.acquire(store(api), "run-carol", "carol", timeout=0, clock=clock)

    api.before.append(rival_creates)
    with pytest.raises(deploy_lock.LockBusy, match="held by 'carol'"):
        deploy_lock.acquire(store(api), "run-bob", "bob", timeout=2, clock=clock, sleep=clock.sleep)


def test_release_by_another_token_is_refused_and_absent_is_a_noop():
    api = FakeK8s()
    deploy_lock.acquire(store(api), "run-1", "alice", "deploy 2.0.0")
    with pytest.raises(deploy_lock.LockNotOwned, match=r"is held by 'alice' for 'deploy 2.0.0'.*not by this run"):
        deploy_lock.release(store(api), "run-2")
    assert deploy_lock.status(store(api)).token == "run-1"
    assert deploy_lock.release(store(api, name="other"), "x") == {"released": False, "holder": None}


def test_release_does_not_delete_a_lease_taken_over_meanwhile():
    api, clock = FakeK8s(), Clock()
    deploy_lock.acquire(store(api), "run-1", "alice", ttl=5, clock=clock)
    clock.now += 6

    def takeover_before_delete(method, path):
        if method == "DELETE":
            api.before.clear()
            deploy_lock.acquire(store(api), "run-2", "bob", timeout=0, clock=clock)

    api.before.append(takeover_before_delete)
    # run-1 read its own (expired) lease, bob took it over, the DELETE's preconditions fail,
    # the re-read shows bob: refused, and bob keeps the lock
    with pytest.raises(deploy_lock.LockNotOwned, match="held by 'bob'"):
        deploy_lock.release(store(api), "run-1")
    assert deploy_lock.status(store(api)).token == "run-2"


def test_missing_namespace_is_created():
    api = FakeK8s(namespaces=())
    s = store(api)
    assert deploy_lock.status(s) is None
    got = deploy_lock.acquire(s, "run-1", "alice")
    assert got["acquired"].token == "run-1" and s.created_namespace
    assert NS in api.namespaces
    ns_call = api.calls.index(("POST", "/api/v1/namespaces"))
    assert api.calls[ns_call - 1][0] == "POST" and api.calls[ns_call + 1][0] == "POST"


def test_a_lease_without_holder_is_free_and_taken_by_update():
    api = FakeK8s()
    api.objects[("leases", NS, "free4allweb-deploy")] = {
        "metadata": {"name": "free4allweb-deploy", "uid": "u1", "resourceVersion": "5", "labels": {"team": "x"}},
        "spec": {"leaseDurationSeconds": 15},
    }
    got = deploy_lock.acquire(store(api), "run-1", "alice", timeout=0)
    assert got["acquired"].token == "run-1" and got["broke"] is None
    lease = api.objects[("leases", NS, "free4allweb-deploy")]
    assert lease["metadata"]["labels"]["team"] == "x"  # someone else's labels are kept


def test_foreign_lease_without_annotations_still_reads():
    info = deploy_lock.lease_info(
        {
            "metadata": {},
            "spec": {
                "holderIdentity": "kube-controller-manager_1",
                "leaseDurationSeconds": 15,
                "acquireTime": "2026-12-02T18:00:00.000000Z",
                "renewTime": "2026-12-02T18:00:10.500000Z",
            },
        }
    )
    assert (info.owner, info.purpose, info.host) == ("unknown", "?", "?")
    assert info.expires_at - info.acquired_at == pytest.approx(25.5)


def test_microtime_round_trip():
    t = 1_795_900_000.123456
    text = deploy_lock.format_microtime(t)
    assert MICROTIME.match(text)
    assert deploy_lock.parse_time(text) == pytest.approx(t, abs=1e-6)
    assert deploy_lock.parse_time("2026-12-02T18:00:00Z") == deploy_lock.parse_time("2026-12-02T19:00:00+01:00")
    assert deploy_lock.parse_time("yesterday") is None


def test_api_errors_become_lock_errors():
    class Down(FakeK8s):
        def request(self, method, path, what, **kw):
            raise k8s_rest.K8sError(f"{what}: cannot reach the Kubernetes API: connection refused")

    with pytest.raises(deploy_lock.LockError, match="cannot reach the Kubernetes API"):
        deploy_lock.acquire(store(Down()), "run-1", "alice", timeout=0)


def _contend(api, token, hold, log):
    got = deploy_lock.acquire(store(api), token, token, timeout=30, poll=0.005)
    log.append(("in", token, time.monotonic()))
    time.sleep(hold)
    log.append(("out", token, time.monotonic()))
    deploy_lock.release(store(api), got["acquired"].token)


def test_contending_threads_never_overlap():
    api, log = FakeK8s(), []
    # widen every window between a read and a write, so the swaps really race
    api.before.append(lambda method, path: time.sleep(0.001))
    threads = [threading.Thread(target=_contend, args=(api, f"run-{i}", 0.02, log)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    holder = None
    for kind, token, _ in sorted(log, key=lambda e: e[2]):
        if kind == "in":
            assert holder is None, f"{token} entered while {holder} held the lock"
            holder = token
        else:
            assert holder == token
            holder = None
    assert {t for k, t, _ in log if k == "in"} == {f"run-{i}" for i in range(6)}
    assert not api.objects


# -- k8s_rest.Client over a stand-in ApiClient ---------------------------------------------
class Response:
    def __init__(self, status, body):
        self.status = status
        self.data = json.dumps(body).encode() if isinstance(body, dict) else body

    def read(self):
        return self.data


class FakeApiClient:
    def __init__(self, status=200, body=None, error=None):
        self.status, self.body, self.error = status, body if body is not None else {}, error
        self.seen = []

    def param_serialize(self, *, method, resource_path, query_params, header_params, body, auth_settings):
        return method, "https://k8s" + resource_path, header_params, body, []

    def call_api(self, method, url, header_params=None, body=None, _request_timeout=None):
        self.seen.append((method, url, header_params, body, _request_timeout))
        if self.error:
            raise self.error
        return Response(self.status, self.body)

    def close(self):
        pass


def test_client_passes_a_timeout_and_maps_statuses():
    ok = FakeApiClient(body={"kind": "Lease"})
    client = k8s_rest.Client(ok, timeout=7)
    assert client.request("GET", LEASE, "Lease x") == {"kind": "Lease"}
    assert ok.seen[-1][-1] == 7
    client.request("PUT", LEASE, "Lease x", body={"a": 1}, timeout=2)
    assert ok.seen[-1][-1] == 2 and ok.seen[-1][2]["Content-Type"] == "application/json"

    with pytest.raises(k8s_rest.NotFound, match=r"^Lease x not found in namespace prod$"):
        k8s_rest.Client(FakeApiClient(404, {"message": "nope"})).request("GET", LEASE, "Lease x")
    with pytest.raises(k8s_rest.Conflict, match="exists already"):
        k8s_rest.Client(FakeApiClient(409, {})).request("POST", LEASE, "Lease x", body={})
    with pytest.raises(k8s_rest.Conflict, match=r"was changed by someone else meanwhile \(409 Conflict\)"):
        k8s_rest.Client(FakeApiClient(409, {})).request("PUT", LEASE, "Lease x", body={})
    with pytest.raises(k8s_rest.K8sError, match="Lease x: 403 leases is forbidden") as err:
        k8s_rest.Client(FakeApiClient(403, {"message": "leases is forbidden"})).request("GET", LEASE, "Lease x")
    assert err.value.status == 403
    with pytest.raises(k8s_rest.K8sError, match="cannot reach the Kubernetes API: timed out"):
        k8s_rest.Client(FakeApiClient(error=TimeoutError("timed out"))).request("GET", LEASE, "Lease x")
