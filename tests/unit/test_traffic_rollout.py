"""What the rollout asks the router: the live, idle and rollback colour, and routers that move
together (the ALB and the EKS Service on production)."""

from __future__ import annotations

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic import build_backend
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    Member,
    TrafficBackend,
    TrafficError,
    TrafficState,
    all_to,
    other_colour,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.composite import Composite
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.shift import shift_traffic


@pytest.mark.parametrize(
    ("weights", "tie", "live", "idle", "rollback"),
    [
        ({"blue": 100, "green": 0}, None, "blue", "green", "green"),
        ({"blue": 0, "green": 100}, None, "green", "blue", "blue"),
        # an interrupted canary: the release goes nowhere new; a rollback returns to the baseline
        ({"blue": 95, "green": 5}, None, "blue", "green", "blue"),
        ({"blue": 25, "green": 75}, None, "green", "blue", "green"),
        # an even split: the router's own word (a Service selector) breaks the tie
        ({"blue": 50, "green": 50}, "green", None, "blue", "green"),
        ({"blue": 50, "green": 50}, None, None, "green", None),
        # a router that never served (no Service yet): the first release goes to blue
        ({"blue": 0, "green": 0}, None, None, "blue", None),
        ({}, None, None, "blue", None),
    ],
)
def test_live_idle_and_rollback_colour(weights, tie, live, idle, rollback):
    state = TrafficState(weights=weights, tie_breaker=tie)
    assert (state.live_colour, state.idle_colour, state.rollback_colour) == (live, idle, rollback)
    shown = state.as_dict()
    assert (shown["idle_colour"], shown["rollback_colour"]) == (idle, rollback)


def test_other_colour_and_all_to():
    assert other_colour("blue") == "green" and other_colour("green") == "blue"
    assert all_to("green") == {"blue": 0, "green": 100}
    with pytest.raises(TrafficError, match="unknown colour 'red'"):
        all_to("red")


class Router(TrafficBackend):
    """An in-memory router; `can_split=False` behaves as a Service selector without an HTTPRoute."""

    name = "memory"

    def __init__(self, weights, *, can_split=True, healthy=("blue", "green"), calls=None, label="r"):
        self.weights = dict(weights)
        self.can_split = can_split
        self.healthy_colours = set(healthy)
        self.calls = calls if calls is not None else []
        self.label = label

    def read(self):
        members = [Member(f"{self.label}-{c}", c, healthy=c in self.healthy_colours) for c in ("blue", "green")]
        # a selector (no split) names its colour, as the kubernetes backend's tie breaker
        tie = None if self.can_split else TrafficState(dict(self.weights)).live_colour
        return TrafficState(dict(self.weights), members, tie_breaker=tie)

    def apply(self, weights):
        if not self.can_split and sum(1 for w in {**self.weights, **weights}.values() if w > 0) > 1:
            raise TrafficError("a selector cannot split")
        self.calls.append((self.label, dict(weights)))
        self.weights.update(weights)


def production(lead_weights=None, follower_weights=None, **follower):
    calls: list = []
    alb = Router(lead_weights or {"blue": 100, "green": 0}, calls=calls, label="alb")
    svc = Router(follower_weights or {"blue": 100, "green": 0}, can_split=False, calls=calls, label="svc", **follower)
    return Composite(routers=None, backends=[alb, svc]), alb, svc, calls


def test_canary_steps_move_the_lead_and_the_follower_only_when_the_majority_changes():
    router, alb, svc, calls = production()
    for step in (5, 25, 50):
        shift_traffic(router, {"blue": 100 - step, "green": step})
    assert svc.weights == {"blue": 100, "green": 0}, "the Service keeps the baseline while it has the larger share"
    out = shift_traffic(router, all_to("green"))
    assert out["live_colour"] == "green"
    assert alb.weights == {"blue": 0, "green": 100} and svc.weights == {"blue": 0, "green": 100}
    assert calls[-2:] == [("alb", {"blue": 0, "green": 100}), ("svc", {"blue": 0, "green": 100})]


def test_rollback_returns_both_in_one_move():
    router, alb, svc, calls = production({"blue": 0, "green": 100}, {"blue": 0, "green": 100})
    out = shift_traffic(router, all_to(router.read().rollback_colour))
    assert out["changed"] and alb.weights == svc.weights == {"blue": 100, "green": 0}
    assert [c[0] for c in calls] == ["alb", "svc"]


def test_a_follower_out_of_line_is_brought_back_even_when_the_lead_is_right():
    router, _, _, calls = production({"blue": 0, "green": 100}, {"blue": 100, "green": 0})
    out = shift_traffic(router, all_to("green"))
    assert out["changed"] and calls == [("svc", {"blue": 0, "green": 100})]
    again = shift_traffic(router, all_to("green"))
    assert not again["changed"] and len(calls) == 1


def test_a_colour_must_be_healthy_on_every_router_to_gain_traffic():
    router, _, _, calls = production(healthy=("blue",))
    with pytest.raises(TrafficError, match="green is not healthy on the router: 1/2 healthy; svc-green"):
        shift_traffic(router, all_to("green"))
    assert calls == []


def test_composite_options_are_checked_per_router():
    with pytest.raises(TrafficError, match="invalid options for the composite backend"):
        build_backend("composite", {})
    with pytest.raises(TrafficError, match="unknown traffic backend 'f5'"):
        build_backend("composite", {"routers": [{"backend": "f5", "options": {}}]})
    with pytest.raises(TrafficError, match="invalid options for the kubernetes backend"):
        build_backend("composite", {"routers": [{"backend": "kubernetes", "options": {"service": "x"}}]})


def test_a_namespace_where_nothing_was_released_reads_as_a_router_that_never_served():
    from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.kubernetes import (
        ObjectNotFound,
        ServiceRoute,
    )

    def request(method, path, what, **_):
        raise ObjectNotFound(f"{what} not found in namespace ns")

    router = ServiceRoute(namespace="ns", service="app", route="app", api_client=object())
    router.request = request
    out = shift_traffic(router, None)
    assert out["live_colour"] is None and out["idle_colour"] == "blue" and out["rollback_colour"] is None
    assert out["before"]["members"] == []


def test_returning_traffic_skips_a_follower_that_does_not_exist_yet():
    """A first release that fails on EKS: the ALB says blue (as provisioned), no Service exists
    yet. Sending all traffic back to blue moves the ALB and leaves the absent Service alone."""
    router, alb, svc, calls = production({"blue": 0, "green": 100}, {"blue": 0, "green": 0})
    svc.exists = False

    def absent(weights):
        raise TrafficError("Service app not found in namespace ns")

    svc.apply = absent
    out = shift_traffic(router, all_to("blue"), require_healthy=False)
    assert out["changed"] and alb.weights == {"blue": 100, "green": 0}
    assert calls == [("alb", {"blue": 100, "green": 0})]


def test_an_even_split_rolls_back_to_the_colour_the_service_still_names():
    """A canary interrupted at 50 %: the ALB cannot say which colour is the baseline; the
    Service, which follows only the majority, still names it."""
    router, _alb, _svc, _calls = production({"blue": 50, "green": 50}, {"blue": 100, "green": 0})
    state = router.read()
    assert state.split and state.live_colour is None
    assert state.rollback_colour == "blue"
