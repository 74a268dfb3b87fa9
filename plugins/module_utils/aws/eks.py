"""What it takes to bring an EKS cluster to the wanted settings (plain Python, no Ansible).

community.aws.eks_cluster creates a cluster with AWS's defaults (public endpoint open to
0.0.0.0/0, private endpoint off, no control-plane logs) and cannot change them. These helpers
build the create request with the wanted endpoint access and logging, and compare a described
cluster with the wanted settings to list the updates still needed.
"""

from __future__ import annotations

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
OPEN_TO_ALL = ("0.0.0.0/0", "::/0")


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(version).split("."))


def endpoint_problems(private: bool, public: bool, public_cidrs: list[str]) -> list[str]:
    """Input errors in the endpoint settings; checked before any call."""
    problems = []
    if not (private or public):
        problems.append("at least one of the private and the public endpoint must be on")
    if public and not public_cidrs:
        problems.append(
            "the public endpoint is on but public_access_cidrs is empty: give the CIDRs allowed to reach it"
        )
    if public and any(c in OPEN_TO_ALL for c in public_cidrs):
        problems.append("public_access_cidrs must not hold 0.0.0.0/0 or ::/0: that is no allow-list")
    if not public and public_cidrs:
        problems.append("public_access_cidrs is set but the public endpoint is off")
    return problems


def wanted_access(private: bool, public: bool, public_cidrs: list[str]) -> dict:
    access = {"endpointPrivateAccess": bool(private), "endpointPublicAccess": bool(public)}
    if public:
        access["publicAccessCidrs"] = sorted(public_cidrs)
    return access


def logging_config(enabled: list[str]) -> dict:
    on = [t for t in LOG_TYPES if t in enabled]
    off = [t for t in LOG_TYPES if t not in enabled]
    groups = []
    if on:
        groups.append({"types": on, "enabled": True})
    if off:
        groups.append({"types": off, "enabled": False})
    return {"clusterLogging": groups}


def create_request(
    *,
    name: str,
    version: str,
    role_arn: str,
    subnets: list[str],
    security_groups: list[str],
    access: dict,
    log_types: list[str],
    tags: dict[str, str],
) -> dict:
    vpc = {"subnetIds": list(subnets), "securityGroupIds": list(security_groups), **access}
    request = {
        "name": name,
        "version": str(version),
        "roleArn": role_arn,
        "resourcesVpcConfig": vpc,
        "logging": logging_config(log_types),
    }
    if tags:
        request["tags"] = dict(tags)
    return request


def current_access(cluster: dict) -> dict:
    """Endpoint access as described, with AWS's defaults filled in where a field is absent."""
    vpc = cluster.get("resourcesVpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)
    access = {
        "endpointPrivateAccess": bool(vpc.get("endpointPrivateAccess", False)),
        "endpointPublicAccess": bool(public),
    }
    if public:
        access["publicAccessCidrs"] = sorted(vpc.get("publicAccessCidrs") or ["0.0.0.0/0"])
    return access


def enabled_log_types(cluster: dict) -> set[str]:
    groups = ((cluster.get("logging") or {}).get("clusterLogging")) or []
    return {t for g in groups if g.get("enabled") for t in g.get("types", [])}


def needed_updates(cluster: dict, version: str, access: dict, log_types: list[str]) -> list[tuple[str, dict]]:
    """Updates to reach the wanted settings, in the order AWS accepts them (one at a time):
    ("version", kwargs), ("access", kwargs), ("logging", kwargs). Empty when in step."""
    updates: list[tuple[str, dict]] = []
    have, want = version_tuple(cluster.get("version", version)), version_tuple(version)
    if want < have:
        raise ValueError(f"the cluster runs Kubernetes {cluster['version']}; it cannot go down to {version}")
    if want > have:
        if want[0] != have[0] or want[1] - have[1] > 1:
            raise ValueError(
                f"the cluster runs Kubernetes {cluster['version']}; EKS upgrades one minor version at a time, "
                f"so go to {have[0]}.{have[1] + 1} before {version}"
            )
        updates.append(("version", {"version": str(version)}))
    if current_access(cluster) != access:
        updates.append(("access", {"resourcesVpcConfig": dict(access)}))
    if enabled_log_types(cluster) != set(log_types):
        updates.append(("logging", {"logging": logging_config(log_types)}))
    return updates


def tag_changes(current: dict[str, str], wanted: dict[str, str], purge: bool) -> tuple[dict[str, str], list[str]]:
    """(tags to set, keys to remove)."""
    to_set = {k: v for k, v in wanted.items() if current.get(k) != v}
    to_remove = sorted(k for k in current if k not in wanted) if purge else []
    return to_set, to_remove
