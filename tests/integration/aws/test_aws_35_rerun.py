"""A provisioned stack converges: a rerun changes nothing (and keeps a live canary split), and
--check reports nothing and calls nothing that changes anything. No secret in any output."""

from __future__ import annotations

import json

import pytest

from tests.support.aws_moto import MOTO_GAP_SKIPS, NAME

SPLIT = {"blue": 90, "green": 10}
pytestmark = pytest.mark.usefixtures("provisioned")


@pytest.fixture(scope="module")
def split(play):
    """A canary in progress (90/10) when the provision reruns: it must survive the rerun."""
    play(
        "tests/integration/aws/playbooks/set_weights.yml",
        extra_vars={"test_weights": SPLIT, "test_require_healthy": False},
    ).ok()
    return SPLIT


@pytest.fixture(scope="module")
def rerun(play, split):
    # the node group task is skipped: moto cannot describe a node group's updateConfig or tags
    return play("playbooks/aws/provision.yml", skip_tags=MOTO_GAP_SKIPS).ok()


@pytest.fixture(scope="module")
def check_run(play, rerun):
    return play("playbooks/aws/provision.yml", check=True, skip_tags=MOTO_GAP_SKIPS).ok()


def forward_weights(moto):
    elb = moto.client("elbv2")
    lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    https = [x for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if x["Port"] == 443]
    groups = https[0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    return {g["TargetGroupArn"].split("/")[1].rsplit("-", 1)[1]: g["Weight"] for g in groups}


def test_rerun_changes_nothing(rerun):
    assert rerun.changed_tasks == []
    assert rerun.recap["changed"] == 0


def test_rerun_makes_no_write_call(rerun):
    assert len(rerun.calls) > 50
    assert rerun.mutating_calls == [], [f"{c.service}:{c.operation}" for c in rerun.mutating_calls]


def test_rerun_keeps_the_live_traffic_split(rerun, moto, split):
    assert forward_weights(moto) == split


def test_check_mode_reports_no_change(check_run):
    assert check_run.changed_tasks == []
    assert check_run.recap["changed"] == 0


def test_check_mode_makes_no_write_call(check_run):
    services = {c.service for c in check_run.calls}
    assert {"ec2", "rds", "eks", "elasticloadbalancing", "route53", "iam", "secretsmanager"} <= services
    assert check_run.mutating_calls == [], [f"{c.service}:{c.operation}" for c in check_run.mutating_calls]


def test_no_secret_in_any_output(moto, rerun, check_run):
    secret = moto.client("secretsmanager").get_secret_value(SecretId=f"free4allweb/{NAME}/rds-master")
    password = json.loads(secret["SecretString"])["password"]
    for run in (rerun, check_run):
        assert password not in run.output
