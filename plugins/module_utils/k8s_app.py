# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The free4allweb workload on Kubernetes, as plain data: validation and manifests.

The k8s_app role calls these through filters (plugins/filter/k8s_app.py) and applies the result
with kubernetes.core.k8s; unit tests call them directly. Nothing here talks to a cluster.

One release goes to one colour. Per colour there is a Deployment, a Service (the HTTPRoute's
backend and the canary analysis's selector), an HPA and a PodDisruptionBudget, all named
<name>-<colour>. Shared by both colours: the namespace, a ServiceAccount, the ConfigMap, the
Secret, the Service <name> whose selector names the live colour, and the HTTPRoute <name> whose
backend weights carry a canary split. Those last two belong to the traffic switch: the role only
writes them with the selector and the weights they already have (see `live_colour`, `weights`).
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation

COLOURS = ("blue", "green")
#: label that says which colour a pod, Deployment or Service belongs to
COLOUR_LABEL = "colour"
NAME_LABEL = "app.kubernetes.io/name"
VERSION_LABEL = "app.kubernetes.io/version"
#: RFC 1035 label: what Kubernetes accepts as a Service name
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUFFIXES = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class ReleaseError(ValueError):
    """Inputs that must not reach the cluster. The message names the variable."""


def parse_quantity(value) -> Decimal:
    """A Kubernetes resource quantity ("250m", "0.5", "512Mi", "1G", "1e3") as a number."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ReleaseError(f"{value!r} is not a Kubernetes quantity (examples: 250m, 0.5, 512Mi, 1Gi)")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise ReleaseError(f"{value!r} is not a Kubernetes quantity") from None
    return number * _SUFFIXES[match.group(2) or ""]


def image_tag(image: str) -> str | None:
    """The tag (or digest) of an image reference; None when it has neither.

    registry:5000/app has no tag: a colon before the last slash is a port."""
    image = str(image or "")
    if "@" in image:
        return image.split("@", 1)[1] or None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1] or None
    return None


def release_problems(p: dict) -> list[str]:
    """Everything wrong with the role's inputs, each naming its k8s_app_ variable."""
    problems = []
    name = str(p.get("name") or "")
    if not DNS_LABEL.match(name) or len(name) > 50:
        problems.append(f"k8s_app_name {name!r} must be a DNS label of at most 50 characters (a-z, 0-9, -)")
    if p.get("colour") not in COLOURS:
        problems.append(f"k8s_app_colour must be one of {list(COLOURS)}, got {p.get('colour')!r}")
    production = p.get("environment") == "production"

    tag = image_tag(p.get("image"))
    if not p.get("image"):
        problems.append("k8s_app_image is required (for example registry.example.com/free4allweb:1.4.0)")
    elif tag is None:
        problems.append(f"k8s_app_image {p['image']!r} has no tag: name the release explicitly (…:1.4.0 or …@sha256:…)")
    elif production and tag == "latest":
        problems.append(f"k8s_app_image {p['image']!r}: 'latest' is not a release; production needs a fixed tag")

    replicas = int(p.get("replicas", 0))
    if replicas < 0:
        problems.append(f"k8s_app_replicas must not be negative, got {replicas}")
    elif production and replicas == 0:
        problems.append("k8s_app_replicas is 0 in production: that releases nothing and takes the colour down")

    hpa = p.get("hpa") or {}
    if hpa.get("enabled", True):
        low, high = int(hpa.get("min_replicas", 1)), int(hpa.get("max_replicas", 1))
        if low < 1:
            problems.append(f"k8s_app_hpa_min_replicas must be at least 1, got {low}")
        if high < low:
            problems.append(f"k8s_app_hpa_max_replicas ({high}) is below k8s_app_hpa_min_replicas ({low})")
        if production and low < 2:
            problems.append(f"k8s_app_hpa_min_replicas is {low} in production: one pod is no redundancy")
        for key in ("cpu_utilization", "memory_utilization"):
            value = hpa.get(key)
            if value is not None and not 1 <= int(value) <= 100:
                problems.append(f"k8s_app_hpa_{key} must be a percentage 1..100, got {value}")

    resources = p.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for kind in ("cpu", "memory"):
        if kind not in requests:
            problems.append(f"k8s_app_resources.requests.{kind} is required (the HPA's utilisation is relative to it)")
            continue
        try:
            wanted = parse_quantity(requests[kind])
            cap = parse_quantity(limits[kind]) if kind in limits else None
        except ReleaseError as exc:
            problems.append(f"k8s_app_resources.{kind}: {exc}")
            continue
        if wanted <= 0:
            problems.append(f"k8s_app_resources.requests.{kind} must be above 0, got {requests[kind]!r}")
        if cap is not None and cap < wanted:
            problems.append(
                f"k8s_app_resources.limits.{kind} ({limits[kind]}) is below "
                f"k8s_app_resources.requests.{kind} ({requests[kind]})"
            )
    if production and not p.get("database_url"):
        problems.append("k8s_app_database_url (or k8s_app_database_url_secret_id) is required in production")
    return problems


def check_release(p: dict) -> None:
    problems = release_problems(p)
    if problems:
        raise ReleaseError("invalid k8s_app inputs:\n  - " + "\n  - ".join(problems))


def digest(data) -> str:
    """A short, stable fingerprint of config or secret data for the pod template's annotations,
    so a changed ConfigMap or Secret rolls the colour's pods. A slow key derivation (PBKDF2,
    100k rounds) rather than a bare hash, so a weak password in the Secret cannot be guessed
    quickly from the annotation."""
    blob = json.dumps(data or {}, sort_keys=True).encode()
    return hashlib.pbkdf2_hmac("sha256", blob, b"free4allweb.devops/k8s_app", 100_000).hex()[:16]


def other(colour: str) -> str:
    return COLOURS[1] if colour == COLOURS[0] else COLOURS[0]


def _meta(p: dict, name: str, labels: dict | None = None, **extra) -> dict:
    meta = {
        "name": name,
        "namespace": p["namespace"],
        "labels": {NAME_LABEL: p["name"], "app.kubernetes.io/managed-by": "free4allweb.devops", **(labels or {})},
    }
    meta.update(extra)
    return meta


def names(p: dict) -> dict:
    n = p["name"]
    return {
        "service": n,
        "route": n,
        "config": f"{n}-config",
        "secret": f"{n}-secrets",
        "account": n,
        **{c: f"{n}-{c}" for c in COLOURS},
    }


def selector(p: dict, colour: str) -> dict:
    return {NAME_LABEL: p["name"], COLOUR_LABEL: colour}


def namespace(p: dict) -> dict:
    labels = {NAME_LABEL: p["name"]}
    if p.get("pod_security"):
        # the API server's PodSecurity admission then rejects any pod that is not non-root,
        # without privilege escalation, with all capabilities dropped and a seccomp profile
        for mode in ("enforce", "warn", "audit"):
            labels[f"pod-security.kubernetes.io/{mode}"] = p["pod_security"]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": p["namespace"], "labels": labels}}


def config_map(p: dict) -> dict:
    data = {str(k): str(v) for k, v in (p.get("config") or {}).items()}
    data.setdefault("F4A_PORT", str(p["port"]))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(p, names(p)["config"]), "data": data}


