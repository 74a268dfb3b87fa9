#!/usr/bin/env python3
"""A real Kubernetes control plane on 127.0.0.1 for the tests: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake nodes and pod status).

The binaries come from `build` next to this file (pinned Go modules, cached under .cache/).
Everything listens on 127.0.0.1 only, on ports below 32768 (the ephemeral range starts there).
The real controllers validate, default, reconcile and roll out objects; kwok plays the kubelets:
it marks fake nodes Ready and moves scheduled pods to Running/Ready, except pods annotated
`kwok.free4allweb.test/readiness: fail`, which it starts but never makes Ready (a readiness probe
that keeps failing).

Use from Python (the pytest fixture) or from the shell (Molecule, the benchmark):

    cluster.py up --dir DIR      # start; prints the kubeconfig path, state in DIR/state.json
    cluster.py down --dir DIR    # stop what `up` started (by the pids it recorded)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
HOST = "127.0.0.1"
#: the annotation that makes kwok keep a pod's readiness failing
NEVER_READY_ANNOTATION = "kwok.free4allweb.test/readiness"
#: fake nodes: name -> zone. Two per zone, so spreading over nodes and zones both mean something.
NODES = {f"kwok-node-{i}": f"test-zone-{'abc'[i % 3]}" for i in range(6)}
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"


class HarnessError(RuntimeError):
    pass


def build() -> Path:
    """Build (or find cached) binaries; returns the directory holding them."""
    out = subprocess.run([str(HERE / "build")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_ports(count: int, start: int = 21000, stop: int = 32000) -> list[int]:
    """`count` ports on 127.0.0.1 nobody listens on, below the ephemeral range."""
    ports: list[int] = []
    port = start + (os.getpid() * 7) % 2000  # spread concurrent harnesses apart
    while len(ports) < count:
        if port >= stop:
            port = start
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
                ports.append(port)
            except OSError:
                pass
        port += 1
    return ports


def write_pki(pki: Path) -> None:
    """A CA and one admin certificate (system:masters) that also serves the API on 127.0.0.1;
    the admin key doubles as the service-account signing key, as kwokctl does."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    if str(ROOT) not in sys.path:  # run as a script (molecule), the project root is not on the path
        sys.path.insert(0, str(ROOT))
    from tests.support.pki import TestCA

    pki.mkdir(parents=True, exist_ok=True)
    ca = TestCA("free4allweb-test-ca")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin"),
        ]
    )
    cert, key = ca.issue(
        subject, dns=["localhost", "kubernetes", "kubernetes.default.svc"], ips=[HOST, "10.96.0.1"], client=True
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.TraditionalOpenSSL  # "EC PRIVATE KEY": what kube-apiserver reads
    none = serialization.NoEncryption()
    (pki / "ca.crt").write_bytes(ca.cert.public_bytes(pem))
    (pki / "ca.key").write_bytes(ca.key.private_bytes(pem, pkcs8, none))
    (pki / "admin.crt").write_bytes(cert.public_bytes(pem))
    (pki / "admin.key").write_bytes(key.private_bytes(pem, pkcs8, none))
    for name in ("ca.key", "admin.key"):
        (pki / name).chmod(0o600)


def kubeconfig(server: str, pki: Path) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "free4allweb-test", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
            }
        ],
        "contexts": [{"name": "free4allweb-test", "context": {"cluster": "free4allweb-test", "user": "admin"}}],
        "current-context": "free4allweb-test",
    }


def kwok_stages(assets: Path) -> list[dict]:
    """kwok's own "fast" stages, with pod-ready skipping pods that must keep failing readiness,
    plus a stage that starts those pods but leaves them not Ready."""
    stages = []
    for name in ("node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete"):
        stages.append(yaml.safe_load((assets / "stages" / f"{name}.yaml").read_text()))
    never = f'.metadata.annotations["{NEVER_READY_ANNOTATION}"]'
    ready = next(s for s in stages if s["metadata"]["name"] == "pod-ready")
    ready["spec"]["selector"]["matchExpressions"].append({"key": never, "operator": "DoesNotExist"})
    stages.append(
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "pod-readiness-failing"},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": {
                    "matchExpressions": [
                        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                        {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                        {"key": never, "operator": "In", "values": ["fail"]},
                    ]
                },
                "next": {
                    "statusTemplate": NOT_READY_STATUS,
                },
            },
        }
    )
    return stages


NOT_READY_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
  reason: ContainersNotReady
  message: "readiness probe failed: HTTP probe failed with statuscode: 503"
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
  reason: ContainersNotReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
{{ $hostIPs := NodeIPsWith .spec.nodeName }}
{{ with $hostIPs }}
hostIP: {{ index . 0 | Quote }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""


def fake_node(name: str, zone: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
                "topology.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": "test-region",
            },
        },
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        },
    }


