"""Filters that check an AWS network plan before anything is created."""

from __future__ import annotations

from ansible_collections.free4allweb.devops.plugins.module_utils.aws.network import subnet_plan_problems

DOCUMENTATION = r"""
name: subnet_plan_problems
short_description: Problems with a planned VPC subnet layout
version_added: "0.1.0"
description:
  - Returns a list of sentences, empty when the plan is sound. Checks that each subnet CIDR is a
    valid network inside the VPC CIDR and that no two subnets overlap.
options:
  _input:
    description: The VPC CIDR.
    type: str
    required: true
  subnets:
    description: Variable name to list of subnet CIDRs, so each problem names what to fix.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse overlapping subnets
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ '10.0.0.0/16' | free4allweb.devops.subnet_plan_problems({'public': ['10.0.0.0/20']}) }}"
"""

RETURN = r"""
_value:
  description: One sentence per problem.
  type: list
  elements: str
"""


class FilterModule:
    def filters(self):
        return {"subnet_plan_problems": subnet_plan_problems}
