"""Switching at the ALB: blue-green, weighted canary steps, idempotent reruns, rollback, and a
switch refused when the new colour has no healthy target. Every state is read back with boto3."""

from __future__ import annotations

import pytest

from tests.support.aws_moto import NAME

SET_WEIGHTS = "tests/integration/aws/playbooks/set_weights.yml"
TARGETS = {"blue": "10.0.64.10", "green": "10.0.96.10"}
pytestmark = pytest.mark.usefixtures("provisioned")


@pytest.fixture(scope="module")
def elb(moto):
    return moto.client("elbv2")


@pytest.fixture(scope="module")
def groups(elb):
    found = elb.describe_target_groups(Names=[f"{NAME}-blue", f"{NAME}-green"])["TargetGroups"]
    return {g["TargetGroupName"].rsplit("-", 1)[1]: g["TargetGroupArn"] for g in found}


@pytest.fixture(scope="module", autouse=True)
def targets(elb, groups):
    """A pod IP in each colour's target group, as the cluster's load balancer controller registers them."""
    for colour, arn in groups.items():
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": TARGETS[colour], "Port": 8000}])


def weights(elb, groups) -> dict[str, int]:
    lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    https = [x for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if x["Port"] == 443]
    action = https[0]["DefaultActions"][0]
    by_arn = {g["TargetGroupArn"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}
    return {colour: by_arn[arn] for colour, arn in groups.items()}


def listener_writes(run) -> list:
    return [c for c in run.calls if c.operation == "ModifyListener"]


def test_blue_green_switch(play, elb, groups):
    assert weights(elb, groups) == {"blue": 100, "green": 0}
    run = play("playbooks/aws/deploy.yml").ok()
    assert run.changed_tasks == ["Switch all traffic to green"]
    assert weights(elb, groups) == {"blue": 0, "green": 100}
    assert len(listener_writes(run)) == 1


def test_same_weights_again_change_nothing(play, elb, groups):
    run = play(SET_WEIGHTS, extra_vars={"test_weights": {"blue": 0, "green": 100}}).ok()
    assert run.changed_tasks == []
    assert run.mutating_calls == [], "an unchanged split must not be written again"
    assert weights(elb, groups) == {"blue": 0, "green": 100}


def test_rollback_returns_to_the_previous_colour(play, elb, groups):
    run = play("playbooks/aws/rollback.yml").ok()
    assert run.changed_tasks == ["Send all traffic to blue"]
    assert weights(elb, groups) == {"blue": 100, "green": 0}


@pytest.mark.parametrize(("blue", "green"), [(90, 10), (50, 50), (0, 100)])
def test_weighted_step(play, elb, groups, blue, green):
    wanted = {"blue": blue, "green": green}
    first = play(SET_WEIGHTS, extra_vars={"test_weights": wanted}).ok()
    assert first.changed_tasks == [f"Set the weights to {wanted}"]
    assert weights(elb, groups) == wanted
    again = play(SET_WEIGHTS, extra_vars={"test_weights": wanted}).ok()
    assert again.changed_tasks == []
    assert listener_writes(again) == []


def test_canary_deploy_steps_then_promotes(play, elb, groups):
    play("playbooks/aws/rollback.yml").ok()
    assert weights(elb, groups) == {"blue": 100, "green": 0}
    run = play("playbooks/aws/deploy.yml", extra_vars={"deploy_strategy": "canary", "canary_steps": [10, 50, 100]})
    run.ok()
    assert run.changed_tasks == [f"Shift traffic to green: {p} %" for p in (10, 50, 100)]
    assert len(listener_writes(run)) == 3
    assert weights(elb, groups) == {"blue": 0, "green": 100}


def test_switch_refused_when_the_new_colour_has_no_healthy_target(play, elb, groups):
    # green is live; take blue's only target away: a deploy must not send traffic there
    elb.deregister_targets(TargetGroupArn=groups["blue"], Targets=[{"Id": TARGETS["blue"], "Port": 8000}])
    try:
        run = play("playbooks/aws/deploy.yml", extra_vars={"deploy_switch_timeout": 0})
        assert run.rc != 0
        assert "traffic is back on green" in run.output
        assert "refusing to send traffic: blue has no members on the router" in run.output
        assert weights(elb, groups) == {"blue": 0, "green": 100}
        assert listener_writes(run) == []
    finally:
        elb.register_targets(TargetGroupArn=groups["blue"], Targets=[{"Id": TARGETS["blue"], "Port": 8000}])


def test_canary_steps_are_checked_before_any_call(play):
    run = play("playbooks/aws/deploy.yml", extra_vars={"deploy_strategy": "canary", "canary_steps": [50, 10]})
    assert run.rc != 0
    assert "canary_steps rising percentages ending at 100" in " ".join(run.output.split())
    assert run.calls == []
