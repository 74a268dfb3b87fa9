"""The aws platform's end-to-end tests: the real playbooks against an emulated AWS.

The emulated staging: AWS is one moto server per session (tests/support/moto_server.py on
127.0.0.1, a port below 32768), and the EKS cluster is the session's Kubernetes harness
(`k8s_cluster`, tests/integration/conftest.py, shared with the kubernetes tests) with what EKS
adds to a cluster (tests/support/eks_emulation.py: the aws-node DaemonSet, the SecurityGroupPolicy
CRD) and an emulated AWS Load Balancer Controller that registers the pods behind each
TargetGroupBinding in moto's target groups. The playbooks run with the staging inventory, AWS
pointed at moto and `free4allweb_kubeconfig` at the harness (instead of the endpoint moto
invents for the EKS cluster).

The staging stack is provisioned once, by the first test that needs it; the test files run in
the order of their names and build on each other's state:
provision -> cluster workload -> bad input -> ALB switching -> rerun and check mode -> DR region.

Fixtures for tests that build on the emulated staging:
- `moto`: the Moto server (`.client(service, region)` gives boto3 clients on it).
- `eks_cluster`: the harness as the EKS cluster (a tests.support.k8s_harness.K8s).
- `lb_controller`: the running LoadBalancerControllerEmulator (`wait_passes()` to let it catch up).
- `staging_vars`: the extra vars every run gets (certificates, kubeconfigs, the stand-in chart).
- `play(playbook, inventory=STAGING, extra_vars=None, check=False, skip_tags=(), verbose=0)`:
  ansible-playbook against moto and the harness; returns a PlaybookRun (rc, output, recap,
  changed_tasks, calls moto received, mutating_calls).
- `provisioned`: the cold provision of staging (PlaybookRun).
"""

from __future__ import annotations

import os

import pytest

from tests.support.aws_moto import DR, PRIMARY, ROOT, STAGING, VENV_BIN, Moto, PlaybookRun, run_playbook
from tests.support.eks_emulation import LB_CONTROLLER_CHART, LoadBalancerControllerEmulator, install_eks_standins


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = Moto(ROOT / ".cache" / "aws-tests" / "moto.log", region=PRIMARY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def eks_cluster(k8s_cluster):
    """The session's Kubernetes harness with what EKS puts in every cluster (aws-node, the
    SecurityGroupPolicy CRD): the emulated staging's EKS cluster."""
    install_eks_standins(k8s_cluster)
    return k8s_cluster


@pytest.fixture(scope="session")
def lb_controller(moto, eks_cluster):
    """The AWS Load Balancer Controller's part that matters here: TargetGroupBinding -> targets."""
    emulator = LoadBalancerControllerEmulator(eks_cluster.kubeconfig, lambda: moto.client("elbv2")).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def staging_vars(moto, eks_cluster, tmp_path_factory):
    """What a real staging inventory gets from outside: the ACM certificates (issued in ACM
    before the first provision) and where to write the kubeconfig; and what the emulation
    replaces: the cluster the workload goes to (the harness, not moto's invented EKS endpoint)
    and the load balancer controller's chart (a local stand-in: no chart repository is reachable)."""
    certs = {
        region: moto.client("acm", region).request_certificate(DomainName="api.staging.free4allweb.example")[
            "CertificateArn"
        ]
        for region in (PRIMARY, DR)
    }
    return {
        "free4allweb_aws_certificate_arn": certs[PRIMARY],
        "free4allweb_aws_dr_certificate_arn": certs[DR],
        "aws_eks_kubeconfig_path": str(tmp_path_factory.mktemp("kube") / "staging.yaml"),
        "free4allweb_kubeconfig": str(eks_cluster.kubeconfig),
        "aws_eks_workload_lbc_chart_ref": str(LB_CONTROLLER_CHART),
        "aws_eks_workload_lbc_chart_repo_url": "",
    }


@pytest.fixture(scope="session")
def play(moto, eks_cluster, lb_controller, staging_vars):
    """Run a playbook against moto and the harness with the staging inputs; returns a PlaybookRun.
    helm comes from the harness's bindir."""
    path = f"{eks_cluster.bindir}:{VENV_BIN}:{os.environ.get('PATH', '')}"

    def run(playbook: str, inventory: str = STAGING, extra_vars: dict | None = None, **kwargs) -> PlaybookRun:
        env = {"PATH": path, **kwargs.pop("env", {})}
        return run_playbook(moto, playbook, inventory, {**staging_vars, **(extra_vars or {})}, env=env, **kwargs)

    return run


@pytest.fixture(scope="session")
def provisioned(play) -> PlaybookRun:
    """The cold provision of staging (verbose, so the secrets test greps module results too)."""
    run = play("playbooks/aws/provision.yml", verbose=1)
    if run.rc != 0:
        pytest.fail(f"provisioning staging failed (rc {run.rc}):\n{run.tail()}")
    return run
