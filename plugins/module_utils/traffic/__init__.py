"""Traffic backends, by the name the `traffic` module's `backend` option uses.

Imports are static on purpose: Ansible ships a module with the module_utils it imports, found by
reading import statements, so a backend imported dynamically would be missing on the target.
Backends whose client library is optional (boto3, kubernetes) guard that import themselves and
fail in their constructor with a clear message when it is absent.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.alb import ForwardWeights
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import TrafficError
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.composite import Composite
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.haproxy import HAProxyRuntime
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.kubernetes import ServiceRoute

BACKENDS = {
    HAProxyRuntime.name: HAProxyRuntime,
    ForwardWeights.name: ForwardWeights,
    ServiceRoute.name: ServiceRoute,
    Composite.name: Composite,
}


def backend_class(name: str):
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown traffic backend {name!r}; known: {sorted(BACKENDS)}") from None


def build_backend(name: str, options: dict):
    """A backend object from its name and options, the options checked against its OPTIONS."""
    try:
        cls = backend_class(name)
    except ValueError as exc:
        raise TrafficError(str(exc)) from None
    checked = ArgumentSpecValidator(cls.OPTIONS).validate(options or {})
    if checked.error_messages:
        raise TrafficError(f"invalid options for the {name} backend: " + "; ".join(checked.error_messages))
    return cls(**checked.validated_parameters)