def secret(p: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(p, names(p)["secret"]),
        "stringData": {"DATABASE_URL": str(p.get("database_url") or "")},
    }


def service_account(p: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(p, names(p)["account"]),
        "automountServiceAccountToken": False,
    }


def deployment(p: dict) -> dict:
    colour, n = p["colour"], names(p)
    labels = {**selector(p, colour), VERSION_LABEL: str(p["version"])}
    match = {"matchLabels": selector(p, colour)}
    annotations = {
        "checksum/config": digest(config_map(p)["data"]),
        "checksum/secret": digest(secret(p)["stringData"]),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(p["port"]),
        "prometheus.io/path": "/metrics",
        **{str(k): str(v) for k, v in (p.get("pod_annotations") or {}).items()},
    }
    probes = p.get("probes") or {}
    container = {
        "name": "app",
        "image": p["image"],
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": int(p["port"]), "protocol": "TCP"}],
        "env": [
            {"name": "F4A_COLOUR", "value": colour},
            {"name": "F4A_VERSION", "value": str(p["version"])},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": n["secret"], "key": "DATABASE_URL"}}},
        ],
        "envFrom": [{"configMapRef": {"name": n["config"]}}],
        "readinessProbe": {
            "httpGet": {"path": probes.get("readiness_path", "/ready"), "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": probes.get("liveness_path", "/health"), "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": p["resources"],
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # the root filesystem is read-only: /tmp is the one writable place
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spread_match = {"labelSelector": match, "matchLabelKeys": ["pod-template-hash"]}
    replicas = int(p["replicas"])
    if (p.get("hpa") or {}).get("enabled", True) and p.get("current_replicas") is not None:
        # once the HPA manages the Deployment, a release keeps the replica count it chose
        replicas = int(p["current_replicas"])
    spec = {
        "replicas": replicas,
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": int(p.get("progress_deadline_seconds", 300)),
        "selector": match,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": {
                "serviceAccountName": n["account"],
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": int(p.get("run_as_user", 10001)),
                    "runAsGroup": int(p.get("run_as_user", 10001)),
                    "fsGroup": int(p.get("run_as_user", 10001)),
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 100,
                                "podAffinityTerm": {"labelSelector": match, "topologyKey": "kubernetes.io/hostname"},
                            },
                            {
                                "weight": 50,
                                "podAffinityTerm": {
                                    "labelSelector": match,
                                    "topologyKey": "topology.kubernetes.io/zone",
                                },
                            },
                        ]
                    }
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": p.get("zone_spread", "DoNotSchedule"),
                        **spread_match,
                    },
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        **spread_match,
                    },
                ],
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(p, n[colour], {COLOUR_LABEL: colour, VERSION_LABEL: str(p["version"])}),
        "spec": spec,
    }


