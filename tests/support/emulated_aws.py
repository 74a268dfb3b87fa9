"""An emulated AWS environment (staging or production): the inventory's settings with AWS pointed
at a moto server and the EKS cluster played by a Kubernetes harness, with what EKS adds to a
cluster and an emulated AWS Load Balancer Controller (tests/support/eks_emulation.py).

tests/integration/aws/conftest.py builds one per environment: staging on the session's moto and
shared harness, production on a moto server and a harness of its own (another account, another
cluster: nothing of one environment is visible in the other). The playbooks run exactly as
against AWS, with one inventory-level difference: `free4allweb_kubeconfig` names the harness.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.aws_moto import BACKGROUND_ACCESS_KEY, DR, PRIMARY, VENV_BIN, Moto, PlaybookRun, run_playbook
from tests.support.eks_emulation import LB_CONTROLLER_CHART, LoadBalancerControllerEmulator, install_eks_standins

#: environment -> (inventory, name prefix of its resources, its public DNS zone)
ENVIRONMENTS = {
    "staging": ("inventories/staging", "free4allweb-staging", "staging.free4allweb.example"),
    "production": ("inventories/production", "free4allweb-production", "free4allweb.example"),
}


@dataclass
class EmulatedEnvironment:
    """One environment: `moto`, `cluster` (a tests.support.k8s_harness.K8s), `lb_controller`, the
    extra vars every run gets, and `play()`. `provisioned` is set once provision has run."""

    name: str
    moto: Moto
    cluster: object
    lb_controller: LoadBalancerControllerEmulator
    extra_vars: dict = field(default_factory=dict)
    provisioned: PlaybookRun | None = None

    @property
    def inventory(self) -> str:
        return ENVIRONMENTS[self.name][0]

    @property
    def prefix(self) -> str:
        """Name of the VPC, cluster, database, load balancer...; target groups <prefix>-<colour>."""
        return ENVIRONMENTS[self.name][1]

    @property
    def zone(self) -> str:
        return ENVIRONMENTS[self.name][2]

    def play(self, playbook: str, extra_vars: dict | None = None, **kwargs) -> PlaybookRun:
        """ansible-playbook with this environment's inventory against its moto and harness (helm
        from the harness's bindir); kwargs as run_playbook (check, skip_tags, verbose, env...)."""
        env = {"PATH": f"{self.cluster.bindir}:{VENV_BIN}:{os.environ.get('PATH', '')}", **kwargs.pop("env", {})}
        return run_playbook(
            self.moto, playbook, self.inventory, {**self.extra_vars, **(extra_vars or {})}, env=env, **kwargs
        )

    def provision(self, **kwargs) -> PlaybookRun:
        """The cold provision (verbose, so secret checks can grep module results too); fails loudly."""
        run = self.play("playbooks/aws/provision.yml", verbose=1, **kwargs)
        if run.rc != 0:
            raise AssertionError(f"provisioning {self.name} failed (rc {run.rc}):\n{run.tail()}")
        self.provisioned = run
        return run


def environment_vars(name: str, moto: Moto, cluster, workdir: Path) -> dict:
    """What a real inventory gets from outside (the ACM certificates, issued before the first
    provision; where aws_eks writes its kubeconfig) and what the emulation replaces (the cluster
    the workload goes to, the load balancer controller's chart)."""
    domain = f"api.{ENVIRONMENTS[name][2]}"
    certs = {
        region: moto.client("acm", region).request_certificate(DomainName=domain)["CertificateArn"]
        for region in (PRIMARY, DR)
    }
    return {
        "free4allweb_aws_certificate_arn": certs[PRIMARY],
        "free4allweb_aws_dr_certificate_arn": certs[DR],
        "aws_eks_kubeconfig_path": str(workdir / f"{name}.yaml"),
        "free4allweb_kubeconfig": str(cluster.kubeconfig),
        "aws_eks_workload_lbc_chart_ref": str(LB_CONTROLLER_CHART),
        "aws_eks_workload_lbc_chart_repo_url": "",
    }


def emulate(name: str, moto: Moto, cluster, workdir: Path) -> EmulatedEnvironment:
    """Make `cluster` look like EKS and start the LB controller emulator against `moto`; the
    caller stops `env.lb_controller` (and its moto and cluster)."""
    install_eks_standins(cluster)
    # its own access key: its calls are not the playbook's (see BACKGROUND_ACCESS_KEY)
    controller = LoadBalancerControllerEmulator(
        cluster.kubeconfig, lambda: moto.client("elbv2", access_key=BACKGROUND_ACCESS_KEY)
    ).start()
    return EmulatedEnvironment(name, moto, cluster, controller, environment_vars(name, moto, cluster, workdir))
