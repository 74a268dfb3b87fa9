"""Fixtures shared by the integration suites.

`k8s_cluster`: one Kubernetes control plane (tests/harness/kubernetes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok on 127.0.0.1) per pytest session, started by the
first test that asks for it and stopped at the end. The kubernetes tests deploy into it, each in a
namespace of its own; the aws tests use it as the EKS cluster of the emulated staging (see
tests/integration/aws/conftest.py). A `tests.support.k8s_harness.K8s`: kubeconfig, bindir (helm),
API clients, `playbook()` against the kubernetes-test inventory, `env()`.
"""

from __future__ import annotations

import pytest

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
