"""Traffic backends, by the name the `traffic` module's `backend` option uses.

Imports are static on purpose: Ansible ships a module with the module_utils it imports, found by
reading import statements, so a backend imported dynamically would be missing on the target.
Backends whose client library is optional (boto3, kubernetes) guard that import themselves and
fail in their constructor with a clear message when it is absent.
"""

from __future__ import annotations

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.alb import ForwardWeights
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.haproxy import HAProxyRuntime
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.kubernetes import ServiceRoute

BACKENDS = {
    HAProxyRuntime.name: HAProxyRuntime,
    ForwardWeights.name: ForwardWeights,
    ServiceRoute.name: ServiceRoute,
}


def backend_class(name: str):
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown traffic backend {name!r}; known: {sorted(BACKENDS)}") from None
