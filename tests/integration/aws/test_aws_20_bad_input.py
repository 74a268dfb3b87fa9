"""Bad input fails before any AWS call, with a message that names what to fix.

moto records every request it receives; each run here must leave that recording empty.
"""

from __future__ import annotations

import pytest

PROVISION = "playbooks/aws/provision.yml"

CASES = {
    "overlapping subnets": (
        "inventories/staging",
        {"aws_network_private_subnet_cidrs": ["10.0.8.0/24", "10.0.96.0/19"]},
        "subnet CIDRs overlap: 10.0.0.0/20 (aws_network_public_subnet_cidrs) and 10.0.8.0/24 "
        "(aws_network_private_subnet_cidrs)",
    ),
    "public EKS endpoint without an allow-list": (
        "inventories/staging",
        {"aws_eks_endpoint_public_access": True, "aws_eks_public_access_cidrs": []},
        "aws_eks_public_access_cidrs is []: it must not be empty when aws_eks_endpoint_public_access is True",
    ),
    "public EKS endpoint open to the world": (
        "inventories/staging",
        {"aws_eks_endpoint_public_access": True, "aws_eks_public_access_cidrs": ["0.0.0.0/0"]},
        "aws_eks_public_access_cidrs[0] is '0.0.0.0/0': it must not be any of '0.0.0.0/0', '::/0' "
        "when aws_eks_endpoint_public_access is True",
    ),
    "retention under 7 days in production": (
        "inventories/production",
        {"aws_rds_backup_retention_days": 3},
        "aws_rds_backup_retention_days is 3: it must be at least 7 when aws_rds_tags.environment is 'production'",
    ),
    "database backups kept under 7 days in production": (
        "inventories/production",
        {"aws_backup_storage_db_expiration_days": 5},
        "aws_backup_storage_db_expiration_days is 5: it must be at least 7 when aws_backup_storage_tags.environment "
        "is 'production'",
    ),
    "a value of the wrong type": (
        "inventories/staging",
        {"aws_rds_backup_retention_days": "thirty"},
        "aws_rds_backup_retention_days",
    ),
    "a certificate from another region": (
        "inventories/staging",
        {"free4allweb_aws_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/x"},
        "aws_edge_certificate_arn must be an ACM certificate ARN in eu-west-1",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_before_any_aws_call(play, case):
    inventory, extra_vars, message = CASES[case]
    run = play(PROVISION, inventory=inventory, extra_vars=extra_vars)
    assert run.rc != 0, f"{case}: the playbook should have failed\n{run.tail()}"
    assert message in " ".join(run.output.split()), f"{case}: message not found\n{run.tail()}"
    assert run.calls == [], f"{case}: AWS calls before the input check failed: {run.calls}"
    assert run.recap.get("changed") == 0


def test_the_recorder_sees_calls_when_there_are_some(play):
    """The control for the cases above: a run that gets past the checks is recorded."""
    run = play("playbooks/aws/dr_snapshot.yml", extra_vars={"aws_rds_instance_id": "no-such-db"})
    assert run.rc != 0
    assert any(c.operation == "GetCallerIdentity" for c in run.calls)