def service(p: dict, name: str, colour: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(p, name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(p, colour),
            "ports": [{"name": "http", "port": int(p.get("service_port", 80)), "targetPort": "http"}],
        },
    }


def hpa(p: dict) -> dict:
    colour, h = p["colour"], p["hpa"]
    metrics = []
    for resource, key in (("cpu", "cpu_utilization"), ("memory", "memory_utilization")):
        if h.get(key) is not None:
            target = {"type": "Utilization", "averageUtilization": int(h[key])}
            metrics.append({"type": "Resource", "resource": {"name": resource, "target": target}})
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(p, names(p)[colour], {COLOUR_LABEL: colour}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": names(p)[colour]},
            "minReplicas": int(h["min_replicas"]),
            "maxReplicas": int(h["max_replicas"]),
            "metrics": metrics,
            "behavior": h["behavior"],
        },
    }


def pdb(p: dict) -> dict:
    colour = p["colour"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(p, names(p)[colour], {COLOUR_LABEL: colour}),
        "spec": {
            "maxUnavailable": p.get("pdb_max_unavailable", 1),
            "selector": {"matchLabels": selector(p, colour)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def route(p: dict, weights: dict[str, int]) -> dict:
    r = p["route"]
    spec: dict = {
        "parentRefs": [dict(ref) for ref in r.get("parent_refs") or []],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": names(p)[c], "port": int(p.get("service_port", 80)), "weight": int(weights.get(c, 0))}
                    for c in COLOURS
                ],
            }
        ],
    }
    if r.get("hostnames"):
        spec["hostnames"] = list(r["hostnames"])
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(p, names(p)["route"]),
        "spec": spec,
    }


def manifests(p: dict) -> list[dict]:
    """Every object of a release to p["colour"], in the order they are applied.

    p["live_colour"]: the colour the stable Service selects now (the release's colour on a first
    deploy); p["weights"]: the HTTPRoute's current weights (all to the live colour on a first
    deploy). The role reads both from the cluster, so applying never moves traffic."""
    check_release(p)
    live = p.get("live_colour") or p["colour"]
    weights = p.get("weights") or {c: (100 if c == live else 0) for c in COLOURS}
    n = names(p)
    out = [namespace(p), service_account(p), config_map(p), secret(p)]
    out += [service(p, n[c], c) for c in COLOURS]
    out.append(service(p, n["service"], live))
    if (p.get("route") or {}).get("enabled"):
        out.append(route(p, weights))
    out.append(deployment(p))
    if (p.get("hpa") or {}).get("enabled", True):
        out.append(hpa(p))
    out.append(pdb(p))
    return out
