"""Filter: an ALB listener's actions in the form amazon.aws.elb_application_lb compares."""

from __future__ import annotations

from ansible_collections.free4allweb.devops.plugins.module_utils.aws.edge import actions_as_compared

DOCUMENTATION = r"""
name: alb_actions_as_compared
short_description: A listener's current actions, reduced to what elb_application_lb compares
version_added: "0.1.0"
description:
  - Takes the C(default_actions) of a listener as M(amazon.aws.elb_application_lb_info) returns
    them and keeps only Type, TargetGroupArn, RedirectConfig, FixedResponseConfig and
    AuthenticateOidcConfig, in CamelCase.
  - Passing the result back to M(amazon.aws.elb_application_lb) makes it see no difference, so a
    rerun keeps the weighted blue/green split the traffic switch set instead of resetting it.
options:
  _input:
    description: The listener's default_actions (snake_case).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Keep the HTTPS listener's current split
  ansible.builtin.set_fact:
    https_actions: "{{ listener.default_actions | free4allweb.devops.alb_actions_as_compared }}"
"""

RETURN = r"""
_value:
  description: The actions, reduced and in CamelCase.
  type: list
  elements: dict
"""


class FilterModule:
    def filters(self):
        return {"alb_actions_as_compared": actions_as_compared}
