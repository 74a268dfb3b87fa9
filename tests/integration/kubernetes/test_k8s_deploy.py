"""playbooks/deploy.yml and rollback.yml on the kubernetes platform, against the real API server
and controllers: the same flow as every platform, with the k8s_app release adapter, the Service /
HTTPRoute router, the Lease lock and the ConfigMap record. The canary judge asks a real Prometheus
that scrapes stand-ins of the pods (kwok's pods serve no metrics): tests/support/app_metrics.py."""

from __future__ import annotations

import json
import threading

from tests.support.k8s_harness import ROOT

# kwok's stage config (tests/harness/kubernetes/cluster.py) keeps pods with this annotation unready
NEVER_READY_ANNOTATION = "kwok.free4allweb.test/readiness"

DEPLOY = "playbooks/deploy.yml"
ROLLBACK = "playbooks/rollback.yml"


def only_colour(k8s, namespace: str, colour: str, count: int = 3) -> bool:
    """The stable Service's Endpoints list exactly `count` Ready pods, all of `colour`."""
    pods = k8s.endpoint_pods(namespace)
    return (
        len(pods["ready"]) == count and not pods["not_ready"] and k8s.pod_colours(namespace, pods["ready"]) == {colour}
    )


def test_blue_green_deploy_switch_and_rollback(k8s_cluster, namespace):
    k8s = k8s_cluster
    # nothing was ever released here: a rollback has nowhere to go, says so, and records the attempt
    nowhere = k8s.playbook(ROLLBACK, namespace=namespace)
    assert nowhere.rc != 0
    assert "nothing to roll back to" in nowhere.output, nowhere
    [(attempt, _)] = k8s.records(namespace)
    assert (attempt["kind"], attempt["result"]) == ("rollback", "failed")
    assert "nothing to roll back to" in attempt["message"]

    v1 = k8s.playbook(DEPLOY, "-e", "app_version=1.0.0", namespace=namespace)
    assert v1.rc == 0, v1
    assert k8s.selector_colour(namespace) == "blue"
    k8s.wait_for("blue endpoints", lambda: only_colour(k8s, namespace, "blue"))

    v2 = k8s.playbook(DEPLOY, "-e", "app_version=2.0.0", namespace=namespace)
    assert v2.rc == 0, v2
    # the new colour became Available through the real Deployment/ReplicaSet controllers + kwok
    green = k8s.apps.read_namespaced_deployment("free4allweb-green", namespace)
    available = {c.type: c.status for c in green.status.conditions}
    assert available["Available"] == "True" and green.status.available_replicas == 3
    assert green.spec.template.metadata.labels["app.kubernetes.io/version"] == "2.0.0"
    # the selector switched, and the Endpoints list only green pods (the endpoints controller)
    assert k8s.selector_colour(namespace) == "green"
    assert only_colour(k8s, namespace, "green"), k8s.endpoint_pods(namespace)
    assert k8s.route_weights(namespace) == {"blue": 0, "green": 100}
    # blue still runs 1.0.0, ready for a rollback
    blue = k8s.apps.read_namespaced_deployment("free4allweb-blue", namespace)
    assert blue.status.ready_replicas == 3
    assert blue.spec.template.metadata.labels["app.kubernetes.io/version"] == "1.0.0"

    # a dry run of the rollback says what it would do and moves nothing
    dry = k8s.playbook(ROLLBACK, namespace=namespace, check=True)
    assert dry.rc == 0, dry
    assert k8s.selector_colour(namespace) == "green"
    assert k8s.route_weights(namespace) == {"blue": 0, "green": 100}

    back = k8s.playbook(ROLLBACK, namespace=namespace)
    assert back.rc == 0, back
    assert k8s.selector_colour(namespace) == "blue"
    assert k8s.route_weights(namespace) == {"blue": 100, "green": 0}
    k8s.wait_for("blue endpoints after the rollback", lambda: only_colour(k8s, namespace, "blue"), timeout=5)
    # recorded after the switch: which release came back, and when the module decided and applied
    rec, _ = k8s.records(namespace)[-1]
    assert (rec["kind"], rec["result"], rec["version"], rec["to_colour"]) == ("rollback", "succeeded", "1.0.0", "blue")
    details = rec["details"]
    assert float(details["requested_at"]) <= float(details["switch_decided_at"]) <= float(details["switch_applied_at"])


