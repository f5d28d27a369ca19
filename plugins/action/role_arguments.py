# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action of laddr.kafka.role_arguments (documented in plugins/modules/role_arguments.py): a role's variables
against its argument spec, on the controller, in one task with one message per host."""
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("entry",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        entry = self._task.args.get("entry", "main")
        role = self._task._role
        if role is None:
            raise AnsibleActionFail("laddr.kafka.role_arguments runs in a task of one of the collection's roles.")
        path = os.path.join(role.get_role_path(), "meta", "argument_specs.yml")
        specs = (self._loader.load_from_file(path) or {}).get("argument_specs", {})
        if entry not in specs:
            raise AnsibleActionFail(f"{path} declares no entry point {entry!r}.")
        options = specs[entry].get("options") or {}
        # Set variables only: an unset required one is the role's preflight's to explain.
        given = {name: task_vars[name] for name in options if name in task_vars}
        spec = {name: option for name, option in options.items() if name in given or not option.get("required")}
        checked = ArgumentSpecValidator(spec).validate(self._templar.template(given), validate_role_argument_spec=True)
        result["changed"] = False
        if checked.error_messages:
            name = role.get_name()
            where = "" if entry == "main" else f" (entry point {entry})"
            result["failed"] = True
            result["argument_errors"] = checked.error_messages
            result["msg"] = (
                f"Host {task_vars.get('inventory_hostname')}: {'; '.join(checked.error_messages)}. Correct these variables "
                f"of role {name}{where}; ansible-doc -t role {name} gives each one's type and choices. No host was changed.")
        return result
