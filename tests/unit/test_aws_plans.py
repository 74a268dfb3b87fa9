"""Pure logic of the aws roles' own modules and filters: subnet plans, EKS updates, S3 replication."""

from __future__ import annotations

import pytest

from ansible_collections.free4allweb.devops.plugins.module_utils.aws.eks import (
    create_request,
    current_access,
    endpoint_problems,
    needed_updates,
    tag_changes,
    wanted_access,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.aws.network import subnet_plan_problems
from ansible_collections.free4allweb.devops.plugins.module_utils.aws.s3_replication import (
    differs,
    normalise,
    wanted_rule,
)

PUBLIC = ["10.0.0.0/20", "10.0.16.0/20"]
PRIVATE = ["10.0.64.0/19", "10.0.96.0/19"]


def test_sound_subnet_plan_has_no_problems():
    assert subnet_plan_problems("10.0.0.0/16", {"public": PUBLIC, "private": PRIVATE}) == []


def test_overlap_across_tiers_names_both_variables():
    problems = subnet_plan_problems("10.0.0.0/16", {"public": PUBLIC, "private": ["10.0.8.0/24", "10.0.96.0/19"]})
    assert problems == ["subnet CIDRs overlap: 10.0.0.0/20 (public) and 10.0.8.0/24 (private)"]


def test_subnet_outside_vpc_and_host_bits_are_reported():
    problems = subnet_plan_problems("10.0.0.0/16", {"public": ["10.1.0.0/24", "10.0.0.1/24"]})
    assert "public: 10.1.0.0/24 is outside the VPC CIDR 10.0.0.0/16" in problems
    assert any("10.0.0.1/24" in p and "not a valid network" in p for p in problems)


def test_bad_vpc_cidr_stops_early():
    assert subnet_plan_problems("10.0.0.0/33", {"a": PUBLIC})[0].startswith("VPC CIDR '10.0.0.0/33'")


@pytest.mark.parametrize(
    ("private", "public", "cidrs", "fragment"),
    [
        (True, True, [], "public_access_cidrs is empty"),
        (True, True, ["0.0.0.0/0"], "no allow-list"),
        (False, False, [], "at least one"),
        (True, False, ["203.0.113.0/24"], "public endpoint is off"),
    ],
)
def test_endpoint_problems(private, public, cidrs, fragment):
    assert any(fragment in p for p in endpoint_problems(private, public, cidrs))


def test_private_only_and_allow_listed_public_are_fine():
    assert endpoint_problems(True, False, []) == []
    assert endpoint_problems(True, True, ["203.0.113.0/24"]) == []


def cluster(**vpc):
    return {
        "version": "1.30",
        "resourcesVpcConfig": {"subnetIds": ["s1"], **vpc},
        "logging": {"clusterLogging": [{"types": ["api", "audit", "authenticator"], "enabled": True}]},
    }


def test_in_step_cluster_needs_nothing():
    access = wanted_access(True, False, [])
    current = cluster(endpointPrivateAccess=True, endpointPublicAccess=False)
    assert needed_updates(current, "1.30", access, ["api", "audit", "authenticator"]) == []


def test_aws_defaults_count_as_public_open_to_all():
    assert current_access(cluster()) == {
        "endpointPrivateAccess": False,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["0.0.0.0/0"],
    }
    updates = needed_updates(cluster(), "1.30", wanted_access(True, False, []), ["api", "audit", "authenticator"])
    assert [name for name, _ in updates] == ["access"]


def test_version_access_and_logging_updates_come_in_order():
    updates = needed_updates(cluster(), "1.31", wanted_access(True, True, ["203.0.113.0/24"]), ["api"])
    assert [name for name, _ in updates] == ["version", "access", "logging"]
    assert updates[1][1]["resourcesVpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    groups = updates[2][1]["logging"]["clusterLogging"]
    assert groups[0] == {"types": ["api"], "enabled": True}


def test_version_skips_and_downgrades_are_refused():
    with pytest.raises(ValueError, match="one minor version at a time"):
        needed_updates(cluster(), "1.32", wanted_access(True, False, []), [])
    with pytest.raises(ValueError, match="cannot go down"):
        needed_updates(cluster(), "1.29", wanted_access(True, False, []), [])


def test_create_request_carries_access_logging_and_tags():
    request = create_request(
        name="c",
        version="1.31",
        role_arn="arn:role",
        subnets=["s1", "s2"],
        security_groups=[],
        access=wanted_access(True, False, []),
        log_types=["audit"],
        tags={"environment": "staging"},
    )
    assert request["resourcesVpcConfig"]["endpointPublicAccess"] is False
    assert request["logging"]["clusterLogging"][0] == {"types": ["audit"], "enabled": True}
    assert request["tags"] == {"environment": "staging"}


def test_tag_changes():
    assert tag_changes({"a": "1", "b": "2"}, {"a": "1", "c": "3"}, purge=True) == ({"c": "3"}, ["b"])
    assert tag_changes({"a": "1", "b": "2"}, {"a": "9"}, purge=False) == ({"a": "9"}, [])


def test_replication_round_trip_is_not_a_change():
    rule = wanted_rule(rule_id="dr", destination_bucket="dst", storage_class="STANDARD_IA")
    described = {
        "Role": "arn:role",
        "Rules": [
            {
                "ID": "dr",
                "Priority": 1,
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "Destination": {"Bucket": "arn:aws:s3:::dst", "StorageClass": "STANDARD_IA"},
                "DeleteMarkerReplication": {"Status": "Disabled"},
            }
        ],
    }
    assert not differs(described, "arn:role", [rule])
    assert differs(described, "arn:other-role", [rule])
    assert differs(None, "arn:role", [rule])


def test_replica_kms_key_selects_kms_objects():
    rule = wanted_rule(rule_id="dr", destination_bucket="arn:aws:s3:::dst", replica_kms_key_id="alias/dr")
    normal = normalise({"Role": "r", "Rules": [rule]})["Rules"][0]
    assert normal["ReplicaKmsKeyID"] == "alias/dr"
    assert normal["SseKmsEncryptedObjects"] == "Enabled"
