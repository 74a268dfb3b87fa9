"""The staging stack of playbooks/aws/provision.yml, created by a plain boto3 script.

The baseline of benchmarks/aws/run: the same resources with the same settings, in one Python
process, each one looked up first and created only when missing (so a second run, like the
playbook's, only reads). What it leaves out compared with the roles: no input checks, no drift
correction of existing resources (a changed setting is not noticed), no check mode.

    python benchmarks/aws/boto3_stack.py CERT_ARN DR_CERT_ARN KUBECONFIG
(region, names and sizes as inventories/staging; the endpoint comes from AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import json
import secrets
import string
import sys

import boto3
from botocore.exceptions import ClientError

REGION, DR = "eu-west-1", "eu-central-1"
ACCOUNT = "123456789012"
NAME = "free4allweb-staging"
TAGS = {"environment": "staging", "owner": "platform-engineering", "cost-centre": "CC-4100"}
BUCKET = f"{NAME}-backups-{ACCOUNT}"
ZONE = "staging.free4allweb.example"


def tag_list(extra: dict | None = None) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in {**TAGS, **(extra or {})}.items()]


def spec(resource: str, extra: dict | None = None) -> list[dict]:
    return [{"ResourceType": resource, "Tags": tag_list(extra)}]


def missing(error: ClientError, *codes: str) -> bool:
    return error.response["Error"]["Code"] in codes


def network(ec2) -> dict:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"]
    if vpcs:
        vpc = vpcs[0]["VpcId"]
    else:
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec("vpc", {"Name": NAME}))["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    existing = {
        s["CidrBlock"]: s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    }
    subnets = {}
    for tier, cidrs in (("public", ["10.0.0.0/20", "10.0.16.0/20"]), ("private", ["10.0.64.0/19", "10.0.96.0/19"])):
        for cidr, az in zip(cidrs, ("a", "b"), strict=True):
            if cidr not in existing:
                tags = {"Name": f"{NAME}-{tier}-{REGION}{az}", "tier": tier}
                existing[cidr] = ec2.create_subnet(
                    VpcId=vpc, CidrBlock=cidr, AvailabilityZone=REGION + az, TagSpecifications=spec("subnet", tags)
                )["Subnet"]["SubnetId"]
                if tier == "public":
                    ec2.modify_subnet_attribute(SubnetId=existing[cidr], MapPublicIpOnLaunch={"Value": True})
            subnets.setdefault(tier, []).append(existing[cidr])
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"]
    if igws:
        igw = igws[0]["InternetGatewayId"]
    else:
        igw = ec2.create_internet_gateway(TagSpecifications=spec("internet-gateway", {"Name": NAME}))
        igw = igw["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    nats = ec2.describe_nat_gateways(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "state", "Values": ["available"]}]
    )
    if nats["NatGateways"]:
        nat = nats["NatGateways"][0]["NatGatewayId"]
    else:
        eip = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip"))["AllocationId"]
        nat = ec2.create_nat_gateway(
            SubnetId=subnets["public"][0],
            AllocationId=eip,
            TagSpecifications=spec("natgateway", {"Name": f"{NAME}-nat"}),
        )["NatGateway"]["NatGatewayId"]
        ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat])
    tables = {
        {x["Key"]: x["Value"] for x in t.get("Tags", [])}.get("Name"): t["RouteTableId"]
        for t in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    }
    routes = [(f"{NAME}-public", subnets["public"], {"GatewayId": igw})]
    routes += [
        (f"{NAME}-private-{REGION}{az}", [s], {"NatGatewayId": nat})
        for az, s in zip("ab", subnets["private"], strict=True)
    ]
    for name, members, target in routes:
        if name not in tables:
            table = ec2.create_route_table(VpcId=vpc, TagSpecifications=spec("route-table", {"Name": name}))
            tables[name] = table["RouteTable"]["RouteTableId"]
            ec2.create_route(RouteTableId=tables[name], DestinationCidrBlock="0.0.0.0/0", **target)
            for subnet in members:
                ec2.associate_route_table(RouteTableId=tables[name], SubnetId=subnet)
    groups = {
        g["GroupName"]: g["GroupId"]
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
    }

    def group(suffix: str, rules) -> str:
        name = f"{NAME}-{suffix}"
        if name not in groups:
            groups[name] = ec2.create_security_group(
                GroupName=name, Description=f"free4allweb {suffix}", VpcId=vpc, TagSpecifications=spec("security-group")
            )["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=groups[name], IpPermissions=rules(groups[name]))
        return groups[name]

    alb = group(
        "alb",
        lambda _: [
            {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]} for p in (80, 443)
        ],
    )
    app = group(
        "app",
        lambda me: [
            {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "UserIdGroupPairs": [{"GroupId": alb}]},
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": me}]},
        ],
    )
    db = group(
        "db",
        lambda _: [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": app}]}],
    )
    service = f"com.amazonaws.{REGION}.s3"
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "service-name", "Values": [service]}]
    )
    if not endpoints["VpcEndpoints"]:
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=service,
            RouteTableIds=list(tables[n] for n, _, _ in routes),
            TagSpecifications=spec("vpc-endpoint"),
        )
    return {"vpc": vpc, "subnets": subnets, "alb_sg": alb, "db_sg": db}


def bucket(region: str, name: str) -> None:
    s3 = boto3.client("s3", region_name=region)
    try:
        s3.head_bucket(Bucket=name)
        return
    except ClientError as error:
        if not missing(error, "404", "NoSuchBucket"):
            raise
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        },
    )
    s3.put_bucket_ownership_controls(
        Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list()})
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "db-backups",
                    "Filter": {"Prefix": "db/"},
                    "Status": "Enabled",
                    "Expiration": {"Days": 30},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
                {
                    "ID": "app-data",
                    "Filter": {"Prefix": "app/"},
                    "Status": "Enabled",
                    "Expiration": {"Days": 90},
                    "Transitions": [
                        {"Days": 30, "StorageClass": "STANDARD_IA"},
                        {"Days": 60, "StorageClass": "GLACIER"},
                    ],
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
            ]
        },
    )


def role(iam, name: str, service: str, policies: list[str]) -> str:
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as error:
        if not missing(error, "NoSuchEntity"):
            raise
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Tags=tag_list())["Role"]["Arn"]
    for policy in policies:
        iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:aws:iam::aws:policy/{policy}")
    return arn


def backup_storage(iam) -> None:
    bucket(REGION, BUCKET)
    bucket(DR, f"{BUCKET}-dr")
    arn = role(iam, f"{BUCKET}-replication", "s3.amazonaws.com", [])
    s3 = boto3.client("s3", region_name=REGION)
    try:
        s3.get_bucket_replication(Bucket=BUCKET)
    except ClientError as error:
        if not missing(error, "ReplicationConfigurationNotFoundError"):
            raise
        iam.put_role_policy(
            RoleName=f"{BUCKET}-replication",
            PolicyName="replicate-backups",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        s3.put_bucket_replication(
            Bucket=BUCKET,
            ReplicationConfiguration={
                "Role": arn,
                "Rules": [
                    {
                        "ID": "dr-copy",
                        "Priority": 1,
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "DeleteMarkerReplication": {"Status": "Disabled"},
                        "Destination": {"Bucket": f"arn:aws:s3:::{BUCKET}-dr", "StorageClass": "STANDARD_IA"},
                    }
                ],
            },
        )


def database(net: dict) -> None:
    rds, sm = boto3.client("rds", region_name=REGION), boto3.client("secretsmanager", region_name=REGION)
    secret_id = f"free4allweb/{NAME}/rds-master"
    try:
        password = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])["password"]
    except ClientError as error:
        if not missing(error, "ResourceNotFoundException"):
            raise
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        value = {
            "username": "free4allweb_admin",
            "password": password,
            "engine": "postgres",
            "port": 5432,
            "dbname": "free4allweb",
        }
        sm.create_secret(
            Name=secret_id, SecretString=json.dumps(value), Tags=tag_list(), AddReplicaRegions=[{"Region": DR}]
        )
    try:
        rds.describe_db_subnet_groups(DBSubnetGroupName=NAME)
    except ClientError as error:
        if not missing(error, "DBSubnetGroupNotFoundFault"):
            raise
        rds.create_db_subnet_group(
            DBSubnetGroupName=NAME, DBSubnetGroupDescription=NAME, SubnetIds=net["subnets"]["private"], Tags=tag_list()
        )
    try:
        rds.describe_db_parameter_groups(DBParameterGroupName=NAME)
    except ClientError as error:
        if not missing(error, "DBParameterGroupNotFound"):
            raise
        rds.create_db_parameter_group(
            DBParameterGroupName=NAME, DBParameterGroupFamily="postgres16", Description=NAME, Tags=tag_list()
        )
        rds.modify_db_parameter_group(
            DBParameterGroupName=NAME,
            Parameters=[
                {"ParameterName": "rds.force_ssl", "ParameterValue": "1", "ApplyMethod": "immediate"},
                {"ParameterName": "log_min_duration_statement", "ParameterValue": "500", "ApplyMethod": "immediate"},
            ],
        )
    instances = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}
    if NAME not in instances:
        rds.create_db_instance(
            DBInstanceIdentifier=NAME,
            Engine="postgres",
            EngineVersion="16",
            DBInstanceClass="db.t4g.medium",
            AllocatedStorage=50,
            MaxAllocatedStorage=200,
            StorageType="gp3",
            StorageEncrypted=True,
            MultiAZ=False,
            DeletionProtection=True,
            BackupRetentionPeriod=30,
            PreferredBackupWindow="03:00-04:00",
            PreferredMaintenanceWindow="sun:04:00-sun:05:00",
            DBSubnetGroupName=NAME,
            DBParameterGroupName=NAME,
            VpcSecurityGroupIds=[net["db_sg"]],
            PubliclyAccessible=False,
            DBName="free4allweb",
            MasterUsername="free4allweb_admin",
            MasterUserPassword=password,
            CopyTagsToSnapshot=True,
            EnableCloudwatchLogsExports=["postgresql"],
            Tags=tag_list(),
        )
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=NAME)
    if f"{NAME}-replica-1" not in instances:
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=f"{NAME}-replica-1",
            SourceDBInstanceIdentifier=NAME,
            DBInstanceClass="db.t4g.medium",
            VpcSecurityGroupIds=[net["db_sg"]],
            PubliclyAccessible=False,
            Tags=tag_list({"role": "read-replica"}),
        )
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=f"{NAME}-replica-1")
    snapshot = f"{NAME}-dr-baseline"
    try:
        arn = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"][0]["DBSnapshotArn"]
    except ClientError as error:
        if not missing(error, "DBSnapshotNotFound"):
            raise
        arn = rds.create_db_snapshot(DBSnapshotIdentifier=snapshot, DBInstanceIdentifier=NAME, Tags=tag_list())[
            "DBSnapshot"
        ]["DBSnapshotArn"]
        rds.get_waiter("db_snapshot_available").wait(DBSnapshotIdentifier=snapshot)
    dr = boto3.client("rds", region_name=DR)
    try:
        dr.describe_db_snapshots(DBSnapshotIdentifier=snapshot)
    except ClientError as error:
        if not missing(error, "DBSnapshotNotFound"):
            raise
        dr.copy_db_snapshot(
            SourceDBSnapshotIdentifier=arn,
            TargetDBSnapshotIdentifier=snapshot,
            SourceRegion=REGION,
            KmsKeyId="alias/aws/rds",
            CopyTags=True,
            Tags=tag_list({"dr-copy-of": NAME}),
        )
        dr.get_waiter("db_snapshot_available").wait(DBSnapshotIdentifier=snapshot)


def cluster(iam, net: dict, kubeconfig: str) -> None:
    eks = boto3.client("eks", region_name=REGION)
    cluster_role = role(
        iam, f"{NAME}-eks-cluster", "eks.amazonaws.com", ["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"]
    )
    node_role = role(
        iam,
        f"{NAME}-eks-node",
        "ec2.amazonaws.com",
        ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"],
    )
    if NAME not in eks.list_clusters()["clusters"]:
        eks.create_cluster(
            name=NAME,
            version="1.31",
            roleArn=cluster_role,
            resourcesVpcConfig={
                "subnetIds": net["subnets"]["private"],
                "endpointPrivateAccess": True,
                "endpointPublicAccess": False,
            },
            logging={
                "clusterLogging": [
                    {"types": ["api", "audit", "authenticator"], "enabled": True},
                    {"types": ["controllerManager", "scheduler"], "enabled": False},
                ]
            },
            tags=TAGS,
        )
        eks.get_waiter("cluster_active").wait(name=NAME)
    groups = set(eks.list_nodegroups(clusterName=NAME)["nodegroups"])
    for name, capacity, types, sizes, labels, taints in (
        ("api", "ON_DEMAND", ["m6i.large"], (2, 3, 2), {"workload": "api"}, []),
        (
            "batch",
            "SPOT",
            ["m6i.large", "m6a.large", "m5.large"],
            (0, 2, 0),
            {"workload": "batch"},
            [{"key": "workload", "value": "batch", "effect": "NO_SCHEDULE"}],
        ),
    ):
        if name not in groups:
            eks.create_nodegroup(
                clusterName=NAME,
                nodegroupName=name,
                nodeRole=node_role,
                subnets=net["subnets"]["private"],
                capacityType=capacity,
                instanceTypes=types,
                diskSize=50,
                labels=labels,
                taints=taints,
                scalingConfig={"minSize": sizes[0], "maxSize": sizes[1], "desiredSize": sizes[2]},
                updateConfig={"maxUnavailable": 1},
                tags={**TAGS, "capacity": capacity},
            )
            eks.get_waiter("nodegroup_active").wait(clusterName=NAME, nodegroupName=name)
    described = eks.describe_cluster(name=NAME)["cluster"]
    with open(kubeconfig, "w") as fh:
        json.dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": NAME, "cluster": {"server": described["endpoint"]}}],
            },
            fh,
        )


def edge(net: dict, certificate: str) -> None:
    elb, route53 = boto3.client("elbv2", region_name=REGION), boto3.client("route53")
    arns = {}
    for colour in ("blue", "green"):
        name = f"{NAME}-{colour}"
        try:
            arns[colour] = elb.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]
        except ClientError as error:
            if not missing(error, "TargetGroupNotFound"):
                raise
            arns[colour] = elb.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=8000,
                VpcId=net["vpc"],
                TargetType="ip",
                HealthCheckPath="/ready",
                HealthCheckIntervalSeconds=10,
                HealthyThresholdCount=2,
                UnhealthyThresholdCount=2,
                Matcher={"HttpCode": "200"},
                Tags=tag_list({"colour": colour}),
            )["TargetGroups"][0]["TargetGroupArn"]
    try:
        lb = elb.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    except ClientError as error:
        if not missing(error, "LoadBalancerNotFound"):
            raise
        lb = elb.create_load_balancer(
            Name=NAME,
            Subnets=net["subnets"]["public"],
            SecurityGroups=[net["alb_sg"]],
            Scheme="internet-facing",
            Tags=tag_list(),
        )["LoadBalancers"][0]
        elb.modify_load_balancer_attributes(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Attributes=[{"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"}],
        )
        elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
            ],
        )
        elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTPS",
            Port=443,
            Certificates=[{"CertificateArn": certificate}],
            SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
            DefaultActions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": arns["blue"], "Weight": 100},
                            {"TargetGroupArn": arns["green"], "Weight": 0},
                        ]
                    },
                }
            ],
        )
    zones = route53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"]
    if zones and zones[0]["Name"].rstrip(".") == ZONE:
        zone = zones[0]["Id"]
    else:
        zone = route53.create_hosted_zone(Name=ZONE, CallerReference=NAME)["HostedZone"]["Id"]
        route53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone.split("/")[-1], AddTags=tag_list())
    records = route53.list_resource_record_sets(HostedZoneId=zone, StartRecordName=f"api.{ZONE}", StartRecordType="A")
    alias = [r for r in records["ResourceRecordSets"] if r["Name"] == f"api.{ZONE}." and r.get("AliasTarget")]
    if not alias or alias[0]["AliasTarget"]["DNSName"].rstrip(".") != lb["DNSName"]:
        route53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": f"api.{ZONE}",
                            "Type": "A",
                            "AliasTarget": {
                                "HostedZoneId": lb["CanonicalHostedZoneId"],
                                "DNSName": lb["DNSName"],
                                "EvaluateTargetHealth": True,
                            },
                        },
                    }
                ]
            },
        )
    checks = route53.list_health_checks()["HealthChecks"]
    if not any(c["HealthCheckConfig"].get("FullyQualifiedDomainName") == lb["DNSName"] for c in checks):
        check = route53.create_health_check(
            CallerReference=f"{NAME}-{REGION}",
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": lb["DNSName"],
                "Port": 443,
                "ResourcePath": "/health",
                "RequestInterval": 30,
                "FailureThreshold": 3,
            },
        )["HealthCheck"]["Id"]
        route53.change_tags_for_resource(
            ResourceType="healthcheck", ResourceId=check, AddTags=tag_list({"Name": f"{NAME}-{REGION}"})
        )


def main(certificate: str, dr_certificate: str, kubeconfig: str) -> None:
    del dr_certificate  # the DR region's certificate is only used by the DR playbook
    iam = boto3.client("iam", region_name=REGION)
    boto3.client("sts", region_name=REGION).get_caller_identity()
    net = network(boto3.client("ec2", region_name=REGION))
    backup_storage(iam)
    database(net)
    cluster(iam, net, kubeconfig)
    edge(net, certificate)


if __name__ == "__main__":
    main(*sys.argv[1:4])
