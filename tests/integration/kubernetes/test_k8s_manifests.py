"""The k8s_app role against the real API server: server-side dry run in check mode, changed=0 on
a rerun, bad input stopped before the cluster, and the objects the controllers act on."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException


def namespace_exists(k8s, name: str) -> bool:
    try:
        k8s.core.read_namespace(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def test_check_mode_is_a_server_side_dry_run_and_a_rerun_changes_nothing(k8s_cluster, namespace):
    k8s = k8s_cluster
    # 1. check mode on a cluster without the namespace: every manifest goes to the API server as
    #    a dry run (validation, defaulting, admission) and nothing is created
    dry = k8s.playbook("release.yml", namespace=namespace, check=True)
    assert dry.rc == 0, dry
    assert dry.changed and dry.changed > 0, dry
    assert not namespace_exists(k8s, namespace)

    # 2. the API server really judges them: an annotation key it rejects fails the dry run
    bad = k8s.playbook(
        "release.yml",
        "-e",
        json.dumps({"k8s_app_pod_annotations": {"not a valid key!": "x"}}),
        namespace=namespace,
        check=True,
    )
    assert bad.rc != 0, bad
    assert "Invalid value" in bad.output and "not a valid key!" in bad.output, bad
    assert not namespace_exists(k8s, namespace)

    # 3. a real run creates everything; a rerun reports changed=0
    first = k8s.playbook("release.yml", namespace=namespace)
    assert first.rc == 0, first
    assert first.changed > 0, first
    again = k8s.playbook("release.yml", namespace=namespace)
    assert again.rc == 0, again
    assert again.changed == 0, again

    # 4. check mode with a new image: reported as a change, validated, and not applied
    image = k8s.apps.read_namespaced_deployment("free4allweb-blue", namespace).spec.template.spec.containers[0].image
    new = k8s.playbook(
        "release.yml", "-e", "release_image=registry.example.com/free4allweb:1.0.1", namespace=namespace, check=True
    )
    assert new.rc == 0, new
    assert new.changed == 1, new
    after = k8s.apps.read_namespaced_deployment("free4allweb-blue", namespace).spec.template.spec.containers[0].image
    assert after == image == "registry.example.com/free4allweb:1.0.0"


def test_the_controllers_run_the_spec_workload(k8s_cluster, namespace):
    k8s = k8s_cluster
    run = k8s.playbook("release.yml", namespace=namespace)
    assert run.rc == 0, run

    dep = k8s.apps.read_namespaced_deployment("free4allweb-blue", namespace)
    assert dep.status.available_replicas == 3
    assert dep.spec.strategy.rolling_update.max_surge == 1
    assert dep.spec.strategy.rolling_update.max_unavailable == 0
    container = dep.spec.template.spec.containers[0]
    assert container.readiness_probe.http_get.path == "/ready"
    assert container.liveness_probe.http_get.path == "/health"
    assert container.resources.requests == {"cpu": "250m", "memory": "256Mi"}
    assert container.resources.limits == {"cpu": "500m", "memory": "512Mi"}
    db = next(e for e in container.env if e.name == "DATABASE_URL")
    assert db.value is None and db.value_from.secret_key_ref.name == "free4allweb-secrets"
    assert container.security_context.read_only_root_filesystem is True
    assert dep.spec.template.spec.security_context.run_as_non_root is True

    # pods spread over the three zones (topology spread + anti-affinity), by the real scheduler
    pods = k8s.core.list_namespaced_pod(namespace, label_selector="colour=blue").items
    zones = {k8s.core.read_node(p.spec.node_name).metadata.labels["topology.kubernetes.io/zone"] for p in pods}
    assert len(pods) == 3 and len(zones) == 3, [(p.metadata.name, p.spec.node_name) for p in pods]

    hpa = k8s.autoscaling.read_namespaced_horizontal_pod_autoscaler("free4allweb-blue", namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 10)
    targets = {m.resource.name: m.resource.target.average_utilization for m in hpa.spec.metrics}
    assert targets == {"cpu": 70, "memory": 80}
    assert hpa.spec.behavior.scale_down.stabilization_window_seconds == 300
    assert {p.type for p in hpa.spec.behavior.scale_up.policies} == {"Percent", "Pods"}

    pdb = k8s.policy.read_namespaced_pod_disruption_budget("free4allweb-blue", namespace)
    assert pdb.spec.max_unavailable == 1
    k8s.wait_for(
        "the disruption controller to count the pods",
        lambda: (
            (pdb_status := k8s.policy.read_namespaced_pod_disruption_budget("free4allweb-blue", namespace).status)
            and pdb_status.current_healthy == 3
        ),
    )

    # the namespace enforces the restricted Pod Security Standard: a root pod is refused
    with pytest.raises(ApiException) as refused:
        k8s.core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "root-pod"},
                "spec": {"containers": [{"name": "c", "image": "busybox:1", "securityContext": {"runAsUser": 0}}]},
            },
        )
    assert refused.value.status == 403 and "restricted" in refused.value.body

    secret = k8s.core.read_namespaced_secret("free4allweb-secrets", namespace)
    assert "test-only-password" not in run.output  # the URL itself is never logged
    assert secret.data["DATABASE_URL"]


BAD_INPUTS = {
    "zero-replicas-in-production": (
        {"free4allweb_environment": "production", "k8s_app_replicas": 0},
        "k8s_app_replicas is 0 in production",
    ),
    "image-without-tag": ({"release_image": "registry.example.com/free4allweb"}, "has no tag"),
    "limits-below-requests": (
        {
            "k8s_app_resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "250m", "memory": "1Gi"},
            }
        },
        "k8s_app_resources.limits.cpu (250m) is below k8s_app_resources.requests.cpu (500m)",
    ),
    "unknown-colour": ({"release_colour": "purple"}, "k8s_app_colour"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_before_the_cluster(k8s_cluster, namespace, case):
    extra, message = BAD_INPUTS[case]
    run = k8s_cluster.playbook("release.yml", "-e", json.dumps(extra), namespace=namespace)
    assert run.rc != 0, run
    assert message in run.output, run
    assert run.changed == 0, run
    assert not namespace_exists(k8s_cluster, namespace)
