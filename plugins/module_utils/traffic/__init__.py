"""Traffic backends, by the name the `traffic` module's `backend` option uses.

Each entry is "module:Class" inside this package, imported only when chosen, so a backend's
client library (boto3, kubernetes) is needed only where that backend runs.
"""

from __future__ import annotations

import importlib

BACKENDS = {
    "haproxy": "haproxy:HAProxyRuntime",
}


def backend_class(name: str):
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown traffic backend {name!r}; known: {sorted(BACKENDS)}") from None
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)
