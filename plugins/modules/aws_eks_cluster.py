#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aws_eks_cluster
short_description: An EKS cluster with its endpoint access and control-plane logging
version_added: "0.1.0"
description:
  - Creates an EKS cluster with the wanted Kubernetes version, private and public endpoint access
    (the public one limited to a CIDR allow-list) and control-plane log types, and brings an
    existing cluster to those settings (one EKS update at a time, as EKS requires).
  - Exists because M(community.aws.eks_cluster) creates clusters with AWS's defaults (public
    endpoint open to 0.0.0.0/0, private endpoint off, no logs) and can change none of them.
  - Subnets and security groups of an existing cluster are not changed; a difference is reported
    as a warning.
options:
  name:
    description: Cluster name.
    type: str
    required: true
  state:
    description: Whether the cluster should exist.
    type: str
    choices: [present, absent]
    default: present
  version:
    description: Kubernetes version (C(1.31)). An existing cluster is upgraded one minor version
      at a time; a downgrade fails.
    type: str
  role_arn:
    description: ARN of the IAM role the control plane assumes. Required to create.
    type: str
  subnets:
    description: Subnet IDs for the control-plane network interfaces. Required to create.
    type: list
    elements: str
  security_groups:
    description: Extra security group IDs for the control-plane network interfaces.
    type: list
    elements: str
    default: []
  endpoint_private_access:
    description: Whether the API server is reachable from inside the VPC.
    type: bool
    default: true
  endpoint_public_access:
    description: Whether the API server is reachable from the internet (from O(public_access_cidrs) only).
    type: bool
    default: false
  public_access_cidrs:
    description: CIDRs allowed to reach the public endpoint. Required, and without 0.0.0.0/0,
      when O(endpoint_public_access=true).
    type: list
    elements: str
    default: []
  logging:
    description: Control-plane log types sent to CloudWatch Logs.
    type: list
    elements: str
    choices: [api, audit, authenticator, controllerManager, scheduler]
    default: [api, audit, authenticator]
  tags:
    description: Tags for the cluster.
    type: dict
    default: {}
  purge_tags:
    description: Remove tags not in O(tags).
    type: bool
    default: true
  wait:
    description: Wait until the cluster (and each update) is done.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for creation, each update, or deletion.
    type: int
    default: 1800
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Create the EKS cluster with a private endpoint and audit logs
  free4allweb.devops.aws_eks_cluster:
    name: free4allweb-production
    version: "1.31"
    role_arn: arn:aws:iam::123456789012:role/free4allweb-production-eks-cluster
    subnets: [subnet-0a, subnet-0b]
    endpoint_private_access: true
    endpoint_public_access: true
    public_access_cidrs: [203.0.113.0/24]
    logging: [api, audit, authenticator]
    tags:
      environment: production
      owner: platform
      cost-centre: cc-1042
"""

RETURN = r"""
cluster:
  description: The cluster as EKS describes it (keys in snake_case, tags as given).
  returned: when state is present
  type: dict
  contains:
    arn:
      description: Cluster ARN.
      type: str
    endpoint:
      description: API server URL.
      type: str
    certificate_authority:
      description: C(data) holds the base64 CA bundle for a kubeconfig.
      type: dict
    version:
      description: Kubernetes version.
      type: str
    status:
      description: Cluster status.
      type: str
    resources_vpc_config:
      description: Subnets, security groups and endpoint access.
      type: dict
