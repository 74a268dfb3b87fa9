"""Pure logic of the k8s_app role: quantities, input rules and the manifests it applies."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils import k8s_app
from ansible_collections.free4allweb.devops.plugins.module_utils.k8s_app import (
    ReleaseError,
    image_tag,
    manifests,
    parse_quantity,
    release_problems,
)

BASE = {
    "name": "free4allweb",
    "namespace": "free4allweb",
    "environment": "production",
    "colour": "green",
    "image": "registry.example.com/free4allweb:1.4.0",
    "version": "1.4.0",
    "replicas": 3,
    "port": 8000,
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    "config": {"F4A_DB_POOL_MAX": "5"},
    "database_url": "postgresql://u:pw@db/app",
    "pod_security": "restricted",
    "hpa": {
        "enabled": True,
        "min_replicas": 2,
        "max_replicas": 10,
        "cpu_utilization": 70,
        "memory_utilization": 80,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    },
    "route": {"enabled": True, "parent_refs": [{"name": "gw"}], "hostnames": ["api.example.com"]},
}


def params(**changes):
    p = copy.deepcopy(BASE)
    p.update(changes)
    return p


def by_kind(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("0.5", Decimal("0.5")),
        ("2", Decimal(2)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        (" 100k", Decimal(100000)),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1 Gi", "5x", "--1"])
def test_parse_quantity_rejects_garbage(text):
    with pytest.raises(ReleaseError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("registry.example.com/free4allweb:1.4.0", "1.4.0"),
        ("free4allweb:latest", "latest"),
        ("registry:5000/free4allweb", None),
        ("registry:5000/free4allweb:2", "2"),
        ("free4allweb@sha256:abc", "sha256:abc"),
        ("free4allweb", None),
        ("free4allweb:", None),
    ],
)
def test_image_tag(image, tag):
    assert image_tag(image) == tag


def test_good_inputs_have_no_problems():
    assert release_problems(params()) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"replicas": 0}, "k8s_app_replicas is 0 in production"),
        ({"image": "registry.example.com/free4allweb"}, "has no tag"),
        ({"image": "registry.example.com/free4allweb:latest"}, "'latest' is not a release"),
        ({"image": ""}, "k8s_app_image is required"),
        (
            {"resources": {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}},
            "k8s_app_resources.limits.cpu (500m) is below k8s_app_resources.requests.cpu (1)",
        ),
        (
            {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "512Mi"}}},
            "limits.memory (512Mi) is below",
        ),
        ({"resources": {"requests": {"cpu": "250m"}}}, "requests.memory is required"),
        ({"colour": "purple"}, "k8s_app_colour must be one of"),
        ({"name": "Free4AllWeb"}, "k8s_app_name"),
        ({"database_url": ""}, "k8s_app_database_url"),
    ],
)
def test_bad_inputs_name_the_variable(changes, message):
    problems = release_problems(params(**changes))
    assert any(message in p for p in problems), problems


def test_hpa_bounds_are_checked():
    p = params()
    p["hpa"] = {**p["hpa"], "min_replicas": 5, "max_replicas": 3}
    assert any("below k8s_app_hpa_min_replicas" in m for m in release_problems(p))
    p["hpa"] = {**p["hpa"], "min_replicas": 1, "max_replicas": 3}
    assert any("one pod is no redundancy" in m for m in release_problems(p))


def test_outside_production_zero_replicas_and_latest_are_allowed():
    p = params(environment="staging", replicas=0, image="free4allweb:latest", database_url="")
    p["hpa"] = {**p["hpa"], "enabled": False}
    assert release_problems(p) == []


def test_manifests_refuse_bad_inputs():
    with pytest.raises(ReleaseError, match="has no tag"):
        manifests(params(image="free4allweb"))


def test_manifests_in_apply_order():
    kinds = [(o["kind"], o["metadata"]["name"]) for o in manifests(params())]
    assert kinds == [
        ("Namespace", "free4allweb"),
        ("ServiceAccount", "free4allweb"),
        ("ConfigMap", "free4allweb-config"),
        ("Secret", "free4allweb-secrets"),
        ("Service", "free4allweb-blue"),
        ("Service", "free4allweb-green"),
        ("Service", "free4allweb"),
        ("HTTPRoute", "free4allweb"),
        ("Deployment", "free4allweb-green"),
        ("HorizontalPodAutoscaler", "free4allweb-green"),
        ("PodDisruptionBudget", "free4allweb-green"),
    ]


def test_deployment_is_the_spec_workload_hardened():
    dep = by_kind(manifests(params()), "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "free4allweb", "colour": "green"}
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["resources"] == BASE["resources"]
    db = next(e for e in c["env"] if e["name"] == "DATABASE_URL")
    assert db == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "free4allweb-secrets", "key": "DATABASE_URL"}},
    }
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    keys = {
        t["podAffinityTerm"]["topologyKey"]
        for t in pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    }
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    spread = {t["topologyKey"]: t["whenUnsatisfiable"] for t in pod["topologySpreadConstraints"]}
    assert spread == {"topology.kubernetes.io/zone": "DoNotSchedule", "kubernetes.io/hostname": "ScheduleAnyway"}
    assert "postgresql://" not in str(dep)  # the URL lives only in the Secret


def test_secret_changes_roll_the_pods_without_exposing_the_secret():
    a = by_kind(manifests(params()), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    b = by_kind(manifests(params(database_url="postgresql://u:other@db/app")), "Deployment")["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert a["checksum/secret"] != b["checksum/secret"]
    assert a["checksum/config"] == b["checksum/config"]
    assert "pw" not in a["checksum/secret"]


def test_hpa_keeps_the_replica_count_it_chose():
    dep = by_kind(manifests(params(current_replicas=7)), "Deployment")
    assert dep["spec"]["replicas"] == 7
    p = params(current_replicas=7)
    p["hpa"] = {**p["hpa"], "enabled": False}
    assert by_kind(manifests(p), "Deployment")["spec"]["replicas"] == 3


def test_hpa_and_pdb():
    objs = manifests(params())
    hpa = by_kind(objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "free4allweb-green"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert [m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]] == [70, 80]
    assert hpa["behavior"] == BASE["hpa"]["behavior"]
    pdb = by_kind(objs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"]["colour"] == "green"


def test_release_never_moves_traffic():
    objs = manifests(params(live_colour="blue", weights={"blue": 90, "green": 10}))
    assert by_kind(objs, "Service", "free4allweb")["spec"]["selector"]["colour"] == "blue"
    refs = by_kind(objs, "HTTPRoute")["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("free4allweb-blue", 90), ("free4allweb-green", 10)]


def test_first_release_sends_everything_to_its_colour():
    objs = manifests(params())
    assert by_kind(objs, "Service", "free4allweb")["spec"]["selector"]["colour"] == "green"
    refs = by_kind(objs, "HTTPRoute")["spec"]["rules"][0]["backendRefs"]
    assert {r["name"]: r["weight"] for r in refs} == {"free4allweb-blue": 0, "free4allweb-green": 100}


def test_namespace_enforces_pod_security_and_route_can_be_off():
    p = params()
    p["route"] = {"enabled": False}
    objs = manifests(p)
    assert not [o for o in objs if o["kind"] == "HTTPRoute"]
    labels = by_kind(objs, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_colours_are_the_traffic_colours():
    from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import COLOURS

    assert k8s_app.COLOURS == COLOURS
