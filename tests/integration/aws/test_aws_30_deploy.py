"""playbooks/deploy.yml and rollback.yml on the emulated staging (moto + the harness as EKS): the
one rollout with the kubernetes release adapter, the ALB and the Service as one router, the Lease
lock and the ConfigMap record. The ALB's targets come from the emulated load balancer controller
(the pods behind each colour's TargetGroupBinding), never from the test. The canary judge asks a
real Prometheus scraping stand-ins of the pods (`app_metrics`: kwok's pods serve no metrics)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.aws_moto import ROOT

DEPLOY, ROLLBACK = "playbooks/deploy.yml", "playbooks/rollback.yml"
NS = APP = "free4allweb"
# the same canary request as on the other platforms, with the shipped judge's defaults
FAST_CANARY = {"deploy_strategy": "canary", "canary_steps": [5, 25, 50, 100]}


@pytest.fixture(scope="module")
def env(staging, app_metrics):
    return staging


@pytest.fixture(scope="module")
def elb(env):
    return env.moto.client("elbv2")


@pytest.fixture(scope="module")
def groups(env, elb) -> dict[str, str]:
    found = elb.describe_target_groups(Names=[f"{env.prefix}-blue", f"{env.prefix}-green"])["TargetGroups"]
    return {g["TargetGroupName"].rsplit("-", 1)[1]: g["TargetGroupArn"] for g in found}


def alb_weights(env, elb, groups) -> dict[str, int]:
    lb = elb.describe_load_balancers(Names=[env.prefix])["LoadBalancers"][0]["LoadBalancerArn"]
    [https] = [x for x in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"] if x["Port"] == 443]
    by_arn = {g["TargetGroupArn"]: g["Weight"] for g in https["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}
    return {colour: by_arn[arn] for colour, arn in groups.items()}


def deploy(env, app_metrics, version: str, **extra):
    return env.play(DEPLOY, {"app_version": version, "free4allweb_prometheus_url": app_metrics.url, **extra})


def image_of(env, colour: str) -> str:
    dep = env.cluster.apps.read_namespaced_deployment(f"{APP}-{colour}", NS)
    return dep.spec.template.spec.containers[0].image


def records(env) -> list[tuple[dict, list]]:
    return env.cluster.records(NS)


@pytest.fixture(scope="module")
def first(env, elb, groups, app_metrics):
    """The first release: nothing runs yet; the ALB sends everything to blue as provisioned."""
    before = alb_weights(env, elb, groups)
    run = deploy(env, app_metrics, "1.0.0")
    assert run.rc == 0, run.tail()
    return before, run


def test_the_first_release_runs_on_eks_behind_the_alb(env, elb, groups, first):
    before, _run = first
    assert before == {"blue": 100, "green": 0}
    # nothing served: the release went to the idle colour and took all the traffic at once
    assert image_of(env, "green").endswith(":1.0.0")
    binding = env.cluster.custom.get_namespaced_custom_object(
        "elbv2.k8s.aws", "v1beta1", NS, "targetgroupbindings", f"{APP}-green"
    )
    assert binding["spec"]["targetGroupARN"] == groups["green"]
    assert binding["spec"]["serviceRef"]["name"] == f"{APP}-green"
    assert alb_weights(env, elb, groups) == {"blue": 0, "green": 100}
    assert env.cluster.selector_colour(NS) == "green"
    # the controller registered the green pods, as the ALB sees them
    env.lb_controller.wait_passes()
    targets = elb.describe_target_health(TargetGroupArn=groups["green"])["TargetHealthDescriptions"]
    pods = env.cluster.core.list_namespaced_pod(NS, label_selector="colour=green").items
    assert {t["Target"]["Id"] for t in targets} == {p.status.pod_ip for p in pods} != set()
    record, _ = records(env)[-1]
    assert (record["kind"], record["version"], record["result"]) == ("deploy", "1.0.0", "succeeded"), record
    assert record["commit"], record


def test_a_rerun_changes_nothing(env, app_metrics, first):
    again = deploy(env, app_metrics, "1.0.0")
    assert again.rc == 0, again.tail()
    assert again.recap["changed"] == 0, again.changed_tasks
    assert "already live" in again.output
    assert again.mutating_calls == [], [c.operation for c in again.mutating_calls]


def test_check_mode_moves_nothing(env, elb, groups, app_metrics, first):
    before = alb_weights(env, elb, groups)
    dry = env.play(DEPLOY, {"app_version": "1.1.0", "free4allweb_prometheus_url": app_metrics.url}, check=True)
    assert dry.rc == 0, dry.tail()
    assert dry.mutating_calls == [], [c.operation for c in dry.mutating_calls]
    assert alb_weights(env, elb, groups) == before
    assert not env.cluster.apps.list_namespaced_deployment(NS, label_selector="colour=blue").items or not image_of(
        env, "blue"
    ).endswith(":1.1.0")
    # check mode took no Lease (a deploy's own is deleted when it ends)
    with pytest.raises(ApiException, match="Not Found"):
        client.CoordinationV1Api(env.cluster.api).read_namespaced_lease(f"{APP}-deploy", NS)


def test_a_canary_failed_by_the_judge_returns_the_alb_and_the_service(env, elb, groups, app_metrics, first):
    app_metrics.restart("blue", rate=300.0, error_ratio=0.06, latency_factor=1.0, tail_ratio=0.0, seed=7)
    try:
        run = deploy(env, app_metrics, "1.2.0", **FAST_CANARY)
    finally:
        app_metrics.restart("blue", rate=300.0, error_ratio=0.01, latency_factor=1.0, tail_ratio=0.0, seed=2)
    assert run.rc != 0, run.tail()
    assert "canary judged fail at 5 %" in run.output, run.tail()
    assert "error_ratio" in run.output, run.tail()
    assert "Traffic is on green (1.0.0)" in run.output, run.tail()
    assert alb_weights(env, elb, groups) == {"blue": 0, "green": 100}
    assert env.cluster.selector_colour(NS) == "green"
    record, steps = records(env)[-1]
    assert (record["version"], record["result"]) == ("1.2.0", "failed"), record
    [step] = [s for s in steps if s["result"] == "fail"]
    judged, returned = float(step["details"]["judged_at"]), float(step["details"]["rolled_back_at"])
    assert 0 <= returned - judged <= 5, step
    assert next(m for m in step["details"]["metrics"] if m["name"] == "error_ratio")["classification"] == "fail"


def test_rollback_returns_the_alb_and_the_service_together(env, elb, groups, app_metrics, first):
    v2 = deploy(env, app_metrics, "2.0.0")
    assert v2.rc == 0, v2.tail()
    assert alb_weights(env, elb, groups) == {"blue": 100, "green": 0} and env.cluster.selector_colour(NS) == "blue"
    back = env.play(ROLLBACK)
    assert back.rc == 0, back.tail()
    assert alb_weights(env, elb, groups) == {"blue": 0, "green": 100}
    assert env.cluster.selector_colour(NS) == "green"
    record, _ = records(env)[-1]
    assert (record["kind"], record["result"]) == ("rollback", "succeeded"), record


def test_a_second_deploy_is_refused_naming_the_holder(env, app_metrics, first, tmp_path):
    """Someone holds the Lease (another operator's deploy): the deploy waits its timeout and
    stops before any change, naming them."""
    lease = {
        "backend": "kubernetes",
        "options": {"namespace": NS, "name": f"{APP}-deploy", "kubeconfig": str(env.cluster.kubeconfig)},
        "token": "someone-else",
        "owner": "alice",
        "purpose": "deploy 9.9.9",
        "ttl": 600,
        "timeout": 0,
    }

    def module(args):
        argfile = tmp_path / f"lock-{time.monotonic_ns()}.json"
        argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.run(
            [sys.executable, "-m", "ansible_collections.free4allweb.devops.plugins.modules.deploy_lock", str(argfile)],
            env={**env.cluster.env(), "PYTHONPATH": str(ROOT / "collections")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return json.loads(proc.stdout)

    held = module(lease)
    assert held["holder"]["owner"] == "alice" and not held.get("failed"), held
    try:
        run = deploy(env, app_metrics, "3.0.0", deploy_lock_timeout=2)
        assert run.rc != 0, run.tail()
        assert "held by 'alice' for 'deploy 9.9.9'" in run.output, run.tail()
        assert image_of(env, "blue").endswith(":2.0.0"), "nothing may change while another run holds the lock"
    finally:
        module({**lease, "state": "released"})
