"""Fixtures shared by the integration suites.

`k8s_cluster`: one Kubernetes control plane (tests/harness/kubernetes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok on 127.0.0.1) per pytest session, started by the
first test that asks for it and stopped at the end. The kubernetes tests deploy into it, each in a
namespace of its own; the aws tests use it as the EKS cluster of the emulated staging (see
tests/integration/aws/conftest.py). A `tests.support.k8s_harness.K8s`: kubeconfig, bindir (helm),
API clients, `playbook()` against the kubernetes-test inventory, `env()`.

`app_metrics`: stand-ins of the app's metrics scraped by a real Prometheus, for the canary judge.

`production`: the emulated production (its own moto server and harness, the production
inventory), provisioned once per session when a test asks for it (tests/integration/aws and
test_rollout_everywhere.py).
"""

from __future__ import annotations

import pytest

from tests.support.aws_moto import PRIMARY, ROOT, Moto
from tests.support.emulated_aws import EmulatedEnvironment, emulate
from tests.support.k8s_harness import K8s, start_cluster


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory) -> K8s:
    k8s = start_cluster(tmp_path_factory.mktemp("k8s-cluster"))
    try:
        yield k8s
    finally:
        k8s.cluster.stop()


@pytest.fixture(scope="session")
def app_metrics(tmp_path_factory):
    """A real Prometheus on 127.0.0.1 scraping a blue and a green stand-in of the app, for the
    canary judge where the app itself serves no metrics (kwok's pods). Pass its `url` as
    free4allweb_prometheus_url; `restart("green", error_ratio=0.06, ...)` turns a colour bad."""
    from tests.support.app_metrics import StandIns, colours

    with StandIns(tmp_path_factory.mktemp("app-metrics"), colours()) as standins:
        yield standins


@pytest.fixture(scope="session")
def production(tmp_path_factory) -> EmulatedEnvironment:
    """The emulated production, provisioned: its own moto server and harness (another account,
    another cluster), the production inventory."""
    server = Moto(ROOT / ".cache" / "aws-tests" / "moto-production.log", region=PRIMARY).start()
    cluster = env = None
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("k8s-production"))
        env = emulate("production", server, cluster, tmp_path_factory.mktemp("kube-production"))
        try:
            env.provision()
        except AssertionError as exc:
            pytest.fail(str(exc))
        yield env
    finally:
        if env:
            env.lb_controller.stop()
        if cluster:
            cluster.cluster.stop()
        server.stop()
