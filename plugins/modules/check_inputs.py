#!/usr/bin/python
# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: check_inputs
short_description: Check a role's inputs (types, ranges, formats, rules across variables) before any change
version_added: "0.2.0"
description:
  - >-
    Validates the variables of one of a role's entry points against its C(meta/argument_specs.yml)
    (types, required, choices) and its C(meta/constraints.yml), which says what an argument spec
    cannot - ranges, formats (ports, CIDRs, DNS names, PEP 440 versions, URLs, durations, AWS
    regions) and rules across variables (maximum storage at least the allocated storage,
    deletion protection on in production).
  - Fails with one message per problem, each naming the variable (and the path inside it), the
    value found and what is allowed.
  - The constraints language is described in C(plugins/module_utils/inputs.py) and docs/inputs.md.
  - Runs on the controller only (an action plugin); it never contacts a host, so it is the first
    task of a role and costs no round trip.
options:
  role_path:
    description: The role's directory; pass C({{ role_path }}).
    type: path
    required: true
  entry_point:
    description: The entry point in C(meta/argument_specs.yml) and C(meta/constraints.yml).
    type: str
    default: main
attributes:
  action:
    description: Indicates this has a corresponding action plugin.
    support: full
extends_documentation_fragment:
  - free4allweb.devops.common
"""

EXAMPLES = r"""
- name: Check the inputs before any change
  free4allweb.devops.check_inputs:
    role_path: "{{ role_path }}"
"""

RETURN = r"""
input_errors:
  description: One message per invalid input, naming the variable.
  returned: failure
  type: list
  elements: str
  sample: ["loadbalancer_port is 99999: it must be a TCP port, 1 to 65535"]
"""
# This file only documents the module: the action plugin plugins/action/check_inputs.py does the work.
