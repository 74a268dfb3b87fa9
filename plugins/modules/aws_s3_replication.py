#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aws_s3_replication
short_description: Replicate an S3 bucket into another bucket (for example in the DR region)
version_added: "0.1.0"
description:
  - Sets, or removes, the replication configuration of a bucket; M(amazon.aws.s3_bucket) has no
    option for it. Both buckets need versioning on.
  - The configuration is compared with the bucket's before writing, so a rerun changes nothing.
options:
  bucket:
    description: Source bucket name.
    type: str
    required: true
  state:
    description: Whether the replication configuration should exist.
    type: str
    choices: [present, absent]
    default: present
  role_arn:
    description: IAM role S3 assumes to replicate. Required when O(state=present).
    type: str
  rules:
    description: Replication rules. Required when O(state=present).
    type: list
    elements: dict
    suboptions:
      id:
        description: Rule ID.
        type: str
        required: true
      destination_bucket:
        description: Destination bucket name or ARN.
        type: str
        required: true
      prefix:
        description: Replicate only keys under this prefix (empty for all).
        type: str
        default: ""
      priority:
        description: Rule priority, when rules overlap.
        type: int
        default: 1
      storage_class:
        description: Storage class of the replicas.
        type: str
        default: STANDARD
      replicate_deletes:
        description: Replicate delete markers too. Off by default so a deletion in the primary
          region does not reach the DR copy.
        type: bool
        default: false
      replica_kms_key_id:
        description: KMS key (in the destination region) to encrypt replicas of KMS-encrypted objects.
        type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Replicate the backup bucket into the DR region
  free4allweb.devops.aws_s3_replication:
    bucket: free4allweb-production-backups
    role_arn: arn:aws:iam::123456789012:role/free4allweb-production-backup-replication
    rules:
      - id: dr-copy
        destination_bucket: free4allweb-production-backups-dr
        storage_class: STANDARD_IA
"""

RETURN = r"""
replication:
  description: The bucket's replication configuration after the task.
  returned: when state is present
  type: dict
  sample: {Role: "arn:aws:iam::123456789012:role/r", Rules: [{ID: dr-copy, Status: Enabled}]}
"""

import contextlib

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.free4allweb.devops.plugins.module_utils.aws.s3_replication import differs, wanted_rule


def current_configuration(module, client):
    try:
        return client.get_bucket_replication(Bucket=module.params["bucket"])["ReplicationConfiguration"]
    except is_boto3_error_code("ReplicationConfigurationNotFoundError"):
        return None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Couldn't read replication of bucket {module.params['bucket']}")


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "bucket": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "role_arn": {"type": "str"},
            "rules": {
                "type": "list",
                "elements": "dict",
                "options": {
                    "id": {"type": "str", "required": True},
                    "destination_bucket": {"type": "str", "required": True},
                    "prefix": {"type": "str", "default": ""},
                    "priority": {"type": "int", "default": 1},
                    "storage_class": {"type": "str", "default": "STANDARD"},
                    "replicate_deletes": {"type": "bool", "default": False},
                    "replica_kms_key_id": {"type": "str"},
                },
            },
        },
        required_if=[["state", "present", ["role_arn", "rules"]]],
        supports_check_mode=True,
    )
    p = module.params
    client = module.client("s3")
    current = current_configuration(module, client)

    if p["state"] == "absent":
        if current is None:
            module.exit_json(changed=False)
        if not module.check_mode:
            try:
                client.delete_bucket_replication(Bucket=p["bucket"])
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                module.fail_json_aws(e, msg=f"Couldn't remove replication of bucket {p['bucket']}")
        module.exit_json(changed=True)

    rules = [wanted_rule(rule_id=r.pop("id"), **r) for r in (dict(r) for r in p["rules"])]
    if not differs(current, p["role_arn"], rules):
        module.exit_json(changed=False, replication=current)
    wanted = {"Role": p["role_arn"], "Rules": rules}
    if not module.check_mode:
        try:
            client.put_bucket_replication(Bucket=p["bucket"], ReplicationConfiguration=wanted)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Couldn't set replication of bucket {p['bucket']}")
    module.exit_json(changed=True, replication=wanted)


if __name__ == "__main__":
    main()
