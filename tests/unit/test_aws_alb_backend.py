"""The ALB traffic backend: pure helpers, and the class against moto's in-process ELBv2."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic import backend_class
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.alb import (
    ForwardWeights,
    colour_weights,
    forward_action,
    forward_config,
    weights_by_arn,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import TrafficError
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.shift import shift_traffic

BLUE = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/blue/1"
GREEN = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/green/2"
ARNS = {"blue": BLUE, "green": GREEN}


def test_weights_from_forward_config():
    action = {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 90}, {"TargetGroupArn": GREEN}]},
    }
    assert colour_weights(weights_by_arn(action), ARNS) == {"blue": 90, "green": 1}


def test_single_target_group_counts_as_all_traffic():
    assert colour_weights(weights_by_arn({"Type": "forward", "TargetGroupArn": GREEN}), ARNS) == {
        "blue": 0,
        "green": 100,
    }


def test_foreign_target_group_is_refused():
    with pytest.raises(TrafficError, match="neither blue nor green"):
        colour_weights({BLUE: 50, "arn:other": 50}, ARNS)


def test_listener_without_forward_is_refused():
    with pytest.raises(TrafficError, match="one 'forward' action"):
        forward_action([{"Type": "fixed-response"}])


def test_forward_config_lists_both_colours_and_keeps_stickiness():
    actions = forward_config({"blue": 0, "green": 100}, ARNS, {"Enabled": True, "DurationSeconds": 60})
    config = actions[0]["ForwardConfig"]
    assert config["TargetGroups"] == [
        {"TargetGroupArn": BLUE, "Weight": 0},
        {"TargetGroupArn": GREEN, "Weight": 100},
    ]
    assert config["TargetGroupStickinessConfig"]["DurationSeconds"] == 60


def test_registered_in_backends():
    assert backend_class("alb") is ForwardWeights


REGION = "eu-west-1"


def client(service: str):
    """A boto3 client with dummy keys of its own (nothing set in the environment)."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def alb(monkeypatch):
    """A VPC, an ALB with an HTTPS listener forwarding 100/0 to blue/green, one target each."""
    # moto's in-process mock intercepts AWS's own endpoints: no endpoint override may leak in
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        ec2 = client("ec2")
        elb = client("elbv2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
                "SubnetId"
            ]
            for i, az in enumerate("ab")
        ]
        lb = elb.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
        arns = {}
        for colour in ("blue", "green"):
            tg = elb.create_target_group(Name=f"web-{colour}", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip")[
                "TargetGroups"
            ][0]
            arns[colour] = tg["TargetGroupArn"]
            elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "10.0.0.10", "Port": 8000}])
        cert = client("acm").request_certificate(DomainName="api.example.test")
        elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTPS",
            Port=443,
            Certificates=[{"CertificateArn": cert["CertificateArn"]}],
            DefaultActions=forward_config({"blue": 100, "green": 0}, arns, None),
        )
        yield elb, arns


def make_backend(load_balancer_name="web", **extra):
    return ForwardWeights(
        region=REGION,
        load_balancer_name=load_balancer_name,
        blue_target_group="web-blue",
        green_target_group="web-green",
        client=client("elbv2"),
        **extra,
    )


def listener_weights(elb, arns):
    lb = elb.describe_load_balancers(Names=["web"])["LoadBalancers"][0]
    listener = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
    groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    by_arn = {g["TargetGroupArn"]: g["Weight"] for g in groups}
    return {c: by_arn[a] for c, a in arns.items()}


def test_read_reports_weights_and_target_health(alb):
    state = make_backend().read()
    assert state.weights == {"blue": 100, "green": 0}
    assert state.live_colour == "blue"
    assert {(m.colour, m.healthy) for m in state.members} == {("blue", True), ("green", True)}


def test_canary_steps_then_rerun_makes_no_call(alb):
    elb, arns = alb
    backend = make_backend()
    for blue, green in ((90, 10), (50, 50), (0, 100)):
        result = shift_traffic(backend, {"blue": blue, "green": green})
        assert result["changed"]
        assert listener_weights(elb, arns) == {"blue": blue, "green": green}
    writes = backend.writes
    again = shift_traffic(backend, {"blue": 0, "green": 100})
    assert not again["changed"]
    backend.apply({"blue": 0, "green": 100})  # even a direct apply compares first
    assert backend.writes == writes
    assert again["live_colour"] == "green"


def test_partial_weights_keep_the_other_colour(alb):
    elb, arns = alb
    backend = make_backend()
    backend.apply({"green": 25})
    assert listener_weights(elb, arns) == {"blue": 100, "green": 25}


def test_check_mode_changes_nothing(alb):
    elb, arns = alb
    backend = make_backend()
    result = shift_traffic(backend, {"blue": 0, "green": 100}, check_mode=True)
    assert result["changed"]
    assert result["after"]["live_colour"] == "green"
    assert listener_weights(elb, arns) == {"blue": 100, "green": 0}
    assert backend.writes == 0


def test_unknown_load_balancer_is_a_clear_error(alb):
    backend = make_backend(load_balancer_name="nope")
    with pytest.raises(TrafficError, match="finding load balancer nope"):
        backend.read()


def test_missing_listener_port_is_a_clear_error(alb):
    with pytest.raises(TrafficError, match="no listener on port 8443"):
        make_backend(listener_port=8443).read()


def test_unhealthy_idle_colour_blocks_the_switch(alb):
    elb, arns = alb
    elb.deregister_targets(TargetGroupArn=arns["green"], Targets=[{"Id": "10.0.0.10", "Port": 8000}])
    with pytest.raises(TrafficError, match="green has no members"):
        shift_traffic(make_backend(), {"blue": 0, "green": 100})
    assert listener_weights(elb, arns) == {"blue": 100, "green": 0}
