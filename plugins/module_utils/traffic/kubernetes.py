"""Kubernetes as a traffic router: a Service selector for blue-green, HTTPRoute weights for canary.

Two objects route traffic to the app's colours (both written by the k8s_app role):

- the stable Service (`service`), whose selector names the live colour: in-cluster clients and
  anything that targets the Service follow it. Switching it is one PATCH; the endpoints
  controller then points the Service at the other colour's Ready pods.
- the Gateway API HTTPRoute (`route`), whose one rule has a backendRef per colour Service
  (<service>-blue, <service>-green) with a weight: the north-south traffic the Gateway carries
  is split by those weights, which is how a canary gets 5 %, 25 %, ...

Why an HTTPRoute and not an Ingress: weights are part of the Gateway API itself (backendRefs
weight), typed and validated by the API server, and honoured the same way by every conforming
implementation (the AWS Load Balancer Controller's Gateway support on EKS, Envoy Gateway,
Istio, ...). An Ingress has no weights; each controller adds its own annotations (NGINX's
canary-weight on a second Ingress, the ALB controller's actions JSON), so the switch would be
tied to one controller.

Reading: weights come from the HTTPRoute when one is configured, else from the Service selector
(100 to the selected colour). Members are the pods of each colour with their readiness, so the
traffic module refuses to send traffic to a colour whose pods are not Ready.

Applying: the HTTPRoute's weights are replaced in one update guarded by its resourceVersion
(a concurrent change makes it fail instead of being overwritten); then, when the live colour
(the larger share) changed, the Service selector is patched to it. A split without an HTTPRoute
cannot be expressed and is refused.
"""

from __future__ import annotations

from ansible_collections.free4allweb.devops.plugins.module_utils import k8s_rest
from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    COLOURS,
    Member,
    TrafficBackend,
    TrafficError,
    TrafficState,
)

ROUTE_GROUP = "gateway.networking.k8s.io"


class ObjectNotFound(TrafficError):
    """The Service or the HTTPRoute does not exist (404)."""


ROUTE_VERSION = "v1"