class Cluster:
    """One control plane. `start()` returns once the API answers, the controllers and the
    scheduler are healthy and every fake node is Ready."""

    def __init__(self, workdir: Path, bindir: Path | None = None):
        self.dir = Path(workdir)
        self.bindir = Path(bindir) if bindir else None
        self.procs: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, int] = {}
        self.ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.ports['apiserver']}"

    # -- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - kept by the child
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        self.pids[name] = proc.pid
        self._save()

    def _save(self) -> None:
        state = {"pids": self.pids, "ports": self.ports, "kubeconfig": str(self.kubeconfig), "timings": self.timings}
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    def _wait(self, what: str, check, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise HarnessError(f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail}")
            try:
                if check():
                    return
            except Exception as exc:
                last = exc
            time.sleep(0.2)
        raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}: {last}")

    def _get(self, url: str, client_cert: bool = True) -> tuple[int, str]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            ctx.load_cert_chain(self.dir / "pki" / "admin.crt", self.dir / "pki" / "admin.key")
        with urllib.request.urlopen(url, timeout=2, context=ctx if url.startswith("https") else None) as r:
            return r.status, r.read().decode()

    def start(self) -> Cluster:
        t0 = time.monotonic()
        if self.bindir is None:
            self.bindir = build()
        self.timings["build_or_cache"] = round(time.monotonic() - t0, 2)
        assets = self.bindir.parent / "assets"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        t1 = time.monotonic()
        write_pki(self.dir / "pki")
        pki = self.dir / "pki"
        names = ["etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=False))
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig(self.server, pki)))
        b = self.bindir
        etcd_url = f"http://{HOST}:{self.ports['etcd']}"
        self._spawn(
            "etcd",
            [
                str(b / "etcd"),
                "--name=node0",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{HOST}:{self.ports['etcd_peer']}",
                f"--initial-advertise-peer-urls=http://{HOST}:{self.ports['etcd_peer']}",
                f"--initial-cluster=node0=http://{HOST}:{self.ports['etcd_peer']}",
                "--auto-compaction-retention=1",
                "--unsafe-no-fsync=true",  # a throwaway test store: durability buys nothing here
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: self._get(f"{etcd_url}/health", False)[0] == 200)
        self.timings["etcd"] = round(time.monotonic() - t1, 2)
        self._spawn(
            "kube-apiserver",
            [
                str(b / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki / 'admin.crt'}",
                f"--tls-private-key-file={pki / 'admin.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'admin.key'}",
                f"--service-account-signing-key-file={pki / 'admin.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver /readyz", lambda: self._get(f"{self.server}/readyz")[0] == 200)
        self.timings["apiserver"] = round(time.monotonic() - t1, 2)
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            f"--bind-address={HOST}",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--v=1",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(b / "kube-controller-manager"),
                *common,
                f"--secure-port={self.ports['controller_manager']}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'admin.key'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--use-service-account-credentials=false",
                # the HPA controller reconciles every 2 s instead of 15 s, so tests see it act
                "--horizontal-pod-autoscaler-sync-period=2s",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [str(b / "kube-scheduler"), *common, f"--secure-port={self.ports['scheduler']}"],
        )
        (self.dir / "kwok.yaml").write_text(yaml.safe_dump_all(kwok_stages(assets)))
        self._spawn(
            "kwok",
            [
                str(b / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.dir / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address={HOST}:{self.ports['kwok']}",
                f"--node-ip={HOST}",
                f"--node-port={self.ports['kwok']}",
                f"--cidr={POD_CIDR}",
                "--node-lease-duration-seconds=40",
                f"--tls-cert-file={pki / 'admin.crt'}",
                f"--tls-private-key-file={pki / 'admin.key'}",
            ],
        )
        for name, port in (("kube-controller-manager", "controller_manager"), ("kube-scheduler", "scheduler")):
            url = f"https://{HOST}:{self.ports[port]}/healthz"
            self._wait(f"{name} /healthz", lambda url=url: self._get(url, False)[0] == 200)
        self._create_nodes()
        self.timings["start"] = round(time.monotonic() - t1, 2)
        self._save()
        return self

    def _create_nodes(self) -> None:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        for name, zone in NODES.items():
            api.create_node(fake_node(name, zone))

        def all_ready():
            nodes = api.list_node().items
            ready = [
                n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            ]
            return len(ready) == len(NODES)

        self._wait("fake nodes Ready (kwok)", all_ready)

        # the controller-manager creates the default ServiceAccount: pods cannot be made before it
        def default_sa():
            return api.read_namespaced_service_account("default", "default") is not None

        self._wait("the default ServiceAccount (controller-manager)", default_sa)

    def install_gateway_api(self) -> None:
        """The Gateway API's standard CRDs (HTTPRoute carries the canary weights), established."""
        from kubernetes import client, config

        ext = client.ApiextensionsV1Api(config.new_client_from_config(str(self.kubeconfig)))
        for path in sorted((self.bindir.parent / "assets" / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    ext.create_custom_resource_definition(doc)

        def established():
            crd = ext.read_custom_resource_definition("httproutes.gateway.networking.k8s.io")
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        self._wait("the HTTPRoute CRD to be established", established)

    def stop(self) -> None:
        stop_pids(self.pids)
        self.procs.clear()


def stop_pids(pids: dict[str, int], timeout: float = 10.0) -> None:
    """SIGTERM each process group we started (newest first), then SIGKILL what is left."""
    for pid in reversed(list(pids.values())):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (the CLI case): poll for its exit
                done = 0 if _alive(pid) else pid
            if done:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); its state says Z
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build", "up", "down"])
    parser.add_argument("--dir", type=Path, help="work directory of this cluster (state, logs, kubeconfig)")
    parser.add_argument("--gateway-api", action="store_true", help="also install the Gateway API CRDs")
    args = parser.parse_args(argv)
    if args.action == "build":
        print(build())
        return 0
    if args.dir is None:
        parser.error("--dir is required")
    if args.action == "up":
        cluster = Cluster(args.dir)
        try:
            cluster.start()
            if args.gateway_api:
                cluster.install_gateway_api()
        except Exception:
            cluster.stop()
            raise
        print(cluster.kubeconfig)
        return 0
    state_file = args.dir / "state.json"
    if state_file.exists():
        stop_pids(json.loads(state_file.read_text())["pids"])
        state_file.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
