"""A fresh provision of staging: every resource exists with the requested properties.

Everything is read back with boto3 from the moto server the playbook talked to.
"""

from __future__ import annotations

import ipaddress
import json

import pytest
import yaml

from tests.support.aws_moto import DR, NAME, PRIMARY

TAGS = {"environment": "staging", "owner": "platform-engineering", "cost-centre": "CC-4100"}
pytestmark = pytest.mark.usefixtures("provisioned")


def tagged(tags) -> dict:
    """Tags as a dict, from either a [{Key, Value}] list or a dict."""
    if isinstance(tags, dict):
        return tags
    return {t["Key"]: t["Value"] for t in tags or []}


def has_required_tags(tags) -> bool:
    found = tagged(tags)
    return all(found.get(k) == v for k, v in TAGS.items())


@pytest.fixture(scope="module")
def vpc(moto):
    vpcs = moto.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"]
    assert len(vpcs) == 1, vpcs
    return vpcs[0]


def test_cold_provision_made_the_calls_it_needed(provisioned):
    assert provisioned.recap.get("failed") == 0
    assert len(provisioned.mutating_calls) > 30, "the recording should show the stack being created"


def test_vpc_subnets_and_az_spread(moto, vpc):
    ec2 = moto.client("ec2")
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert has_required_tags(vpc["Tags"])
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        value = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
        assert value[attribute[0].upper() + attribute[1:]]["Value"] is True
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    tiers = {"public": {}, "private": {}}
    for subnet in subnets:
        tags = tagged(subnet["Tags"])
        assert has_required_tags(tags)
        tiers[tags["tier"]][subnet["CidrBlock"]] = subnet["AvailabilityZone"]
    assert tiers["public"] == {"10.0.0.0/20": f"{PRIMARY}a", "10.0.16.0/20": f"{PRIMARY}b"}
    assert tiers["private"] == {"10.0.64.0/19": f"{PRIMARY}a", "10.0.96.0/19": f"{PRIMARY}b"}
    nets = [ipaddress.ip_network(c) for tier in tiers.values() for c in tier]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_gateways_routes_and_s3_endpoint(moto, vpc):
    ec2 = moto.client("ec2")
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])
    assert len(igws["InternetGateways"]) == 1
    nats = [n for n in ec2.describe_nat_gateways(Filters=vpc_filter)["NatGateways"] if n["State"] != "deleted"]
    assert len(nats) == 1, "staging runs a single NAT gateway (aws_network_nat_mode: single)"
    assert has_required_tags(nats[0]["Tags"])
    tables = ec2.describe_route_tables(Filters=vpc_filter)["RouteTables"]
    by_name = {tagged(t.get("Tags")).get("Name"): t for t in tables}
    public = by_name[f"{NAME}-public"]
    assert any(r.get("GatewayId", "").startswith("igw-") for r in public["Routes"])
    for az in "ab":
        private = by_name[f"{NAME}-private-{PRIMARY}{az}"]
        assert [r["NatGatewayId"] for r in private["Routes"] if r.get("NatGatewayId")] == [nats[0]["NatGatewayId"]]
    endpoints = ec2.describe_vpc_endpoints(Filters=vpc_filter)["VpcEndpoints"]
    assert [e["ServiceName"] for e in endpoints] == [f"com.amazonaws.{PRIMARY}.s3"]
    assert len(endpoints[0]["RouteTableIds"]) == 3


def test_database_reachable_from_the_app_only(moto, vpc):
    ec2 = moto.client("ec2")
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    by_name = {g["GroupName"]: g for g in groups}
    alb, app, db = (by_name[f"{NAME}-{n}"] for n in ("alb", "app", "db"))
    for group in (alb, app, db):
        assert has_required_tags(group["Tags"])
    assert len(db["IpPermissions"]) == 1
    rule = db["IpPermissions"][0]
    assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
    assert rule["IpRanges"] == []
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [app["GroupId"]]
    app_from_alb = [r for r in app["IpPermissions"] if r.get("FromPort") == 8000]
    assert [p["GroupId"] for p in app_from_alb[0]["UserIdGroupPairs"]] == [alb["GroupId"]]
    assert sorted(r["FromPort"] for r in alb["IpPermissions"]) == [80, 443]


def test_database_encrypted_protected_and_backed_up(moto):
    rds = moto.client("rds")
    primary = rds.describe_db_instances(DBInstanceIdentifier=NAME)["DBInstances"][0]
    assert primary["Engine"] == "postgres"
    assert primary["StorageEncrypted"] is True
    assert primary["DeletionProtection"] is True
    assert primary["BackupRetentionPeriod"] == 30
    assert primary["PreferredBackupWindow"] == "03:00-04:00"
    assert primary["PreferredMaintenanceWindow"] == "sun:04:00-sun:05:00"
    assert primary["MultiAZ"] is False, "multi-AZ is production's"
    assert primary["PubliclyAccessible"] is False
    assert primary["DBSubnetGroup"]["DBSubnetGroupName"] == NAME
    assert [g["DBParameterGroupName"] for g in primary["DBParameterGroups"]] == [NAME]
    assert has_required_tags(primary["TagList"])
    described = rds.describe_db_parameters(DBParameterGroupName=NAME)["Parameters"]
    params = {p["ParameterName"]: p.get("ParameterValue") for p in described}
    assert params["rds.force_ssl"] == "1"
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{NAME}-replica-1")["DBInstances"][0]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == NAME
    assert has_required_tags(replica["TagList"])


