"""A real Kubernetes control plane for the kubernetes-platform tests, once per test session.

The `k8s_cluster` fixture (tests/integration/conftest.py, shared with the aws tests) builds the
harness binaries from the pinned Go modules (cached under .cache/kubernetes-harness: a cold build
takes minutes, later sessions find it at once), starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok on 127.0.0.1, creates six fake nodes over three
zones, installs the Gateway API CRDs and tears it all down afterwards.
Each test works in a namespace of its own, so tests do not see each other's objects.
"""

from __future__ import annotations

import re

import pytest

from tests.support.k8s_harness import HARNESS, INVENTORY, PLAYBOOKS, ROOT, K8s, Run

__all__ = ["HARNESS", "INVENTORY", "PLAYBOOKS", "ROOT", "K8s", "Run"]


@pytest.fixture
def namespace(request) -> str:
    """A namespace name of the test's own (the playbooks create it)."""
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"t-{name}"
