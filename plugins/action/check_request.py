# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate a playbook's inputs against an argument spec and hand back the request, defaults
filled in, as one fact. See plugins/modules/check_request.py for the documentation."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase


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

        given = {k: self._templar.template(task_vars[k]) for k in spec if k in task_vars}
        given.update(provided)
        checked = ArgumentSpecValidator(spec).validate(given, validate_role_argument_spec=True)
        if checked.error_messages:
            result["failed"] = True
            result["argument_errors"] = checked.error_messages
            result["msg"] = f"the {what} is invalid: " + "; ".join(checked.error_messages)
            return result

        request = {k: checked.validated_parameters.get(k) for k in spec}
        result.update(changed=False, ansible_facts={fact: request}, msg=f"the {what} is valid")
        return result