updates:
  description: Updates applied (or that would be, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [access, logging]
"""

import contextlib
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.waiters import get_waiter
from ansible_collections.free4allweb.devops.plugins.module_utils.aws.eks import (
    create_request,
    endpoint_problems,
    needed_updates,
    tag_changes,
    wanted_access,
)

UPDATE_CALLS = {
    "version": "update_cluster_version",
    "access": "update_cluster_config",
    "logging": "update_cluster_config",
}


def describe(module, client):
    try:
        return client.describe_cluster(name=module.params["name"])["cluster"]
    except is_boto3_error_code("ResourceNotFoundException"):
        return None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Couldn't describe EKS cluster {module.params['name']}")


def wait_for(module, client, waiter_name):
    waiter = get_waiter(client, waiter_name)
    attempts = 1 + int(module.params["wait_timeout"] / waiter.config.delay)
    try:
        waiter.wait(name=module.params["name"], WaiterConfig={"MaxAttempts": attempts})
    except botocore.exceptions.WaiterError as e:
        module.fail_json_aws(e, msg=f"Timed out waiting for EKS cluster {module.params['name']} ({waiter_name})")


def wait_for_update(module, client, update_id):
    deadline = time.monotonic() + module.params["wait_timeout"]
    while True:
        update = client.describe_update(name=module.params["name"], updateId=update_id)["update"]
        if update["status"] == "Successful":
            return
        if update["status"] in ("Failed", "Cancelled"):
            module.fail_json(msg=f"EKS update {update_id} ended {update['status']}", update=update)
        if time.monotonic() > deadline:
            module.fail_json(msg=f"Timed out waiting for EKS update {update_id}", update=update)
        time.sleep(15)


def result_cluster(cluster):
    tags = cluster.get("tags", {})
    out = camel_dict_to_snake_dict(cluster)
    out["tags"] = tags
    return out


def ensure_present(module, client):
    p = module.params
    access = wanted_access(p["endpoint_private_access"], p["endpoint_public_access"], p["public_access_cidrs"])
    cluster = describe(module, client)
    if cluster is None:
        for required in ("role_arn", "subnets", "version"):
            if not p[required]:
                module.fail_json(msg=f"{required} is needed to create EKS cluster {p['name']}")
        if module.check_mode:
            module.exit_json(changed=True, updates=["create"])
        request = create_request(
            name=p["name"],
            version=p["version"],
            role_arn=p["role_arn"],
            subnets=p["subnets"],
            security_groups=p["security_groups"],
            access=access,
            log_types=p["logging"],
            tags=p["tags"],
        )
        try:
            client.create_cluster(**request)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Couldn't create EKS cluster {p['name']}")
        if p["wait"]:
            wait_for(module, client, "cluster_active")
        module.exit_json(changed=True, updates=["create"], cluster=result_cluster(describe(module, client)))

    vpc = cluster.get("resourcesVpcConfig") or {}
    if set(vpc.get("subnetIds", [])) != set(p["subnets"] or vpc.get("subnetIds", [])):
        module.warn(f"EKS cluster {p['name']} keeps its subnets {vpc.get('subnetIds')}; subnets are set at creation")
    try:
        updates = needed_updates(cluster, p["version"] or cluster["version"], access, p["logging"])
    except ValueError as e:
        module.fail_json(msg=str(e))
    to_set, to_remove = tag_changes(cluster.get("tags") or {}, p["tags"], p["purge_tags"])
    names = [update[0] for update in updates] + (["tags"] if to_set or to_remove else [])
    if not names:
        module.exit_json(changed=False, updates=[], cluster=result_cluster(cluster))
    if module.check_mode:
        module.exit_json(changed=True, updates=names, cluster=result_cluster(cluster))

    for name, kwargs in updates:
        if p["wait"]:
            wait_for(module, client, "cluster_active")  # EKS takes one update at a time
        try:
            update = getattr(client, UPDATE_CALLS[name])(name=p["name"], **kwargs).get("update") or {}
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Couldn't update EKS cluster {p['name']} ({name})")
        if p["wait"] and update.get("id"):
            wait_for_update(module, client, update["id"])
    try:
        if to_set:
            client.tag_resource(resourceArn=cluster["arn"], tags=to_set)
        if to_remove:
            client.untag_resource(resourceArn=cluster["arn"], tagKeys=to_remove)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"Couldn't tag EKS cluster {p['name']}")
    module.exit_json(changed=True, updates=names, cluster=result_cluster(describe(module, client)))


def ensure_absent(module, client):
    if describe(module, client) is None:
        module.exit_json(changed=False, updates=[])
    if not module.check_mode:
        try:
            client.delete_cluster(name=module.params["name"])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Couldn't delete EKS cluster {module.params['name']}")
        if module.params["wait"]:
            wait_for(module, client, "cluster_deleted")
    module.exit_json(changed=True, updates=["delete"])


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "version": {"type": "str"},
            "role_arn": {"type": "str"},
            "subnets": {"type": "list", "elements": "str"},
            "security_groups": {"type": "list", "elements": "str", "default": []},
            "endpoint_private_access": {"type": "bool", "default": True},
            "endpoint_public_access": {"type": "bool", "default": False},
            "public_access_cidrs": {"type": "list", "elements": "str", "default": []},
            "logging": {
                "type": "list",
                "elements": "str",
                "choices": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
                "default": ["api", "audit", "authenticator"],
            },
            "tags": {"type": "dict", "default": {}},
            "purge_tags": {"type": "bool", "default": True},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 1800},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "present":
        problems = endpoint_problems(
            p["endpoint_private_access"], p["endpoint_public_access"], p["public_access_cidrs"]
        )
        if problems:
            module.fail_json(msg="; ".join(problems))
    client = module.client("eks")
    if p["state"] == "present":
        ensure_present(module, client)
    else:
        ensure_absent(module, client)


if __name__ == "__main__":
    main()
