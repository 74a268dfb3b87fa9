"""The parts of EKS the test control plane lacks, for the emulated staging and production.

On a real EKS cluster the free4allweb roles meet things that AWS runs, not us. Here:

- `install_eks_standins(k8s)`: what every EKS cluster has before we touch it, i.e. the Amazon
  VPC CNI's DaemonSet `kube-system/aws-node` (a stand-in with the real container names and
  `ENABLE_POD_ENI=false`, as EKS ships it; kwok runs its pods, nothing in them works) and the
  `SecurityGroupPolicy` CRD (vpcresources.k8s.aws/v1beta1) the VPC resource controller serves.
- `LB_CONTROLLER_CHART`: a local stand-in for the eks/aws-load-balancer-controller chart (see its
  Chart.yaml), which provision installs with Helm in place of the unreachable real one.
- `LoadBalancerControllerEmulator`: what the real controller does for a TargetGroupBinding with
  `targetType: ip`: a thread that every `interval` seconds registers the Ready endpoints of the
  bound Service (EndpointSlices: kwok gives pods IPs) as IP targets of the target group in moto,
  and deregisters every other target. moto runs no health checks: it reports every registered
  target `healthy` (and `unused` only for a target asked about after deregistration), so a
  target's health in moto means "its pod was Ready when the emulator last looked", which is
  what the ALB's /ready health check decides on AWS, minus its interval and thresholds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

LB_CONTROLLER_CHART = Path(__file__).resolve().parent / "charts" / "aws-load-balancer-controller"

TGB = ("elbv2.k8s.aws", "v1beta1", "targetgroupbindings")
SGP = ("vpcresources.k8s.aws", "v1beta1", "securitygrouppolicies")

SECURITY_GROUP_POLICY_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "securitygrouppolicies.vpcresources.k8s.aws"},
    "spec": {
        "group": "vpcresources.k8s.aws",
        "names": {
            "kind": "SecurityGroupPolicy",
            "listKind": "SecurityGroupPolicyList",
            "plural": "securitygrouppolicies",
            "singular": "securitygrouppolicy",
            "shortNames": ["sgp"],
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "additionalPrinterColumns": [
                    {"name": "Security-Group-Ids", "type": "string", "jsonPath": ".spec.securityGroups.groupIds"}
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "podSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "serviceAccountSelector": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "securityGroups": {
                                        "type": "object",
                                        "properties": {
                                            "groupIds": {
                                                "type": "array",
                                                "maxItems": 5,
                                                "minItems": 1,
                                                "items": {"type": "string"},
                                            }
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def aws_node_daemonset() -> dict:
    """kube-system/aws-node as EKS installs it, reduced to what the roles patch."""
    labels = {"k8s-app": "aws-node"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "aws-node", "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "tolerations": [{"operator": "Exists"}],
                    "initContainers": [
                        {
                            "name": "aws-vpc-cni-init",
                            "image": "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni-init:v1.19.2",
                            "env": [{"name": "DISABLE_TCP_EARLY_DEMUX", "value": "false"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "aws-node",
                            "image": "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2",
                            "env": [
                                {"name": "ENABLE_POD_ENI", "value": "false"},
                                {"name": "POD_SECURITY_GROUP_ENFORCING_MODE", "value": "strict"},
                            ],
                        }
                    ],
                },
            },
        },
    }


def install_eks_standins(k8s) -> None:
    """Create the aws-node DaemonSet and the SecurityGroupPolicy CRD (idempotent), and wait until
    the cluster serves SecurityGroupPolicy."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(k8s.api)
    try:
        ext.create_custom_resource_definition(SECURITY_GROUP_POLICY_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    try:
        k8s.apps.create_namespaced_daemon_set("kube-system", aws_node_daemonset())
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established():
        crd = ext.read_custom_resource_definition(SECURITY_GROUP_POLICY_CRD["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    k8s.wait_for("the SecurityGroupPolicy CRD to be established", established, timeout=30)


class LoadBalancerControllerEmulator:
    """Keeps each TargetGroupBinding's target group (in moto) equal to the Ready endpoints of its
    Service, as the AWS Load Balancer Controller does on EKS: targets registered by anyone else
    are deregistered within a pass (use `suspended()` to register by hand). Start it, stop it;
    `passes` counts finished reconcile passes, `errors` keeps the last few failures (a pass never
    kills the thread)."""

    def __init__(self, kubeconfig: Path, elbv2_factory, interval: float = 0.5):
        self.kubeconfig = Path(kubeconfig)
        self.elbv2_factory = elbv2_factory  # called in the thread: boto3 clients are not shared
        self.interval = interval
        self.passes = 0
        self.errors: list[str] = []
        self.registered: dict[str, set[tuple[str, int]]] = {}
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LoadBalancerControllerEmulator:
        self._thread = threading.Thread(target=self._run, name="lb-controller-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    @contextlib.contextmanager
    def suspended(self):
        """Leave the target groups alone for a while (a test that registers targets by hand:
        the controller, real or emulated, would otherwise deregister what no pod backs)."""
        self._paused.set()
        try:
            yield self
        finally:
            self._paused.clear()

    def wait_passes(self, count: int = 2, timeout: float = 30.0) -> None:
        """Block until `count` more passes have finished (so the targets reflect the cluster now)."""
        target = self.passes + count
        deadline = time.monotonic() + timeout
        while self.passes < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"the LB controller emulator made no progress; errors: {self.errors[-3:]}")
            time.sleep(0.05)

    def _run(self) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(str(self.kubeconfig))
        apis = (client.CustomObjectsApi(api), client.CoreV1Api(api), client.DiscoveryV1Api(api))
        elbv2 = self.elbv2_factory()
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(self.interval)
                continue
            try:
                self.reconcile(*apis, elbv2)
            except Exception as exc:  # keep going, like a controller does
                self.errors = [*self.errors[-9:], f"{type(exc).__name__}: {exc}"]
            self.passes += 1
            self._stop.wait(self.interval)

    def reconcile(self, custom, core, discovery, elbv2) -> None:
        from kubernetes.client.rest import ApiException

        try:
            bindings = custom.list_cluster_custom_object(*TGB)["items"]
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed yet
                return
            raise
        for tgb in bindings:
            spec, meta = tgb["spec"], tgb["metadata"]
            if spec.get("targetType", "instance") != "ip":
                continue  # instance targets (node ports) are not emulated
            desired = self.ready_endpoints(core, discovery, meta["namespace"], spec["serviceRef"])
            arn = spec["targetGroupARN"]
            health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            current = {(t["Target"]["Id"], t["Target"]["Port"]) for t in health}
            add, remove = desired - current, current - desired
            if add:
                elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": p} for i, p in sorted(add)])
            if remove:
                elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": p} for i, p in sorted(remove)])
            self.registered[arn] = desired
            if tgb.get("status", {}).get("observedGeneration") != meta.get("generation"):
                with contextlib.suppress(ApiException):
                    custom.patch_namespaced_custom_object_status(
                        *TGB[:2],
                        meta["namespace"],
                        TGB[2],
                        meta["name"],
                        {"status": {"observedGeneration": meta.get("generation")}},
                    )

    @staticmethod
    def ready_endpoints(core, discovery, namespace: str, ref: dict) -> set[tuple[str, int]]:
        """(pod IP, target port) of every Ready endpoint behind the Service port `ref` names."""
        from kubernetes.client.rest import ApiException

        try:
            service = core.read_namespaced_service(ref["name"], namespace)
        except ApiException as exc:
            if exc.status == 404:
                return set()
            raise
        port = next((p for p in service.spec.ports or [] if ref["port"] in (p.port, p.name)), None)
        if port is None:
            return set()
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={ref['name']}"
        ).items
        found = set()
        for eps in slices:
            numbers = [p.port for p in eps.ports or [] if (p.name or "") == (port.name or "") and p.port]
            for endpoint in eps.endpoints or []:
                ready = endpoint.conditions.ready if endpoint.conditions else None
                if ready is False:  # nil means ready (discovery.k8s.io/v1)
                    continue
                found |= {(address, number) for address in endpoint.addresses for number in numbers}
        return found
