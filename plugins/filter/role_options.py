# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter laddr.kafka.role_options: the option names of a role's entry point, read from its argument spec."""
from __future__ import annotations

import yaml
from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
---
name: role_options
short_description: The option names of an entry point of a role, as its meta/argument_specs.yml declares them
description:
  - Reads the argument spec file with the C libyaml loader when PyYAML has it (as ansible-core's own install does),
    so that a role can digest all of its variables in a task's condition without the cost of the from_yaml filter
    on every host and every evaluation.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
options:
  _input:
    description: Path of the role's C(meta/argument_specs.yml).
    type: path
    required: true
  entry_point:
    description: The entry point whose options are listed.
    type: str
    default: main
"""

EXAMPLES = r"""
- name: A digest of every variable of the role
  ansible.builtin.debug:
    msg: >-
      {{ lookup('ansible.builtin.vars', *((role_path ~ '/meta/argument_specs.yml') | laddr.kafka.role_options),
                default='') | to_json | hash('sha1') }}
"""

RETURN = r"""
_value:
  description: The option names of the entry point, sorted.
  type: list
  elements: str
"""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def role_options(path, entry_point="main"):
    try:
        with open(path, "rb") as handle:
            specs = yaml.load(handle, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python
        options = specs["argument_specs"][entry_point].get("options") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AnsibleFilterError(f"role_options: cannot read the argument spec {path}: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"role_options: {path} has no entry point {entry_point!r}") from exc
    return sorted(options)


class FilterModule:
    def filters(self):
        return {"role_options": role_options}
