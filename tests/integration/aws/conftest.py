"""The aws platform's end-to-end tests: the real playbooks against an emulated AWS.

The emulated staging: AWS is one moto server per session (tests/support/moto_server.py on
127.0.0.1, a port below 32768), and the EKS cluster is the session's Kubernetes harness
(`k8s_cluster`, tests/integration/conftest.py, shared with the kubernetes tests) with what EKS
adds to a cluster (the aws-node DaemonSet, the SecurityGroupPolicy CRD) and an emulated AWS Load
Balancer Controller that registers the pods behind each TargetGroupBinding in moto's target
groups (tests/support/eks_emulation.py). The playbooks run with the staging inventory, AWS
pointed at moto and `free4allweb_kubeconfig` at the harness (instead of the endpoint moto
invents for the EKS cluster). The emulated production is the same with the production
inventory, on a moto server and a harness of its own, started only when a test asks for it.

The staging stack is provisioned once, by the first test that needs it; the test files run in
the order of their names and build on each other's state:
provision -> cluster workload -> bad input -> ALB switching -> rerun and check mode -> DR region.

Fixtures for tests that build on the emulated environments:
- `staging` (here), `production` (tests/integration/conftest.py: test_rollout_everywhere.py uses it
  too): a tests.support.emulated_aws.EmulatedEnvironment, provisioned
  (`.moto`, `.cluster`, `.lb_controller`, `.prefix`, `.inventory`, `.extra_vars`, `.provisioned`,
  `.play(playbook, extra_vars=None, check=False, skip_tags=(), verbose=0)`).
- `emulated_env`: both of them, one after the other (parametrized; production last).
- staging's parts, as before: `moto` (`.client(service, region)`), `eks_cluster` (the harness as
  the EKS cluster, a tests.support.k8s_harness.K8s), `lb_controller` (`wait_passes()` lets it
  catch up), `staging_vars`, `play(playbook, inventory=STAGING, extra_vars=None, ...)` returning
  a PlaybookRun (rc, output, recap, changed_tasks, calls moto received, mutating_calls), and
  `provisioned` (the cold provision's PlaybookRun).
"""

from __future__ import annotations

import pytest

from tests.support.aws_moto import PRIMARY, ROOT, STAGING, Moto, PlaybookRun, run_playbook
from tests.support.emulated_aws import EmulatedEnvironment, emulate


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = Moto(ROOT / ".cache" / "aws-tests" / "moto.log", region=PRIMARY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _staging_env(moto, k8s_cluster, tmp_path_factory) -> EmulatedEnvironment:
    env = emulate("staging", moto, k8s_cluster, tmp_path_factory.mktemp("kube"))
    yield env
    env.lb_controller.stop()


@pytest.fixture(scope="session")
def eks_cluster(_staging_env):
    """The session's Kubernetes harness with what EKS puts in every cluster: staging's EKS."""
    return _staging_env.cluster


@pytest.fixture(scope="session")
def lb_controller(_staging_env):
    """Staging's emulated AWS Load Balancer Controller (TargetGroupBinding -> moto targets)."""
    return _staging_env.lb_controller


@pytest.fixture(scope="session")
def staging_vars(_staging_env) -> dict:
    """What a real staging inventory gets from outside: the ACM certificates (issued in ACM
    before the first provision) and where to write the kubeconfig; and what the emulation
    replaces: the cluster the workload goes to (the harness, not moto's invented EKS endpoint)
    and the load balancer controller's chart (a local stand-in: no chart repository is reachable)."""
    return _staging_env.extra_vars


@pytest.fixture(scope="session")
def play(moto, _staging_env):
    """Run a playbook against moto and the harness with the staging inputs; returns a PlaybookRun."""

    def run(playbook: str, inventory: str = STAGING, extra_vars: dict | None = None, **kwargs) -> PlaybookRun:
        if inventory == STAGING:
            return _staging_env.play(playbook, extra_vars, **kwargs)
        return run_playbook(moto, playbook, inventory, {**_staging_env.extra_vars, **(extra_vars or {})}, **kwargs)

    return run


@pytest.fixture(scope="session")
def provisioned(_staging_env) -> PlaybookRun:
    """The cold provision of staging (verbose, so the secrets test greps module results too)."""
    try:
        return _staging_env.provisioned or _staging_env.provision()
    except AssertionError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def staging(_staging_env, provisioned) -> EmulatedEnvironment:
    return _staging_env


@pytest.fixture(scope="session", params=["staging", "production"])
def emulated_env(request) -> EmulatedEnvironment:
    """Each emulated environment in turn, provisioned (staging first)."""
    return request.getfixturevalue(request.param)