def test_a_release_that_never_becomes_ready_blocks_the_switch(k8s_cluster, namespace):
    k8s = k8s_cluster
    v1 = k8s.playbook(DEPLOY, "-e", "app_version=1.0.0", namespace=namespace)
    assert v1.rc == 0, v1

    # kwok's stage config keeps these pods Running but failing readiness
    bad = k8s.playbook(
        DEPLOY,
        "-e",
        "app_version=2.0.0",
        "-e",
        json.dumps({"k8s_app_pod_annotations": {NEVER_READY_ANNOTATION: "fail"}, "k8s_app_wait_timeout": 8}),
        namespace=namespace,
    )
    assert bad.rc != 0, bad
    assert "did not complete its rollout" in bad.output, bad
    assert "readiness probe failed" in bad.output, bad
    assert "Traffic is on blue (1.0.0)" in bad.output, bad
    # the Service still points at the old colour, and its endpoints are the old pods
    assert k8s.selector_colour(namespace) == "blue"
    assert k8s.route_weights(namespace) == {"blue": 100, "green": 0}
    assert only_colour(k8s, namespace, "blue"), k8s.endpoint_pods(namespace)
    # the green pods exist and are not Ready: it was the readiness, not a missing Deployment
    green = k8s.core.list_namespaced_pod(namespace, label_selector="colour=green").items
    assert green and all(next(c.status for c in p.status.conditions if c.type == "Ready") == "False" for p in green)


def canary(k8s, namespace, metrics, version, steps, **extra):
    request = {
        "app_version": version,
        "deploy_strategy": "canary",
        "canary_steps": steps,
        "free4allweb_prometheus_url": metrics.url,
        **extra,
    }
    return k8s.playbook(DEPLOY, "-e", json.dumps(request), namespace=namespace, timeout=600)


def test_an_unhealthy_canary_sends_traffic_back(k8s_cluster, namespace, app_metrics):
    k8s = k8s_cluster
    v1 = k8s.playbook(DEPLOY, "-e", "app_version=1.0.0", namespace=namespace)
    assert v1.rc == 0, v1

    def break_a_canary_pod():
        # once the canary holds its first step, one of its pods stops being Ready (as when its
        # readiness probe starts failing) while the judge watches; the gate after the judge sees
        # it. kwok leaves a Running pod's status alone
        k8s.wait_for("the first canary step", lambda: k8s.route_weights(namespace) == {"blue": 75, "green": 25}, 120)
        pod = k8s.core.list_namespaced_pod(namespace, label_selector="colour=green").items[0]
        conditions = [
            {"type": c.type, "status": "False" if c.type == "Ready" else c.status} for c in pod.status.conditions
        ]
        k8s.core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"conditions": conditions}})

    breaker = threading.Thread(target=break_a_canary_pod, daemon=True)
    breaker.start()
    result = canary(k8s, namespace, app_metrics, "2.0.0", [25, 100])
    breaker.join(timeout=5)
    assert result.rc != 0, result
    assert "the green colour is unhealthy at 25 %" in result.output, result
    assert "Traffic is on blue (1.0.0)" in result.output, result
    assert k8s.route_weights(namespace) == {"blue": 100, "green": 0}
    assert k8s.selector_colour(namespace) == "blue"


def test_the_dev_inventory_releases_one_small_replica(k8s_cluster, namespace):
    """inventories/dev on a cluster: the seed's sizes (1 replica at 0.5 CPU / 512 Mi, no HPA)."""
    k8s = k8s_cluster
    dev = ROOT / "inventories" / "dev"
    run = k8s.playbook(
        DEPLOY,
        "-e",
        "app_version=1.0.0",
        "-e",
        "k8s_app_database_url=postgresql://free4allweb:dev-only@db:5432/free4allweb",
        namespace=namespace,
        inventory=dev,
    )
    assert run.rc == 0, run
    [dep] = k8s.apps.list_namespaced_deployment(namespace, label_selector="colour=blue").items
    container = dep.spec.template.spec.containers[0]
    assert dep.spec.replicas == 1
    assert container.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert container.resources.limits == {"cpu": "500m", "memory": "512Mi"}
    assert k8s.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items == []
    assert only_colour(k8s, namespace, "blue", count=1)
