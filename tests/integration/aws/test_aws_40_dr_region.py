"""The DR region flow: a fresh snapshot is copied to the DR region, the stack is rebuilt there,
the database is restored from the newest copy, and DNS points at the DR load balancer."""

from __future__ import annotations

import re

import pytest

from tests.support.aws_moto import DR, NAME

pytestmark = pytest.mark.usefixtures("provisioned")


@pytest.fixture(scope="module")
def snapshot(play):
    return play("playbooks/aws/dr_snapshot.yml").ok()


@pytest.fixture(scope="module")
def recovery(play, snapshot):
    return play("playbooks/dr_region.yml").ok()


def test_a_fresh_snapshot_is_copied_to_the_dr_region(moto, snapshot):
    copies = moto.client("rds", DR).describe_db_snapshots(DBInstanceIdentifier=NAME)["DBSnapshots"]
    names = sorted(s["DBSnapshotIdentifier"] for s in copies)
    assert len(names) == 2, names
    assert re.fullmatch(rf"{NAME}-dr-\d{{14}}", names[0]), names
    assert names[1] == f"{NAME}-dr-baseline"
    assert all(s["Status"] == "available" and s["Encrypted"] for s in copies)


def test_the_database_is_restored_in_the_dr_region_from_the_newest_copy(moto, recovery):
    copies = moto.client("rds", DR).describe_db_snapshots(DBInstanceIdentifier=NAME, SnapshotType="manual")
    newest = max(copies["DBSnapshots"], key=lambda s: s["SnapshotCreateTime"])["DBSnapshotIdentifier"]
    assert re.fullmatch(rf"{NAME}-dr-\d{{14}}", newest)
    restored = moto.client("rds", DR).describe_db_instances(DBInstanceIdentifier=NAME)["DBInstances"][0]
    tags = {t["Key"]: t["Value"] for t in restored["TagList"]}
    assert tags["restored-from"] == newest
    assert restored["DeletionProtection"] is True
    assert restored["BackupRetentionPeriod"] == 30
    assert (
        restored["DBSubnetGroup"]["VpcId"]
        != moto.client("rds").describe_db_instances(DBInstanceIdentifier=NAME)["DBInstances"][0]["DBSubnetGroup"][
            "VpcId"
        ]
    )
    assert f"restored from snapshot {newest}" in " ".join(recovery.output.split())


def test_the_stack_is_rebuilt_in_the_dr_region(moto, recovery):
    vpcs = moto.client("ec2", DR).describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.0.0.0/16"]
    cluster = moto.client("eks", DR).describe_cluster(name=NAME)["cluster"]
    assert cluster["resourcesVpcConfig"]["endpointPublicAccess"] is False
    assert moto.client("elbv2", DR).describe_load_balancers(Names=[NAME])["LoadBalancers"]
    secret = moto.client("secretsmanager", DR).get_secret_value(SecretId=f"free4allweb/{NAME}/rds-master")
    assert "password" in secret["SecretString"], "the master secret is replicated to the DR region"


def test_dns_points_at_the_dr_load_balancer(moto, recovery):
    dr_lb = moto.client("elbv2", DR).describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    assert f".{DR}." in dr_lb["DNSName"]
    route53 = moto.client("route53")
    zone = route53.list_hosted_zones_by_name(DNSName="staging.free4allweb.example")["HostedZones"][0]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    api = [r for r in records if r["Name"] == "api.staging.free4allweb.example." and r["Type"] == "A"]
    assert [r["AliasTarget"]["DNSName"].rstrip(".") for r in api] == [dr_lb["DNSName"]]


def test_the_time_taken_is_reported(recovery):
    match = re.search(rf"DR stack up in {DR} in ([0-9.]+) s", " ".join(recovery.output.split()))
    assert match, recovery.tail()
    assert 0 < float(match.group(1)) < recovery.seconds