def test_master_password_in_secrets_manager(moto):
    secret = moto.client("secretsmanager").get_secret_value(SecretId=f"free4allweb/{NAME}/rds-master")
    value = json.loads(secret["SecretString"])
    assert value["username"] == "free4allweb_admin"
    assert len(value["password"]) == 32
    described = moto.client("secretsmanager").describe_secret(SecretId=f"free4allweb/{NAME}/rds-master")
    assert has_required_tags(described["Tags"])
    assert [r["Region"] for r in described.get("ReplicationStatus", [])] == [DR]


def test_dr_snapshot_copied(moto):
    copies = moto.client("rds", DR).describe_db_snapshots(DBInstanceIdentifier=NAME)["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in copies] == [f"{NAME}-dr-baseline"]
    assert copies[0]["Status"] == "available"
    assert copies[0]["Encrypted"] is True


def test_backup_buckets_encrypted_private_versioned_with_lifecycle(moto):
    for region, bucket in ((PRIMARY, f"{NAME}-backups-123456789012"), (DR, f"{NAME}-backups-123456789012-dr")):
        s3 = moto.client("s3", region)
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == region
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        assert has_required_tags(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
        db, app = rules["db-backups"], rules["app-data"]
        assert db["Filter"]["Prefix"] == "db/"
        assert db["Expiration"]["Days"] == 30
        assert app["Filter"]["Prefix"] == "app/"
        assert app["Expiration"]["Days"] == 90
        # an overwritten or deleted object's old version is kept as long as the backups themselves
        assert db["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
        assert app["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
        assert [(t["Days"], t["StorageClass"]) for t in app["Transitions"]] == [(30, "STANDARD_IA"), (60, "GLACIER")]
    replication = moto.client("s3").get_bucket_replication(Bucket=f"{NAME}-backups-123456789012")
    rule = replication["ReplicationConfiguration"]["Rules"][0]
    assert rule["Destination"]["Bucket"] == f"arn:aws:s3:::{NAME}-backups-123456789012-dr"
    assert rule["Status"] == "Enabled"


def test_eks_cluster_private_with_logging_and_node_groups(moto, staging_vars):
    eks = moto.client("eks")
    cluster = eks.describe_cluster(name=NAME)["cluster"]
    assert cluster["version"] == "1.31"
    vpc_config = cluster["resourcesVpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["endpointPublicAccess"] is False
    logged = {t for g in cluster["logging"]["clusterLogging"] if g["enabled"] for t in g["types"]}
    assert logged == {"api", "audit", "authenticator"}
    assert has_required_tags(cluster["tags"])
    groups = {n: eks.describe_nodegroup(clusterName=NAME, nodegroupName=n)["nodegroup"] for n in ("api", "batch")}
    assert groups["api"]["capacityType"] == "ON_DEMAND"
    assert groups["api"]["scalingConfig"] == {"minSize": 2, "maxSize": 3, "desiredSize": 2}
    assert groups["batch"]["capacityType"] == "SPOT"
    assert groups["batch"]["taints"] == [{"key": "workload", "value": "batch", "effect": "NO_SCHEDULE"}]
    assert has_required_tags(groups["api"]["tags"])
    iam = moto.client("iam")
    policies = iam.list_attached_role_policies(RoleName=f"{NAME}-eks-node")["AttachedPolicies"]
    assert "AmazonEKSWorkerNodePolicy" in {p["PolicyName"] for p in policies}
    with open(staging_vars["aws_eks_kubeconfig_path"]) as fh:
        kubeconfig = yaml.safe_load(fh)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster["endpoint"]


def test_load_balancer_tls_redirect_and_colours(moto, staging_vars):
    elb = moto.client("elbv2")
    lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    assert has_required_tags(elb.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"])
    described = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    listeners = {listener["Port"]: listener for listener in described}
    https, http = listeners[443], listeners[80]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"][0]["CertificateArn"] == staging_vars["free4allweb_aws_certificate_arn"]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    redirect = http["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
    found = elb.describe_target_groups(Names=[f"{NAME}-blue", f"{NAME}-green"])["TargetGroups"]
    groups = {g["TargetGroupName"]: g for g in found}
    for group in groups.values():
        assert group["HealthCheckPath"] == "/ready"
        assert group["TargetType"] == "ip"
    forward = https["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    assert {g["TargetGroupArn"]: g["Weight"] for g in forward} == {
        groups[f"{NAME}-blue"]["TargetGroupArn"]: 100,
        groups[f"{NAME}-green"]["TargetGroupArn"]: 0,
    }


def test_dns_alias_and_health_check(moto):
    route53 = moto.client("route53")
    zone = route53.list_hosted_zones_by_name(DNSName="staging.free4allweb.example")["HostedZones"][0]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    api = [r for r in records if r["Name"] == "api.staging.free4allweb.example." and r["Type"] == "A"]
    lb = moto.client("elbv2").describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    assert api[0]["AliasTarget"]["DNSName"].rstrip(".") == lb["DNSName"]
    checks = route53.list_health_checks()["HealthChecks"]
    config = [c["HealthCheckConfig"] for c in checks]
    config = [c for c in config if c.get("FullyQualifiedDomainName") == lb["DNSName"]]
    assert config and config[0]["Type"] == "HTTPS" and config[0]["ResourcePath"] == "/health"
    zone_tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone["Id"].split("/")[-1])
    assert has_required_tags(zone_tags["ResourceTagSet"]["Tags"])


def test_no_secret_in_the_output(moto, provisioned):
    password = json.loads(
        moto.client("secretsmanager").get_secret_value(SecretId=f"free4allweb/{NAME}/rds-master")["SecretString"]
    )["password"]
    assert len(password) == 32
    assert "rds-master" in provisioned.output, "the output should at least name the secret"
    assert password not in provisioned.output
