"""What provision installs in the cluster (roles/aws_eks_workload, k8s_monitoring), read back
from the harness that plays the EKS cluster and from moto.

The load balancer controller, the IRSA role that only its ServiceAccount can assume, one
TargetGroupBinding per colour, security groups for pods (the database admits the app group only),
the app's Secret from Secrets Manager and the monitoring stack; and, with pods of a colour Ready,
the emulated controller puts exactly the Ready pods' IPs into that colour's target group.
Each test runs on the emulated staging, then on the emulated production (fixture `emulated_env`).
(A rerun and --check of the whole provision, workload included, are test_aws_35_rerun.py.)
"""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from kubernetes.client.rest import ApiException

from tests.support.eks_emulation import SGP, TGB

APP, NS = "free4allweb", "free4allweb"
LBC_SA, LBC_NS = "aws-load-balancer-controller", "kube-system"
COLOURS = ("blue", "green")
HTTP_PORT = {"name": "http", "containerPort": 8000}


@pytest.fixture
def target_groups(emulated_env) -> dict[str, str]:
    names = [f"{emulated_env.prefix}-{c}" for c in COLOURS]
    groups = emulated_env.moto.client("elbv2").describe_target_groups(Names=names)["TargetGroups"]
    return {g["TargetGroupName"].rsplit("-", 1)[1]: g["TargetGroupArn"] for g in groups}


@pytest.fixture
def security_groups(emulated_env) -> dict[str, dict]:
    names = [f"{emulated_env.prefix}-app", f"{emulated_env.prefix}-db"]
    groups = emulated_env.moto.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": names}]
    )["SecurityGroups"]
    return {g["GroupName"].rsplit("-", 1)[1]: g for g in groups}


def test_controller_role_is_assumable_only_by_its_service_account(emulated_env):
    moto, eks_cluster, prefix = emulated_env.moto, emulated_env.cluster, emulated_env.prefix
    account = eks_cluster.core.read_namespaced_service_account(LBC_SA, LBC_NS)
    role_arn = account.metadata.annotations["eks.amazonaws.com/role-arn"]
    iam = moto.client("iam")
    role = iam.get_role(RoleName=f"{prefix}-aws-load-balancer-controller")["Role"]
    assert role["Arn"] == role_arn

    issuer = moto.client("eks").describe_cluster(name=prefix)["cluster"]["identity"]["oidc"]["issuer"]
    host = issuer.removeprefix("https://")
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    provider = next(p for p in providers if p.endswith(f":oidc-provider/{host}"))
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider)["ClientIDList"] == ["sts.amazonaws.com"]

    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{host}:sub": f"system:serviceaccount:{LBC_NS}:{LBC_SA}",
                    f"{host}:aud": "sts.amazonaws.com",
                }
            },
        }
    ]


