"""Traffic: the HAProxy runtime-state parser, the command plan, and the shift policy."""

from __future__ import annotations

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic import backend_class
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    Member,
    TrafficBackend,
    TrafficError,
    TrafficState,
    check_weights,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.haproxy import (
    HAProxyRuntime,
    parse_servers_state,
    state_from_rows,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.shift import shift_traffic

# Real `show servers state app` output from HAProxy 2.6.
HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl"
    " srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)
STATE = f"""1
{HEADER}
3 app 1 app1_blue 10.89.40.21 2 0 100 100 120 15 3 4 6 0 0 0 - 8001 - 0 0 - - 0
3 app 2 app1_green 10.89.40.21 0 0 0 0 120 7 2 0 6 0 0 0 - 8002 - 0 0 - - 0
3 app 3 app2_blue 10.89.40.22 2 0 100 100 120 15 3 4 6 0 0 0 - 8001 - 0 0 - - 0
3 app 4 app2_green 10.89.40.22 2 1 0 0 120 15 3 4 6 0 0 0 - 8002 - 0 0 - - 0
"""


def test_parses_runtime_state_into_colours():
    state = state_from_rows(parse_servers_state(STATE), "app")
    assert state.weights == {"blue": 100, "green": 0}
    assert state.live_colour == "blue"
    assert [m.name for m in state.healthy("blue")] == ["app1_blue", "app2_blue"]
    unhealthy = {m.name: m.detail for m in state.unhealthy("green")}
    assert unhealthy == {"app1_green": "stopped", "app2_green": "running, maintenance"}


def test_other_backends_and_unnamed_servers_are_ignored():
    text = STATE + "4 stats 1 app1_blue 10.0.0.9 2 0 1 1 0 0 0 0 0 0 0 0 - 80 - 0 0 - - 0\n"
    text += "3 app 5 spare 10.0.0.8 2 0 1 1 0 0 0 0 0 0 0 0 - 80 - 0 0 - - 0\n"
    state = state_from_rows(parse_servers_state(text), "app")
    assert len(state.members) == 4


@pytest.mark.parametrize("text", ["", "2\n# be_id\n", "1\n3 app 1 x\n"])
def test_unexpected_state_output_is_an_error(text):
    with pytest.raises(TrafficError):
        parse_servers_state(text)


def test_backend_without_colour_servers_is_an_error():
    with pytest.raises(TrafficError, match="no servers named"):
        state_from_rows(parse_servers_state(STATE), "other")


def test_switch_commands_raise_the_new_colour_before_lowering_the_old():
    current = state_from_rows(parse_servers_state(STATE), "app")
    cmds = HAProxyRuntime(pool="app").commands_for(current, {"blue": 0, "green": 100})
    assert cmds == [
        "set weight app/app1_green 100",
        "set weight app/app2_green 100",
        "set weight app/app1_blue 0",
        "set weight app/app2_blue 0",
    ]


def test_live_colour_and_split():
    assert TrafficState({"blue": 95, "green": 5}).live_colour == "blue"
    assert TrafficState({"blue": 95, "green": 5}).split
    assert TrafficState({"blue": 50, "green": 50}).live_colour is None
    assert TrafficState({"blue": 0, "green": 0}).live_colour is None
    assert TrafficState({"blue": 95, "green": 5}).share("green") == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"red": 1}, "unknown colour"),
        ({"blue": 101}, "0..100"),
        ({"blue": -1}, "0..100"),
        ({"blue": "x"}, "integer"),
        ({"blue": 0, "green": 0}, "at least one"),
    ],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(TrafficError, match=message):
        check_weights(weights)


def test_backend_registry_names_the_known_backends():
    assert backend_class("haproxy") is HAProxyRuntime
    with pytest.raises(ValueError, match="known"):
        backend_class("f5")


class FakeRouter(TrafficBackend):
    """An in-memory router whose members become healthy after a number of reads."""

    name = "fake"

    def __init__(self, weights, healthy_after=0, members=None):
        self.weights = dict(weights)
        self.reads = 0
        self.healthy_after = healthy_after
        self.applied = []
        self.member_names = members or {"blue": ["a_blue", "b_blue"], "green": ["a_green", "b_green"]}

    def read(self):
        self.reads += 1
        members = [
            Member(n, c, healthy=(c == "blue" or self.reads > self.healthy_after), weight=self.weights[c])
            for c, names in self.member_names.items()
            for n in names
        ]
        return TrafficState(dict(self.weights), members)

    def apply(self, weights):
        self.applied.append(dict(weights))
        self.weights.update(weights)


def test_read_only_changes_nothing():
    router = FakeRouter({"blue": 100, "green": 0})
    out = shift_traffic(router, None)
    assert out["changed"] is False and out["live_colour"] == "blue" and router.applied == []


