"""S3 replication rules: build the wanted configuration and compare it with the bucket's.

amazon.aws.s3_bucket has no replication option; the `aws_s3_replication` module uses these.
Plain Python, no Ansible.
"""

from __future__ import annotations


def bucket_arn(bucket: str) -> str:
    return bucket if bucket.startswith("arn:") else f"arn:aws:s3:::{bucket}"


def wanted_rule(
    *,
    rule_id: str,
    destination_bucket: str,
    prefix: str = "",
    priority: int = 1,
    storage_class: str = "STANDARD",
    replicate_deletes: bool = False,
    replica_kms_key_id: str | None = None,
) -> dict:
    rule: dict = {
        "ID": rule_id,
        "Priority": int(priority),
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "DeleteMarkerReplication": {"Status": "Enabled" if replicate_deletes else "Disabled"},
        "Destination": {"Bucket": bucket_arn(destination_bucket), "StorageClass": storage_class},
    }
    if replica_kms_key_id:
        rule["SourceSelectionCriteria"] = {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
        rule["Destination"]["EncryptionConfiguration"] = {"ReplicaKmsKeyID": replica_kms_key_id}
    return rule


def _normal_rule(rule: dict) -> dict:
    destination = rule.get("Destination") or {}
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
    kms = (destination.get("EncryptionConfiguration") or {}).get("ReplicaKmsKeyID")
    sse = ((rule.get("SourceSelectionCriteria") or {}).get("SseKmsEncryptedObjects") or {}).get("Status")
    return {
        "ID": rule.get("ID"),
        "Priority": int(rule.get("Priority", 0)),
        "Status": rule.get("Status"),
        "Prefix": prefix or "",
        "DeleteMarkerReplication": (rule.get("DeleteMarkerReplication") or {}).get("Status", "Disabled"),
        "Bucket": destination.get("Bucket"),
        "StorageClass": destination.get("StorageClass", "STANDARD"),
        "ReplicaKmsKeyID": kms,
        "SseKmsEncryptedObjects": sse if kms else None,
    }


def normalise(config: dict | None) -> dict | None:
    """A replication configuration reduced to what this collection sets, rules sorted by ID."""
    if not config:
        return None
    return {
        "Role": config.get("Role"),
        "Rules": sorted((_normal_rule(r) for r in config.get("Rules", [])), key=lambda r: r["ID"] or ""),
    }


def differs(current: dict | None, role_arn: str, rules: list[dict]) -> bool:
    return normalise(current) != normalise({"Role": role_arn, "Rules": rules})
