# Copyright: free4allweb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a role's inputs against its argument spec and its constraints before it changes
anything. See plugins/modules/check_inputs.py for the documentation."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.free4allweb.devops.plugins.module_utils import inputs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("role_path", "entry_point"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        role_path = self._task.args.get("role_path")
        entry_point = self._task.args.get("entry_point") or "main"
        if not role_path or not os.path.isdir(str(role_path)):
            raise AnsibleActionFail(f"role_path must be a role's directory, got {role_path!r}")
        entry_points = inputs.load_role(str(role_path))
        if entry_point not in entry_points:
            raise AnsibleActionFail(f"{role_path}: meta/argument_specs.yml has no entry point '{entry_point}'")
        spec, constraints = entry_points[entry_point]
        values = {k: self._templar.template(task_vars[k]) for k in spec if k in task_vars}
        try:
            errors = inputs.check(spec, constraints, values)[1]
        except inputs.InputSpecError as e:
            raise AnsibleActionFail(f"{role_path}/meta/constraints.yml: {e}") from e
        role = os.path.basename(os.path.normpath(str(role_path)))
        if errors:
            result.update(failed=True, input_errors=errors, msg=f"{role}: invalid input: " + "; ".join(errors))
            return result
        result.update(changed=False, msg=f"{role}: {len(values)} input(s) checked")
        return result
