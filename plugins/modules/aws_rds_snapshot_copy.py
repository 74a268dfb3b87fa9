#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aws_rds_snapshot_copy
short_description: Copy an RDS DB snapshot into another region (for disaster recovery)
version_added: "0.1.0"
description:
  - Copies a DB snapshot from O(source_region) into the module's region under O(snapshot_id),
    unless a snapshot of that name is already there (then only its tags are brought in line).
  - Exists because M(amazon.aws.rds_instance_snapshot) cannot pass a KMS key to the copy, and
    AWS refuses a cross-region copy of an encrypted snapshot without one.
options:
  snapshot_id:
    description: Name of the copy in this region.
    type: str
    required: true
  source_snapshot_arn:
    description: ARN of the snapshot to copy.
    type: str
    required: true
  source_region:
    description: Region of the source snapshot.
    type: str
    required: true
  kms_key_id:
    description: KMS key in this region to encrypt the copy with. Required by AWS for encrypted
      snapshots; C(alias/aws/rds) is the region's default RDS key.
    type: str
    default: alias/aws/rds
  copy_tags:
    description: Copy the source snapshot's tags.
    type: bool
    default: true
  tags:
    description: Tags for the copy.
    type: dict
    default: {}
  wait:
    description: Wait until the copy is available.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 3600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Copy the nightly snapshot into the DR region
  free4allweb.devops.aws_rds_snapshot_copy:
    region: us-west-2
    snapshot_id: free4allweb-production-dr-20260101
    source_snapshot_arn: arn:aws:rds:us-east-1:123456789012:snapshot:free4allweb-production-dr-20260101
    source_region: us-east-1
    kms_key_id: alias/aws/rds
    tags:
      environment: production
      owner: platform
      cost-centre: cc-1042
"""

RETURN = r"""
snapshot:
  description: The copy as RDS describes it (snake_case keys).
  returned: unless in check mode and the copy does not exist yet
  type: dict
  contains:
    db_snapshot_identifier:
      description: Name of the copy.
      type: str
    db_snapshot_arn:
      description: ARN of the copy.
      type: str
    status:
      description: Snapshot status.
      type: str
    db_instance_identifier:
      description: The instance the snapshot was taken from.
      type: str
"""

import contextlib

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)
from ansible_collections.free4allweb.devops.plugins.module_utils.aws.eks import tag_changes


def describe(module, client):
    try:
        found = client.describe_db_snapshots(DBSnapshotIdentifier=module.params["snapshot_id"])["DBSnapshots"]
    except is_boto3_error_code("DBSnapshotNotFound"):
        return None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Couldn't describe snapshot {module.params['snapshot_id']}")
    return found[0] if found else None


def result(snapshot):
    out = camel_dict_to_snake_dict(snapshot, ignore_list=["TagList"])
    out["tags"] = boto3_tag_list_to_ansible_dict(snapshot.get("TagList", []))
    return out


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "snapshot_id": {"type": "str", "required": True},
            "source_snapshot_arn": {"type": "str", "required": True},
            "source_region": {"type": "str", "required": True},
            "kms_key_id": {"type": "str", "default": "alias/aws/rds"},
            "copy_tags": {"type": "bool", "default": True},
            "tags": {"type": "dict", "default": {}},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 3600},
        },
        supports_check_mode=True,
    )
    p = module.params
    client = module.client("rds")
    existing = describe(module, client)

    if existing:
        current_tags = boto3_tag_list_to_ansible_dict(existing.get("TagList", []))
        to_set = tag_changes(current_tags, p["tags"], purge=False)[0]
        if to_set and not module.check_mode:
            try:
                client.add_tags_to_resource(
                    ResourceName=existing["DBSnapshotArn"], Tags=ansible_dict_to_boto3_tag_list(to_set)
                )
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                module.fail_json_aws(e, msg=f"Couldn't tag snapshot {p['snapshot_id']}")
            existing = describe(module, client)
        module.exit_json(changed=bool(to_set), snapshot=result(existing))

    if module.check_mode:
        module.exit_json(changed=True)
    try:
        client.copy_db_snapshot(
            SourceDBSnapshotIdentifier=p["source_snapshot_arn"],
            TargetDBSnapshotIdentifier=p["snapshot_id"],
            SourceRegion=p["source_region"],  # botocore signs the pre-signed URL from it
            KmsKeyId=p["kms_key_id"],
            CopyTags=p["copy_tags"],
            Tags=ansible_dict_to_boto3_tag_list(p["tags"]),
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"Couldn't copy {p['source_snapshot_arn']} to {p['snapshot_id']}")
    if p["wait"]:
        waiter = client.get_waiter("db_snapshot_available")  # botocore's own RDS waiter
        try:
            waiter.wait(
                DBSnapshotIdentifier=p["snapshot_id"],
                WaiterConfig={"Delay": 15, "MaxAttempts": 1 + p["wait_timeout"] // 15},
            )
        except botocore.exceptions.WaiterError as e:
            module.fail_json_aws(e, msg=f"Timed out waiting for snapshot copy {p['snapshot_id']}")
    module.exit_json(changed=True, snapshot=result(describe(module, client)))


if __name__ == "__main__":
    main()
