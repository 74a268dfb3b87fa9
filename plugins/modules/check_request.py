#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: check_request
short_description: Validate a playbook's input variables and collect them with their defaults
version_added: "0.1.0"
description:
  - Checks the variables a playbook takes (for example C(app_version) and C(deploy_strategy))
    against an Ansible argument spec, before the playbook changes anything, and fails with a
    message naming each bad variable.
  - On success sets one fact holding every option of the spec, given or defaulted, so later plays
    read one validated request instead of raw variables.
  - Runs on the controller only (an action plugin); it never contacts a host.
options:
  argument_spec:
    description:
      - Options in the format of a role's C(meta/argument_specs.yml) entry point.
      - An option may also carry C(check), a dict of what the argument spec cannot say (ranges,
        formats, list rules), in the language of C(meta/constraints.yml) (see the check_inputs
        module and docs/inputs.md); it is checked after the types, on the validated value.
    type: dict
    required: true
  provided_arguments:
    description: Values that take precedence over variables of the same name.
    type: dict
  fact:
    description: Name of the fact that receives the request.
    type: str
    default: request
  name:
    description: What the inputs are, used in messages ("deploy request").
    type: str
    default: request
attributes:
  action:
    description: >-
      Indicates this has a corresponding action plugin so some parts of the options can be
      executed on the controller.
    support: full
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Check the deploy request
  free4allweb.devops.check_request:
    name: deploy request
    fact: deploy_request
    argument_spec: "{{ lookup('ansible.builtin.file', 'vars/deploy_request.yml') | from_yaml }}"
"""

RETURN = r"""
ansible_facts:
  description: The fact named by O(fact), holding every option with its value or default.
  returned: success
  type: dict
  sample: {deploy_request: {app_version: 1.4.0, deploy_strategy: blue_green}}
argument_errors:
  description: One message per invalid variable.
  returned: failure
  type: list
  elements: str
"""
# This file only documents the module: the action plugin plugins/action/check_request.py does the work.