def test_switch_applies_and_reports_the_new_live_colour():
    router = FakeRouter({"blue": 100, "green": 0})
    out = shift_traffic(router, {"blue": 0, "green": 100})
    assert out["changed"] is True
    assert out["live_colour"] == "green"
    assert out["before"]["live_colour"] == "blue"
    assert router.applied == [{"blue": 0, "green": 100}]


def test_same_weights_again_is_no_change():
    router = FakeRouter({"blue": 0, "green": 100}, healthy_after=0)
    out = shift_traffic(router, {"blue": 0, "green": 100})
    assert out["changed"] is False and router.applied == []


def test_refuses_to_switch_to_an_unhealthy_colour():
    router = FakeRouter({"blue": 100, "green": 0}, healthy_after=99)
    with pytest.raises(TrafficError, match="green is not healthy on the router: 0/2 healthy"):
        shift_traffic(router, {"blue": 0, "green": 100})
    assert router.applied == [] and router.weights == {"blue": 100, "green": 0}


def test_waits_for_the_router_to_see_the_colour_healthy():
    router = FakeRouter({"blue": 100, "green": 0}, healthy_after=3)
    t = {"now": 0.0}
    out = shift_traffic(
        router,
        {"blue": 0, "green": 100},
        wait_healthy_timeout=5,
        clock=lambda: t["now"],
        sleep=lambda s: t.__setitem__("now", t["now"] + s),
    )
    assert out["changed"] and router.weights == {"blue": 0, "green": 100}
    assert router.reads >= 4


def test_returning_traffic_to_a_colour_that_already_has_some_needs_no_health_check():
    # a canary rollback: blue still holds 95 and must get everything back even if green is sick
    router = FakeRouter({"blue": 95, "green": 5}, healthy_after=99)
    out = shift_traffic(router, {"blue": 100, "green": 0})
    assert out["changed"] and out["live_colour"] == "blue"


def test_check_mode_predicts_without_applying():
    router = FakeRouter({"blue": 100, "green": 0})
    out = shift_traffic(router, {"blue": 0, "green": 100}, check_mode=True)
    assert out["changed"] and out["after"]["weights"] == {"blue": 0, "green": 100}
    assert router.applied == []


@pytest.mark.parametrize(
    ("weights", "target", "expected"),
    [
        ({"blue": 100, "green": 0}, "rollback", "green"),  # after a deploy: back to the old colour
        ({"blue": 95, "green": 5}, "rollback", "blue"),  # an interrupted canary: back to the baseline
        ({"blue": 100, "green": 0}, "idle", "green"),
        ({"blue": 100, "green": 0}, "green", "green"),
    ],
)
def test_send_all_to_is_resolved_against_the_state_read_in_the_same_call(weights, target, expected):
    router = FakeRouter(weights)
    out = shift_traffic(router, None, send_all_to=target)
    assert out["to_colour"] == expected
    assert router.weights == {expected: 100, ("blue" if expected == "green" else "green"): 0}
    assert router.reads == 2  # one read to decide, one to confirm: no round trip in between
    assert out["before"]["rollback_colour"] == (expected if target == "rollback" else out["before"]["rollback_colour"])


def test_rollback_on_a_router_that_never_served_names_the_weights():
    router = FakeRouter({"blue": 0, "green": 0})
    with pytest.raises(TrafficError, match=r"never served \(\{'blue': 0, 'green': 0\}\): there is nothing"):
        shift_traffic(router, None, send_all_to="rollback")
    assert router.applied == []


def test_rollback_refuses_a_colour_with_no_healthy_member_and_any_one_is_enough_with_ratio_0():
    router = FakeRouter({"blue": 0, "green": 100})
    router.member_names = {"blue": ["a_blue"], "green": ["a_green"]}
    sick = FakeRouter({"blue": 100, "green": 0}, healthy_after=99, members={"blue": ["a_blue"], "green": ["a_green"]})
    with pytest.raises(TrafficError, match="green is not healthy on the router: 0/1"):
        shift_traffic(sick, None, send_all_to="rollback", min_healthy_ratio=0)
    out = shift_traffic(router, None, send_all_to="rollback", min_healthy_ratio=0)
    assert out["to_colour"] == "blue" and out["changed"]


def test_the_decision_is_timed_just_before_the_change():
    router = FakeRouter({"blue": 100, "green": 0})
    out = shift_traffic(router, None, send_all_to="green")
    assert out["decided_at"] <= out["applied_at"]
    assert out["applied_at"] - out["decided_at"] < 1


def test_weights_and_send_all_to_together_are_refused():
    with pytest.raises(TrafficError, match="either weights or send_all_to"):
        shift_traffic(FakeRouter({"blue": 100, "green": 0}), {"blue": 0}, send_all_to="green")


def test_check_mode_resolves_the_target_without_applying():
    router = FakeRouter({"blue": 0, "green": 100})
    out = shift_traffic(router, None, send_all_to="rollback", check_mode=True)
    assert out["to_colour"] == "blue" and out["changed"] and router.applied == []
