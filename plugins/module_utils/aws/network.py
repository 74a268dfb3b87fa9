"""Checks on a planned VPC layout, made before any AWS call (plain Python, no Ansible)."""

from __future__ import annotations

import ipaddress
from itertools import combinations


def subnet_plan_problems(vpc_cidr: str, subnets: dict[str, list[str]]) -> list[str]:
    """Everything wrong with a subnet plan, as sentences for the operator; empty when sound.

    `subnets` maps a variable name (say aws_network_private_subnet_cidrs) to its CIDRs, so a
    problem names the variable the operator has to fix. Checked: each CIDR parses, is a network
    address, lies inside the VPC CIDR, and no two subnets (of any tier) overlap.
    """
    problems = []
    try:
        vpc = ipaddress.ip_network(vpc_cidr, strict=True)
    except ValueError as exc:
        return [f"VPC CIDR {vpc_cidr!r} is not a valid network: {exc}"]
    parsed: list[tuple[str, str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for var, cidrs in subnets.items():
        for cidr in cidrs:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                problems.append(f"{var}: {cidr!r} is not a valid network: {exc}")
                continue
            if net.version != vpc.version or not net.subnet_of(vpc):
                problems.append(f"{var}: {cidr} is outside the VPC CIDR {vpc}")
            parsed.append((var, cidr, net))
    for (var_a, cidr_a, a), (var_b, cidr_b, b) in combinations(parsed, 2):
        if a.version == b.version and a.overlaps(b):
            problems.append(f"subnet CIDRs overlap: {cidr_a} ({var_a}) and {cidr_b} ({var_b})")
    return problems
