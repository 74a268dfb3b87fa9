"""The Kubernetes test harness as the tests use it: a running control plane with its clients
and a playbook runner (`K8s`), and a finished ansible-playbook run (`Run`).

tests/integration/conftest.py starts one harness per pytest session (fixture `k8s_cluster`);
the kubernetes tests and the aws tests (where it plays the EKS cluster) share it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "harness" / "kubernetes"
INVENTORY = ROOT / "inventories" / "kubernetes-test"
PLAYBOOKS = ROOT / "tests" / "integration" / "kubernetes" / "playbooks"
if str(HARNESS) not in sys.path:
    sys.path.insert(0, str(HARNESS))

from cluster import Cluster  # noqa: E402


class K8s:
    """The running cluster, with the clients and the playbook runner the tests use."""

    def __init__(self, cluster: Cluster, workdir: Path):
        from kubernetes import client, config

        self.cluster = cluster
        self.kubeconfig = cluster.kubeconfig
        self.bindir = cluster.bindir
        self.workdir = workdir
        self.api = config.new_client_from_config(str(self.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.policy = client.PolicyV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            PATH=f"{self.bindir}:{Path(sys.executable).parent}:{env.get('PATH', '')}",
        )
        return env

    def playbook(
        self,
        playbook: str | Path,
        *args: str,
        namespace: str,
        check: bool = False,
        timeout: int = 300,
        inventory: str | Path = INVENTORY,
    ):
        """Run a playbook against the kubernetes-test inventory (or `inventory`) in `namespace`;
        returns a Run."""
        path = Path(playbook)
        if not path.is_absolute():
            path = (PLAYBOOKS / path) if (PLAYBOOKS / path).exists() else ROOT / path
        cmd = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(path),
            "-i",
            str(inventory),
            "-e",
            f"k8s_namespace={namespace}",
            *args,
        ]
        if check:
            cmd.append("--check")
        started = time.monotonic()
        proc = subprocess.run(
            cmd, cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        return Run(proc, time.monotonic() - started)

    # -- reading the cluster ----------------------------------------------------------------
    def selector_colour(self, namespace: str, service: str = "free4allweb") -> str | None:
        return (self.core.read_namespaced_service(service, namespace).spec.selector or {}).get("colour")

    def endpoint_pods(self, namespace: str, service: str = "free4allweb") -> dict[str, list[str]]:
        """Ready and not-ready pod names behind a Service, from its Endpoints object."""
        ep = self.core.read_namespaced_endpoints(service, namespace)
        ready, not_ready = [], []
        for subset in ep.subsets or []:
            ready += [a.target_ref.name for a in subset.addresses or []]
            not_ready += [a.target_ref.name for a in subset.not_ready_addresses or []]
        return {"ready": sorted(ready), "not_ready": sorted(not_ready)}

    def pod_colours(self, namespace: str, names: list[str]) -> set[str]:
        return {self.core.read_namespaced_pod(n, namespace).metadata.labels["colour"] for n in names}

    def route_weights(self, namespace: str, route: str = "free4allweb") -> dict[str, int]:
        obj = self.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", route
        )
        refs = obj["spec"]["rules"][0]["backendRefs"]
        return {r["name"].rsplit("-", 1)[-1]: r["weight"] for r in refs}

    def records(self, namespace: str) -> list[tuple[dict, list]]:
        """The namespace's deployment records (the ConfigMap store of deploy_record) and their
        steps, oldest first."""
        maps = self.core.list_namespaced_config_map(namespace, label_selector="free4allweb.io/record=deployment").items
        out = [(json.loads(m.data["deployment.json"]), json.loads(m.data.get("steps.json") or "[]")) for m in maps]
        return sorted(out, key=lambda r: r[0]["id"])

    def wait_for(self, what: str, fn, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last value {last!r}")


class Run:
    RECAP = re.compile(
        r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.MULTILINE
    )

    def __init__(self, proc: subprocess.CompletedProcess, seconds: float):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds
        m = self.RECAP.findall(self.stdout)
        self.changed = sum(int(x[2]) for x in m) if m else None
        self.failed = sum(int(x[4]) for x in m) if m else None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return f"Run(rc={self.rc}, changed={self.changed}, {self.seconds:.1f}s)\n{self.output[-6000:]}"


def start_cluster(workdir: Path) -> K8s:
    """Start a harness in `workdir` with the Gateway API CRDs; the caller stops `k8s.cluster`."""
    cluster = Cluster(workdir)
    try:
        cluster.start()
        cluster.install_gateway_api()
    except BaseException:
        cluster.stop()
        raise
    return K8s(cluster, workdir)
