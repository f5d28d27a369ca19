#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The work is done by the action plugin of the same name (plugins/action/role_arguments.py), on the controller.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: role_arguments
short_description: Check, in a task of a role, the role's variables against its argument spec
description:
  - The variables of the role that runs the task have the types and choices that its C(meta/argument_specs.yml)
    declares for an entry point, checked on the controller in one task, with one message per host that names
    each wrong variable.
  - A required variable that is not set is not reported here; the role's own preflight says what to set it to.
  - Used by the preflight of this collection's roles; it does in one task what M(ansible.builtin.validate_argument_spec)
    and an assert for the message would do in two.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
options:
  entry:
    description:
      - The entry point of the role whose options are checked.
    type: str
    default: main
attributes:
  check_mode:
    support: full
    description: The action only reads variables.
  diff_mode:
    support: none
    description: The action changes nothing.
notes:
  - Runs on the controller only; it never connects to the host.
"""

EXAMPLES = r"""
- name: Variables have the types and choices the role declares
  laddr.kafka.role_arguments:

- name: Playbook options have their declared types
  laddr.kafka.role_arguments:
    entry: playbook_options
"""

RETURN = r"""
argument_errors:
  description: One message per wrong variable, when any is wrong.
  returned: failure
  type: list
  elements: str
  sample: ["argument 'kafka_heap_mb' is of type str and we were unable to convert to int"]
"""
