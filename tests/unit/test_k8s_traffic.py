"""The kubernetes traffic backend's logic, against an in-memory stand-in for the API.

(tests/integration/kubernetes drives the same class through the traffic module against a real
kube-apiserver.)"""

from __future__ import annotations

import copy

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic import BACKENDS
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import TrafficError
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.kubernetes import (
    ServiceRoute,
    pod_member,
    route_weights,
    set_route_weights,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.shift import shift_traffic

BACKENDS_BY_COLOUR = {"blue": "app-blue", "green": "app-green"}


def route(blue=100, green=0, **extra_ref):
    return {
        "metadata": {"name": "app", "resourceVersion": "7"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "app-blue", "port": 80, "weight": blue},
                        {"name": "app-green", "port": 80, "weight": green},
                        *([extra_ref] if extra_ref else []),
                    ]
                }
            ]
        },
    }


def pod(name, colour, ready=True, deleting=False):
    meta = {"name": name, "labels": {"app.kubernetes.io/name": "app", "colour": colour}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        cond["message"] = "readiness probe failed"
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {"phase": "Running", "conditions": [cond]}}


class FakeAPI:
    """The Kubernetes API paths the backend uses, in memory (stands in for ServiceRoute.request)."""

    SERVICE = "/api/v1/namespaces/ns/services/app"
    ROUTE = "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/app"
    PODS = "/api/v1/namespaces/ns/pods"

    def __init__(self, selector_colour="blue", with_route=True, pods=()):
        self.service = {"spec": {"selector": {"app.kubernetes.io/name": "app", "colour": selector_colour}}}
        self.route = route() if with_route else None
        self.pods = list(pods)
        self.calls = []

    def request(self, method, path, what, *, body=None, query=None, content_type=None):
        if (method, path) == ("GET", self.SERVICE):
            return copy.deepcopy(self.service)
        if (method, path) == ("PATCH", self.SERVICE):
            assert content_type == "application/merge-patch+json"
            self.calls.append(("patch_service", body))
            self.service["spec"]["selector"].update(body["spec"]["selector"])
            return self.service
        if (method, path) == ("GET", self.PODS):
            want = dict(kv.split("=") for kv in dict(query)["labelSelector"].split(","))
            items = [p for p in self.pods if all(p["metadata"]["labels"].get(k) == v for k, v in want.items())]
            return {"items": items}
        if path == self.ROUTE and self.route is None:
            raise TrafficError(f"{what} not found in namespace ns")
        if (method, path) == ("GET", self.ROUTE):
            return copy.deepcopy(self.route)
        if (method, path) == ("PUT", self.ROUTE):
            if body["metadata"]["resourceVersion"] != self.route["metadata"]["resourceVersion"]:
                raise TrafficError(f"{what} was changed by someone else meanwhile (409 Conflict)")
            self.calls.append(("replace_route", copy.deepcopy(body)))
            self.route = copy.deepcopy(body)
            self.route["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
            return self.route
        raise AssertionError(f"unexpected call {method} {path}")

    def close(self):
        pass


def backend(api, route_name="app"):
    b = ServiceRoute(namespace="ns", service="app", route=route_name, api_client=api)
    b.request = api.request
    return b


def test_registered_under_its_name():
    assert BACKENDS["kubernetes"] is ServiceRoute


def test_route_weights_and_foreign_backends():
    assert route_weights(route(95, 5), BACKENDS_BY_COLOUR) == {"blue": 95, "green": 5}
    with pytest.raises(TrafficError, match="neither colour"):
        route_weights(route(50, 50, name="other", weight=1), BACKENDS_BY_COLOUR)
    missing_weight = route()
    del missing_weight["spec"]["rules"][0]["backendRefs"][1]["weight"]
    assert route_weights(missing_weight, BACKENDS_BY_COLOUR) == {"blue": 100, "green": 1}


def test_set_route_weights_lists_both_colours():
    r = route()
    r["spec"]["rules"][0]["backendRefs"] = [{"name": "app-blue", "port": 80, "weight": 100}]
    out = set_route_weights(r, {"blue": 0, "green": 100}, BACKENDS_BY_COLOUR)
    assert out["spec"]["rules"][0]["backendRefs"] == [
        {"name": "app-blue", "port": 80, "weight": 0},
        {"name": "app-green", "port": 80, "weight": 100},
    ]


def test_pod_member_health():
    assert pod_member(pod("a", "blue"), "blue").healthy
    sick = pod_member(pod("b", "blue", ready=False), "blue")
    assert not sick.healthy and sick.detail == "readiness probe failed"
    leaving = pod_member(pod("c", "blue", deleting=True), "blue")
    assert not leaving.healthy and leaving.detail == "terminating"


def test_read_gives_route_weights_and_members():
    api = FakeAPI(pods=[pod("b1", "blue"), pod("g1", "green", ready=False)])
    state = backend(api).read()
    assert state.weights == {"blue": 100, "green": 0}
    assert state.live_colour == "blue"
    assert [(m.name, m.colour, m.healthy) for m in state.members] == [("b1", "blue", True), ("g1", "green", False)]


def test_canary_step_moves_weights_but_not_the_selector():
    api = FakeAPI(pods=[pod("b1", "blue"), pod("g1", "green")])
    result = shift_traffic(backend(api), {"blue": 90, "green": 10})
    assert result["changed"] and result["after"]["weights"] == {"blue": 90, "green": 10}
    assert api.service["spec"]["selector"]["colour"] == "blue"
    assert [c[0] for c in api.calls] == ["replace_route"]


def test_full_switch_moves_route_then_selector():
    api = FakeAPI(pods=[pod("b1", "blue"), pod("g1", "green")])
    result = shift_traffic(backend(api), {"blue": 0, "green": 100})
    assert result["live_colour"] == "green"
    assert [c[0] for c in api.calls] == ["replace_route", "patch_service"]
    assert api.service["spec"]["selector"]["colour"] == "green"
    # again: nothing to do, no API writes
    api.calls.clear()
    assert not shift_traffic(backend(api), {"blue": 0, "green": 100})["changed"]
    assert api.calls == []


def test_refuses_a_colour_whose_pods_are_not_ready():
    api = FakeAPI(pods=[pod("b1", "blue"), pod("g1", "green", ready=False)])
    with pytest.raises(TrafficError, match="readiness probe failed"):
        shift_traffic(backend(api), {"blue": 0, "green": 100})
    assert api.calls == [] and api.service["spec"]["selector"]["colour"] == "blue"


def test_without_a_route_only_all_or_nothing():
    api = FakeAPI(with_route=False, pods=[pod("b1", "blue"), pod("g1", "green")])
    b = backend(api, route_name=None)
    assert b.read().weights == {"blue": 100, "green": 0}
    with pytest.raises(TrafficError, match="needs an HTTPRoute"):
        b.apply({"blue": 50, "green": 50})
    shift_traffic(b, {"blue": 0, "green": 100})
    assert api.service["spec"]["selector"]["colour"] == "green"


def test_a_selector_out_of_line_with_the_route_is_repaired():
    api = FakeAPI(selector_colour="green", pods=[pod("b1", "blue"), pod("g1", "green")])
    result = shift_traffic(backend(api), {"blue": 100, "green": 0})
    assert result["changed"]
    assert api.service["spec"]["selector"]["colour"] == "blue"


def test_a_concurrent_route_change_is_not_overwritten():
    api = FakeAPI(pods=[pod("b1", "blue"), pod("g1", "green")])
    real = api.request

    def someone_else_writes_after_each_read(method, path, what, **kw):
        out = real(method, path, what, **kw)
        if (method, path) == ("GET", FakeAPI.ROUTE):
            api.route["metadata"]["resourceVersion"] = "99"
        return out

    b = backend(api)
    b.request = someone_else_writes_after_each_read
    with pytest.raises(TrafficError, match="409"):
        b.apply({"blue": 0, "green": 100})
    assert api.calls == [] and api.route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100


def test_missing_route_is_a_clear_error():
    api = FakeAPI(with_route=False)
    with pytest.raises(TrafficError, match="HTTPRoute app not found in namespace ns"):
        backend(api).read()
