# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate a playbook's inputs against an argument spec and hand back the request, defaults
filled in, as one fact. See plugins/modules/check_request.py for the documentation."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.free4allweb.devops.plugins.module_utils import inputs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("argument_spec", "provided_arguments", "fact", "name"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        spec = self._task.args.get("argument_spec")
        if not isinstance(spec, dict) or not spec:
            raise AnsibleActionFail("argument_spec must be a non-empty dict of option specs")
        provided = self._task.args.get("provided_arguments") or {}
        fact = self._task.args.get("fact", "request")
        what = self._task.args.get("name", "request")

        # each option's `check` (ranges, formats) is ours; the rest is Ansible's argument spec
        spec, constraints = inputs.split_request_spec(spec)
        given = {k: self._templar.template(task_vars[k]) for k in spec if k in task_vars}
        given.update(provided)
        try:
            validated, errors = inputs.check(spec, constraints, given)
        except inputs.InputSpecError as e:
            raise AnsibleActionFail(f"the {what}'s spec is malformed: {e}") from e
        if errors:
            result["failed"] = True
            result["argument_errors"] = errors
            result["msg"] = f"the {what} is invalid: " + "; ".join(errors)
            return result

        request = {k: validated.get(k) for k in spec}
        result.update(changed=False, ansible_facts={fact: request}, msg=f"the {what} is valid")
        return result
