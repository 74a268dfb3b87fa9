"""roles/k8s_monitoring: Helm install and upgrade of the project's chart on the real API server,
with the alert rules identical to the hosts platform's single source."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]

RULES = ROOT / "roles" / "monitoring" / "files" / "free4allweb.rules.yml"
CHART = ROOT / "roles" / "k8s_monitoring" / "files" / "chart"


def helm(k8s, *args: str) -> str:
    out = subprocess.run(
        [str(k8s.bindir / "helm"), *args], env=k8s.env(), capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout


def test_chart_renders_the_rules_file_verbatim(k8s_cluster):
    rendered = helm(k8s_cluster, "template", "mon", str(CHART), "--set-file", f"rules={RULES}")
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    rules = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mon-rules")
    assert rules["data"]["free4allweb.rules.yml"] == RULES.read_text()
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mon-prometheus")
    prometheus = yaml.safe_load(config["data"]["prometheus.yml"])
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    # the app's pods get the labels the rules group by (job, colour, slot)
    app = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "free4allweb-app")
    assert {r.get("target_label") for r in app["relabel_configs"]} >= {"colour", "slot", "host"}


def test_helm_install_and_upgrade_keep_the_rules_identical(k8s_cluster, namespace):
    k8s = k8s_cluster
    args = ("-e", f"k8s_monitoring_namespace={namespace}", "-e", f"k8s_monitoring_app_namespace={namespace}-app")

    install = k8s.playbook("monitoring.yml", *args, namespace=namespace)
    assert install.rc == 0, install
    assert install.changed == 2, install  # the app namespace and the release
    again = k8s.playbook("monitoring.yml", *args, namespace=namespace)
    assert again.rc == 0 and again.changed == 0, again

    releases = json.loads(helm(k8s, "list", "-n", namespace, "-o", "json"))
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [("free4allweb-monitoring", "1", "deployed")]
    for name in ("free4allweb-monitoring-prometheus", "free4allweb-monitoring-alertmanager"):
        dep = k8s.apps.read_namespaced_deployment(name, namespace)
        assert dep.status.available_replicas == 1, name

    def installed_rules() -> str:
        return k8s.core.read_namespaced_config_map("free4allweb-monitoring-rules", namespace).data[
            "free4allweb.rules.yml"
        ]

    assert installed_rules() == RULES.read_text()

    upgrade = k8s.playbook(
        "monitoring.yml", *args, "-e", "k8s_monitoring_prometheus_retention=30d", namespace=namespace
    )
    assert upgrade.rc == 0 and upgrade.changed == 1, upgrade
    releases = json.loads(helm(k8s, "list", "-n", namespace, "-o", "json"))
    assert [(r["revision"], r["status"]) for r in releases] == [("2", "deployed")]
    dep = k8s.apps.read_namespaced_deployment("free4allweb-monitoring-prometheus", namespace)
    assert "--storage.tsdb.retention.time=30d" in dep.spec.template.spec.containers[0].args
    assert dep.status.available_replicas == 1 and dep.status.updated_replicas == 1
    assert installed_rules() == RULES.read_text()