def pod_member(pod: dict, colour: str) -> Member:
    """A pod as a traffic member: healthy when Ready and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    terminating = bool(meta.get("deletionTimestamp"))
    healthy = ready.get("status") == "True" and not terminating
    if terminating:
        detail = "terminating"
    elif healthy:
        detail = f"Ready on {(pod.get('spec') or {}).get('nodeName', '?')}"
    else:
        detail = ready.get("message") or ready.get("reason") or status.get("phase") or "not Ready"
    return Member(name=meta.get("name", "?"), colour=colour, healthy=healthy, weight=0, detail=detail)


def route_weights(route: dict, backends: dict[str, str]) -> dict[str, int]:
    """Per-colour weights from the HTTPRoute's rules; every rule must agree (one split).

    `backends` maps colour -> backend Service name. A backendRef without weight counts as 1
    (the API's default). A backend that is neither colour is an error: switching would drop it."""
    rules = (route.get("spec") or {}).get("rules") or []
    if not rules:
        raise TrafficError(f"HTTPRoute {route['metadata']['name']} has no rules to carry weights")
    by_name = {name: colour for colour, name in backends.items()}
    split = None
    for rule in rules:
        weights = dict.fromkeys(COLOURS, 0)
        for ref in rule.get("backendRefs") or []:
            if ref.get("name") not in by_name:
                raise TrafficError(
                    f"HTTPRoute {route['metadata']['name']} sends traffic to {ref.get('name')!r}, "
                    f"which is neither colour's Service ({sorted(by_name)})"
                )
            weights[by_name[ref["name"]]] += int(ref.get("weight", 1))
        if split is not None and weights != split:
            raise TrafficError(f"HTTPRoute {route['metadata']['name']} has rules with different splits")
        split = weights
    return split


def set_route_weights(route: dict, weights: dict[str, int], backends: dict[str, str]) -> dict:
    """The route with every rule's backendRefs carrying `weights` (both colours always listed, so
    the idle colour stays attached at weight 0)."""
    port = None
    for rule in route["spec"]["rules"]:
        for ref in rule.get("backendRefs") or []:
            port = port or ref.get("port")
    for rule in route["spec"]["rules"]:
        refs = {ref["name"]: ref for ref in rule.get("backendRefs") or []}
        new = []
        for colour in COLOURS:
            ref = dict(refs.get(backends[colour]) or {"name": backends[colour], "port": port})
            ref["weight"] = int(weights[colour])
            new.append(ref)
        rule["backendRefs"] = new
    return route


class ServiceRoute(TrafficBackend):
    """The stable Service's selector, plus the HTTPRoute's weights when `route` is set."""

    name = "kubernetes"
    OPTIONS = {
        "namespace": {"type": "str", "required": True},
        "service": {"type": "str", "required": True},
        "route": {"type": "str"},
        "colour_label": {"type": "str", "default": "colour"},
        "backend_pattern": {"type": "str", "default": "{service}-{colour}"},
        "kubeconfig": {"type": "path"},
        "context": {"type": "str"},
    }

    def __init__(
        self,
        *,
        namespace,
        service,
        route=None,
        colour_label="colour",
        backend_pattern="{service}-{colour}",
        kubeconfig=None,
        context=None,
        api_client=None,
    ):
        self.namespace = namespace
        self.service = service
        self.route = route
        self.colour_label = colour_label
        self.backends = {c: backend_pattern.format(service=service, colour=c) for c in COLOURS}
        try:
            self.client = k8s_rest.Client(
                api_client, kubeconfig=kubeconfig, context=context, purpose="the kubernetes backend"
            )
        except k8s_rest.K8sError as exc:
            raise TrafficError(str(exc)) from None
        self._selector_colour: str | None = None
        self._route: dict | None = None
        # set by read(): False while the Service does not exist (nothing was released here yet)
        self.exists = True

    # -- the API, as plain JSON (k8s_rest), its errors as TrafficError -----------------------
    def request(self, method: str, path: str, what: str, *, body=None, query=None, content_type=None) -> dict:
        try:
            return self.client.request(method, path, what, body=body, query=query, content_type=content_type)
        except k8s_rest.NotFound as exc:
            raise ObjectNotFound(str(exc)) from None
        except k8s_rest.K8sError as exc:
            raise TrafficError(str(exc)) from None

    def _service_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/services/{self.service}"

    def _route_path(self) -> str:
        return f"/apis/{ROUTE_GROUP}/{ROUTE_VERSION}/namespaces/{self.namespace}/httproutes/{self.route}"

    @property
    def can_split(self) -> bool:
        """A weighted split needs the HTTPRoute; the Service selector alone is all or nothing."""
        return bool(self.route)

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> TrafficState:
        try:
            svc = self.request("GET", self._service_path(), f"Service {self.service}")
        except ObjectNotFound:
            # nothing was ever released here: no colour serves, none has members (the first
            # release creates the Service and the HTTPRoute with all of it on its own colour)
            self._selector_colour = None
            self.exists = False
            return TrafficState(weights=dict.fromkeys(COLOURS, 0))
        self.exists = True
        selector = (svc.get("spec") or {}).get("selector") or {}
        colour = selector.get(self.colour_label)
        self._selector_colour = colour if colour in COLOURS else None
        if self.route:
            self._route = self.request("GET", self._route_path(), f"HTTPRoute {self.route}")
            weights = route_weights(self._route, self.backends)
        else:
            weights = {c: (100 if c == self._selector_colour else 0) for c in COLOURS}
        base = {k: v for k, v in selector.items() if k != self.colour_label}
        members = []
        for c in COLOURS:
            labels = ",".join(f"{k}={v}" for k, v in sorted({**base, self.colour_label: c}.items()))
            pods = self.request(
                "GET", f"/api/v1/namespaces/{self.namespace}/pods", "pods", query=[("labelSelector", labels)]
            )
            members += [pod_member(pod, c) for pod in pods.get("items") or []]
        return TrafficState(weights=weights, members=members, tie_breaker=self._selector_colour)

    def plan(self, current: TrafficState, wanted: dict[str, int]) -> dict[str, int]:
        """Also re-apply when the Service selector disagrees with the route's live colour (someone
        changed one of them by hand): the switch then brings both back in line."""
        changes = super().plan(current, wanted)
        merged = {**current.weights, **wanted}
        live = TrafficState(weights=merged).live_colour
        if not changes and live is not None and live != self._selector_colour:
            return dict(wanted)
        return changes

    # -- writing ---------------------------------------------------------------------------
    def apply(self, weights: dict[str, int]) -> None:
        current = self.read()
        merged = {**current.weights, **{c: int(w) for c, w in weights.items()}}
        if not self.route and sum(1 for w in merged.values() if w > 0) > 1:
            raise TrafficError(
                f"a weighted split {merged} needs an HTTPRoute (option route); a Service selector sends all or nothing"
            )
        live = TrafficState(weights=merged).live_colour
        if self.route:
            route = set_route_weights(self._route, merged, self.backends)
            # the body carries metadata.resourceVersion: a concurrent change fails with 409
            self.request("PUT", self._route_path(), f"HTTPRoute {self.route}", body=route)
        if live is not None and live != self._selector_colour:
            self.request(
                "PATCH",
                self._service_path(),
                f"Service {self.service}",
                body={"spec": {"selector": {self.colour_label: live}}},
                content_type="application/merge-patch+json",
            )
            self._selector_colour = live

    def close(self) -> None:
        self.client.close()
