#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aws_eks_oidc_provider
short_description: An EKS cluster's OIDC issuer as an IAM OpenID Connect provider (for IRSA)
version_added: "0.1.0"
description:
  - Reads the cluster's OIDC issuer from EKS and creates the IAM OpenID Connect provider for it
    when missing; adds missing client IDs and sets the thumbprints and the tags of an existing one.
    IAM roles for service accounts (IRSA) trust this provider.
  - Exists because neither amazon.aws nor community.aws has a module for IAM OIDC providers.
  - In check mode nothing is written; the ARN is derived from the cluster's ARN (same account and
    partition), so later tasks can name it before it exists.
options:
  cluster_name:
    description: EKS cluster name.
    type: str
    required: true
  client_ids:
    description: Audiences the provider accepts (STS for IRSA). Missing ones are added, none removed.
    type: list
    elements: str
    default: [sts.amazonaws.com]
  thumbprints:
    description: Server certificate thumbprints. IAM no longer checks them for EKS issuers, but the
      API takes a list.
    type: list
    elements: str
    default: []
  tags:
    description: Tags of the provider; tags not listed are removed.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Register the cluster's OIDC issuer as an IAM identity provider
  free4allweb.devops.aws_eks_oidc_provider:
    region: eu-west-1
    cluster_name: free4allweb-production
    thumbprints: [9e99a48a9960b14926bb7f3b02e22da2b0ab7280]
    tags:
      environment: production
      owner: platform
      cost-centre: cc-1042
  register: oidc
"""

RETURN = r"""
arn:
  description: The provider's ARN.
  type: str
  returned: always
issuer:
  description: The cluster's OIDC issuer URL.
  type: str
  returned: always
issuer_host:
  description: The issuer without its scheme, the prefix of the trust policy's condition keys.
  type: str
  returned: always
cluster_security_group_id:
  description: The security group EKS made for the cluster (its nodes and control plane); empty when none is reported.
  type: str
  returned: always
"""

import contextlib

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)


def provider_arn(cluster_arn: str, host: str) -> str:
    """arn:<partition>:iam::<account>:oidc-provider/<host>, from the cluster's own ARN."""
    parts = cluster_arn.split(":")
    return f"arn:{parts[1]}:iam::{parts[4]}:oidc-provider/{host}"


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster_name=dict(type="str", required=True),
            client_ids=dict(type="list", elements="str", default=["sts.amazonaws.com"]),
            thumbprints=dict(type="list", elements="str", default=[], no_log=False),
            tags=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    eks, iam = module.client("eks"), module.client("iam")
    try:
        cluster = eks.describe_cluster(name=p["cluster_name"])["cluster"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"cannot read EKS cluster {p['cluster_name']}")
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
    if not issuer:
        module.fail_json(msg=f"EKS cluster {p['cluster_name']} reports no OIDC issuer")
    host = issuer.split("://", 1)[-1]
    arn = provider_arn(cluster["arn"], host)
    result = dict(
        changed=False,
        arn=arn,
        issuer=issuer,
        issuer_host=host,
        cluster_security_group_id=(cluster.get("resourcesVpcConfig") or {}).get("clusterSecurityGroupId") or "",
    )
    try:
        existing = {x["Arn"] for x in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]}
        if arn not in existing:
            if not module.check_mode:
                created = iam.create_open_id_connect_provider(
                    Url=issuer,
                    ClientIDList=p["client_ids"],
                    ThumbprintList=p["thumbprints"],
                    Tags=ansible_dict_to_boto3_tag_list(p["tags"]),
                )
                result["arn"] = created["OpenIDConnectProviderArn"]
            result["changed"] = True
            module.exit_json(**result)
        current = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        missing = [c for c in p["client_ids"] if c not in current.get("ClientIDList", [])]
        thumbs_differ = sorted(p["thumbprints"]) != sorted(current.get("ThumbprintList", []))
        tags = boto3_tag_list_to_ansible_dict(current.get("Tags", []))
        to_tag = {k: v for k, v in p["tags"].items() if tags.get(k) != v}
        to_untag = [k for k in tags if k not in p["tags"]]
        changed = bool(missing or thumbs_differ or to_tag or to_untag)
        if changed and not module.check_mode:
            for client_id in missing:
                iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID=client_id)
            if thumbs_differ:
                iam.update_open_id_connect_provider_thumbprint(
                    OpenIDConnectProviderArn=arn, ThumbprintList=p["thumbprints"]
                )
            if to_tag:
                iam.tag_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, Tags=ansible_dict_to_boto3_tag_list(to_tag)
                )
            if to_untag:
                iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=to_untag)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"cannot manage the OIDC provider {arn}")
    result["changed"] = changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
