# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
name: tree_checksums
short_description: The regular files under a directory of the controller, each with its SHA-1
description:
  - Walks a directory of the controller, hidden files and subdirectories included, symbolic links not followed
    and not listed, and returns one C(<path relative to the directory> <sha1>) string per regular file, sorted.
  - What M(ansible.builtin.find) with C(recurse), C(hidden) and C(get_checksum) tells about the same directory,
    read by the controller's templating instead of a module run for each host.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
options:
  _terms:
    description: Directories of the controller; the lists of all of them are joined.
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: The project's files as the controller has them
  ansible.builtin.debug:
    msg: "{{ lookup('laddr.kafka.tree_checksums', playbook_dir ~ '/project', wantlist=true) }}"
"""

RETURN = r"""
_raw:
  description: C(<relative path> <sha1 hex>) for each regular file, sorted by path.
  type: list
  elements: str
"""

import os
import stat

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.laddr.kafka.plugins.module_utils.checksum import sha1_of


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        found = []
        for top in terms:
            if not os.path.isdir(top):
                raise AnsibleLookupError(f"tree_checksums: {top!r} is not a directory on the controller.")
            for folder, dirs, files in os.walk(top):
                dirs.sort()
                for name in files:
                    path = os.path.join(folder, name)
                    if stat.S_ISREG(os.lstat(path).st_mode):
                        found.append(f"{os.path.relpath(path, top)} {sha1_of(path)}")
        return sorted(found)