def test_controller_policy_registers_targets_in_the_colour_groups_only(emulated_env, target_groups):
    moto, prefix = emulated_env.moto, emulated_env.prefix
    policy = moto.client("iam").get_role_policy(
        RoleName=f"{prefix}-aws-load-balancer-controller", PolicyName="aws-load-balancer-controller"
    )["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    writes = [s for s in policy["Statement"] if any(":Describe" not in a for a in s["Action"])]
    assert writes == [
        {
            "Sid": "RegisterThePodsInTheColourTargetGroups",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            "Resource": sorted(target_groups.values()),
        }
    ]
    reads = [s for s in policy["Statement"] if s not in writes]
    assert all(a.split(":")[1].startswith("Describe") for s in reads for a in s["Action"])


def test_controller_is_installed_with_helm_and_ready(emulated_env):
    eks_cluster, prefix = emulated_env.cluster, emulated_env.prefix
    out = subprocess.run(
        [str(eks_cluster.bindir / "helm"), "list", "-n", LBC_NS, "-o", "json"],
        env=eks_cluster.env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    releases = {r["name"]: r for r in json.loads(out)}
    assert releases["aws-load-balancer-controller"]["chart"] == "aws-load-balancer-controller-1.13.0"
    assert releases["aws-load-balancer-controller"]["status"] == "deployed"
    deployment = eks_cluster.apps.read_namespaced_deployment("aws-load-balancer-controller", LBC_NS)
    assert deployment.status.ready_replicas == 2
    assert deployment.spec.template.spec.service_account_name == LBC_SA
    args = deployment.spec.template.spec.containers[0].args
    assert f"--cluster-name={prefix}" in args
    assert "--enable-wafv2=false" in args


def test_one_target_group_binding_per_colour(emulated_env, target_groups):
    eks_cluster = emulated_env.cluster
    bindings = {
        b["metadata"]["name"]: b["spec"]
        for b in eks_cluster.custom.list_namespaced_custom_object(*TGB[:2], NS, TGB[2])["items"]
    }
    assert bindings == {
        f"{APP}-{colour}": {
            "serviceRef": {"name": f"{APP}-{colour}", "port": 80},
            "targetGroupARN": target_groups[colour],
            "targetType": "ip",
        }
        for colour in COLOURS
    }


def test_database_admits_the_pods_through_their_security_group(emulated_env, security_groups):
    eks_cluster = emulated_env.cluster
    app, db = security_groups["app"], security_groups["db"]
    # the database's only way in: 5432 from the app group
    assert [(r["FromPort"], [g["GroupId"] for g in r["UserIdGroupPairs"]]) for r in db["IpPermissions"]] == [
        (5432, [app["GroupId"]])
    ]
    # the API pods carry that group (security groups for pods)
    policy = eks_cluster.custom.get_namespaced_custom_object(*SGP[:2], NS, SGP[2], f"{APP}-api")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": APP}}
    assert app["GroupId"] in policy["spec"]["securityGroups"]["groupIds"]
    # and the VPC CNI hands out pod ENIs
    aws_node = eks_cluster.apps.read_namespaced_daemon_set("aws-node", "kube-system").spec.template.spec
    env = {e.name: e.value for e in aws_node.containers[0].env}
    assert env["ENABLE_POD_ENI"] == "true"
    init_env = {e.name: e.value for e in aws_node.init_containers[0].env}
    assert init_env["DISABLE_TCP_EARLY_DEMUX"] == "true"


def test_app_secret_holds_the_database_url_from_secrets_manager(emulated_env):
    moto, eks_cluster, prefix = emulated_env.moto, emulated_env.cluster, emulated_env.prefix
    provisioned = emulated_env.provisioned
    secret = eks_cluster.core.read_namespaced_secret(f"{APP}-secrets", NS)
    in_cluster = base64.b64decode(secret.data["DATABASE_URL"]).decode()
    stored = json.loads(
        moto.client("secretsmanager").get_secret_value(SecretId=f"free4allweb/{prefix}/app")["SecretString"]
    )["DATABASE_URL"]
    master = json.loads(
        moto.client("secretsmanager").get_secret_value(SecretId=f"free4allweb/{prefix}/rds-master")["SecretString"]
    )
    endpoint = moto.client("rds").describe_db_instances(DBInstanceIdentifier=prefix)["DBInstances"][0]["Endpoint"]
    expected = (
        f"postgresql://{master['username']}:{master['password']}@{endpoint['Address']}:{master['port']}"
        f"/{master['dbname']}?sslmode=require"
    )
    # compared without pytest printing the values (they hold the password)
    if in_cluster != expected or stored != expected:
        pytest.fail("the app's Secret or the Secrets Manager URL is not the URL of the database (values not shown)")
    for text in (in_cluster, master["password"]):
        assert text not in provisioned.output, "a secret appeared in the provision output"


def test_monitoring_is_installed(emulated_env):
    eks_cluster = emulated_env.cluster
    for name in ("free4allweb-monitoring-prometheus", "free4allweb-monitoring-alertmanager"):
        assert eks_cluster.apps.read_namespaced_deployment(name, "monitoring").status.available_replicas == 1
    assert eks_cluster.core.read_namespaced_config_map("free4allweb-monitoring-rules", "monitoring").data


# -- the emulated load balancer controller --------------------------------------------------------
def colour_objects(colour: str, replicas: int) -> tuple[dict, dict]:
    labels = {"app.kubernetes.io/name": APP, "colour": colour}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{APP}-{colour}", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "api", "image": "free4allweb/api:test", "ports": [HTTP_PORT]}]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{APP}-{colour}", "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return deployment, service


@pytest.fixture
def green_pods(emulated_env):
    """Two Ready pods and one whose readiness keeps failing behind Service free4allweb-green."""
    k8s = emulated_env.cluster
    deployment, service = colour_objects("green", 2)
    k8s.core.create_namespaced_service(NS, service)
    k8s.apps.create_namespaced_deployment(NS, deployment)
    failing = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{APP}-green-not-ready",
            "labels": deployment["metadata"]["labels"],
            "annotations": {"kwok.free4allweb.test/readiness": "fail"},
        },
        "spec": deployment["spec"]["template"]["spec"],
    }
    k8s.core.create_namespaced_pod(NS, failing)
    yield deployment
    for delete in (
        lambda: k8s.apps.delete_namespaced_deployment(f"{APP}-green", NS),
        lambda: k8s.core.delete_namespaced_service(f"{APP}-green", NS),
        lambda: k8s.core.delete_namespaced_pod(f"{APP}-green-not-ready", NS, grace_period_seconds=0),
    ):
        try:
            delete()
        except ApiException as exc:
            if exc.status != 404:
                raise


def ready_pod_ips(k8s, colour: str) -> set[str]:
    pods = k8s.core.list_namespaced_pod(NS, label_selector=f"app.kubernetes.io/name={APP},colour={colour}").items
    return {
        p.status.pod_ip
        for p in pods
        if p.status.pod_ip and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }


def targets(moto, arn: str) -> dict[tuple[str, int], str]:
    health = moto.client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {(t["Target"]["Id"], t["Target"]["Port"]): t["TargetHealth"]["State"] for t in health}


def test_ready_pods_of_a_colour_become_healthy_targets_of_its_group(emulated_env, target_groups, green_pods):
    moto, k8s, lb_controller = emulated_env.moto, emulated_env.cluster, emulated_env.lb_controller
    ips = k8s.wait_for("two Ready green pods", lambda: (s := ready_pod_ips(k8s, "green")) and len(s) == 2 and s)
    expected = {(ip, 8000): "healthy" for ip in ips}
    k8s.wait_for("the green pods in the green target group", lambda: targets(moto, target_groups["green"]) == expected)
    assert targets(moto, target_groups["blue"]) == {}

    # scaled down: the controller deregisters what is gone
    k8s.apps.patch_namespaced_deployment_scale(f"{APP}-green", NS, {"spec": {"replicas": 1}})
    k8s.wait_for(
        "one green target left",
        lambda: (
            len(ready_pod_ips(k8s, "green")) == 1
            and set(targets(moto, target_groups["green"])) == {(ip, 8000) for ip in ready_pod_ips(k8s, "green")}
        ),
        timeout=30,
    )
    assert lb_controller.errors == []
