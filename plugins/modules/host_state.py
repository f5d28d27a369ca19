#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_state
short_description: Tell in one read whether a service's files, account, units and packages are as wanted
description:
  - Compares what a host has with what a role wants, in one run on the host instead of one task per file,
    and names each thing that differs. A role skips the tasks that would put things in place when nothing
    differs, and runs them all otherwise.
  - Reads also the state of systemd units and the newest change time of what they run, from which a role
    tells the units that owe a restart.
  - Needs only the Python standard library and systemd on the host. Changes nothing.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.read_only
options:
  accounts:
    description:
      - Service accounts that must exist as system users with a group of their own name.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User and group name.
        type: str
        required: true
      home:
        description: Home directory of the user.
        type: str
        required: true
      shell:
        description: Login shell of the user.
        type: str
        default: /usr/sbin/nologin
  paths:
    description:
      - Files, directories and symbolic links that must be in place.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      state:
        description:
          - V(file), V(directory) or V(link) (compared without following the link), or V(exists) when only
            its presence counts.
        type: str
        choices: [file, directory, link, exists]
        default: file
      owner:
        description: Owner's user name; not compared when omitted.
        type: str
      group:
        description: Group name; not compared when omitted.
        type: str
      mode:
        description: Permission bits as an octal string such as V(0640); not compared when omitted.
        type: str
      checksum:
        description: SHA-1 of the wanted content of a file (hex); not compared when omitted. Never logged.
        type: str
      src:
        description: Target that a link must point at.
        type: str
  trees:
    description:
      - Directories whose files must be in place with given contents, as a copy of a directory of the controller
        leaves them; files under the directory that are not listed do not count.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: str
        required: true
      files:
        description:
          - Each file as C(<path relative to the directory> <sha1 hex>), as the lookup P(laddr.kafka.tree_checksums#lookup)
            gives them for the controller's copy.
        type: list
        elements: str
        required: true
      owner:
        description: Owner's user name of each file; not compared when omitted.
        type: str
      group:
        description: Group name of each file; not compared when omitted.
        type: str
      private:
        description: Each file must give others no access (its mode ends in 0).
        type: bool
        default: false
  packages:
    description:
      - Debian packages that must be installed (any version).
    type: list
    elements: str
    default: []
  units:
    description:
      - Systemd units whose state to read (for example V(kafka.service)).
    type: list
    elements: str
    default: []
  inputs:
    description:
      - Files and directories that the O(units) run from. The newest change time among them is returned; a
        link counts by its own time, a directory by the newest entry under it (C(__pycache__) aside).
    type: list
    elements: str
    default: []
  python_packages:
    description:
      - A Python environment that must hold these exact distributions.
    type: dict
    suboptions:
      python:
        description: Interpreter of the environment.
        type: str
        required: true
      pins:
        description: Distributions as V(name==version).
        type: list
        elements: str
        required: true
"""

EXAMPLES = r"""
- name: Read what this broker has in place
  laddr.kafka.host_state:
    accounts: [{name: kafka, home: /var/lib/kafka}]
    paths:
      - {path: /etc/kafka, state: directory, owner: root, group: kafka, mode: "0750"}
      - path: /etc/kafka/server.properties
        owner: root
        group: kafka
        mode: "0640"
        checksum: "{{ lookup('ansible.builtin.template', 'server.properties.j2') | hash('sha1') }}"
      - {path: /opt/kafka/current, state: link, src: /opt/kafka/kafka_2.13-3.9.2}
    units: [kafka.service]
    inputs: [/opt/kafka/current, /etc/kafka/server.properties]
  register: kafka_state
"""

RETURN = r"""
differ:
  description:
    - What is not as wanted, one entry each, such as C(/etc/kafka/server.properties) followed by what differs (missing,
      content, mode, owner, group, target, not a file), an account, a package of O(packages) or a pin of
      O(python_packages) not installed.
  returned: always
  type: list
  elements: str
  sample: ["/etc/kafka/server.properties: content", "/opt/kafka/current: missing"]
units:
  description:
    - Per unit of O(units), C(active_state) and C(unit_file_state) as systemd gives them, C(started), the
      start time of its main process (seconds since the epoch, null when it is not running), and C(restart),
      which is V(stopped) when it is not running, V(owed) when it started before the newest change to O(inputs) (systemd
      gives whole seconds, so a change within the second after the start does not count), else V(current).
  returned: always
  type: dict
  sample: {"kafka.service": {"active_state": "active", "unit_file_state": "enabled", "started": 1796600000,
                             "restart": "current"}}
in_place:
  description: True when nothing differs and every unit of O(units) is enabled and running.
  returned: always
  type: bool
settled:
  description:
    - True when RV(in_place) is and every unit of O(units) started after the newest change to O(inputs) (its
      C(restart) is V(current)), so there is nothing to install, configure, start or restart.
    - A unit without a main process (a socket) has no start time here and is never current; ask it of service units.
  returned: always
  type: bool
inputs_newest:
  description: Newest change time among O(inputs) (seconds since the epoch); 0 when none exists.
  returned: always
  type: float
"""

import grp
import json
import os
import pwd
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.laddr.kafka.plugins.module_utils.checksum import sha1_of

KINDS = {"file": stat.S_ISREG, "directory": stat.S_ISDIR, "link": stat.S_ISLNK}


def name_of(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def path_differs(wanted, lstat=os.lstat, readlink=os.readlink, checksum=sha1_of):
    """What differs between a path and WANTED (a paths item), as a list of words; empty when in place."""
    try:
        found = lstat(wanted["path"])
    except FileNotFoundError:
        return ["missing"]
    problems = []
    state = wanted.get("state") or "file"
    if state != "exists" and not KINDS[state](found.st_mode):
        return ["not a " + state]
    if wanted.get("owner") is not None and name_of(pwd.getpwuid, found.st_uid) != wanted["owner"]:
        problems.append("owner")
    if wanted.get("group") is not None and name_of(grp.getgrgid, found.st_gid) != wanted["group"]:
        problems.append("group")
    if wanted.get("mode") is not None and stat.S_IMODE(found.st_mode) != int(wanted["mode"], 8):
        problems.append("mode")
    if state == "link" and wanted.get("src") is not None and readlink(wanted["path"]) != wanted["src"]:
        problems.append("target")
    if state == "file" and wanted.get("checksum") is not None and checksum(wanted["path"]) != wanted["checksum"]:
        problems.append("content")
    return problems


def tree_differs(tree, lstat=os.lstat, checksum=sha1_of):
    """Per file of TREE (a trees item) not as wanted, '<path>: <words>'."""
    problems = []
    for item in tree["files"]:
        relative, _sep, digest = item.rpartition(" ")
        path = os.path.join(tree["path"], relative)
        try:
            found = lstat(path)
        except FileNotFoundError:
            problems.append("%s: missing" % path)
            continue
        if not stat.S_ISREG(found.st_mode):
            problems.append("%s: not a file" % path)
            continue
        words = []
        if tree.get("owner") is not None and name_of(pwd.getpwuid, found.st_uid) != tree["owner"]:
            words.append("owner")
        if tree.get("group") is not None and name_of(grp.getgrgid, found.st_gid) != tree["group"]:
            words.append("group")
        if tree.get("private") and found.st_mode & 0o007:
            words.append("mode")
        if checksum(path) != digest:
            words.append("content")
        if words:
            problems.append("%s: %s" % (path, ", ".join(words)))
    return problems


def account_differs(wanted):
    try:
        user = pwd.getpwnam(wanted["name"])
        group = grp.getgrnam(wanted["name"])
    except KeyError:
        return ["missing"]
    problems = []
    if user.pw_gid != group.gr_gid:
        problems.append("group")
    if user.pw_uid >= 1000:
        problems.append("not a system user")
    if user.pw_dir != wanted["home"]:
        problems.append("home")
    if user.pw_shell != (wanted.get("shell") or "/usr/sbin/nologin"):
        problems.append("shell")
    return problems


def newest_change(paths):
    newest = 0.0
    for path in paths:
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            continue
        newest = max(newest, found.st_mtime)
        if stat.S_ISDIR(found.st_mode):
            for top, dirs, files in os.walk(path):
                dirs[:] = [name for name in dirs if name != "__pycache__"]
                for name in dirs + files:
                    try:
                        newest = max(newest, os.lstat(os.path.join(top, name)).st_mtime)
                    except FileNotFoundError:
                        pass
    return newest


def parse_units(names, text, newest=0.0):
    """systemctl show output (one block per unit, in the order asked) and the newest change to their inputs ->
    {unit: {active_state, unit_file_state, started, restart}}."""
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in text.strip().split("\n\n")] if text.strip() else []
    units = {}
    for name, block in zip(names, blocks + [{}] * (len(names) - len(blocks))):
        started = block.get("ExecMainStartTimestamp", "").lstrip("@")
        active = block.get("ActiveState", "unknown")
        started = float(started) if active == "active" and started.isdigit() else None
        restart = "stopped" if started is None else "owed" if started + 1 <= newest else "current"
        units[name] = {"active_state": active, "unit_file_state": block.get("UnitFileState", ""),
                       "started": started, "restart": restart}
    return units


def pins_differ(python, pins):
    names = [pin.split("==", 1)[0] for pin in pins]
    script = ("import importlib.metadata as m, json, sys\n"
              "def version(name):\n"
              "    try:\n        return m.version(name)\n"
              "    except m.PackageNotFoundError:\n        return None\n"
              "print(json.dumps({name: version(name) for name in sys.argv[1:]}))")
    try:
        found = subprocess.run([python, "-c", script] + names, capture_output=True, text=True, timeout=60, check=False,
                               env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        versions = json.loads(found.stdout) if found.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        versions = {}
    return [pin for pin, name in zip(pins, names) if "%s==%s" % (name, versions.get(name)) != pin]


def packages_missing(names, run_command):
    """The NAMES that dpkg does not list as installed."""
    rc, out, err = run_command(["dpkg-query", "--show", "--showformat", "${db:Status-Abbrev}${Package}\\n"] + names)
    installed = set(line[3:].strip() for line in out.splitlines() if line.startswith("ii "))
    return [name for name in names if name not in installed]


def in_place(differ, units):
    """Nothing differs, and every unit is enabled and running."""
    return not differ and all(unit["active_state"] == "active" and unit["unit_file_state"] == "enabled"
                              for unit in units.values())


def settled(differ, units):
    """In place, and every unit started after the newest change to the inputs."""
    return in_place(differ, units) and all(unit["restart"] == "current" for unit in units.values())


class HostState(object):
    def __init__(self, module):
        self.module = module

    def run(self):
        params = self.module.params
        differ = []
        for account in params["accounts"]:
            differ += ["account %s: %s" % (account["name"], word) for word in account_differs(account)]
        for wanted in params["paths"]:
            differ += ["%s: %s" % (wanted["path"], word) for word in path_differs(wanted)]
        for tree in params["trees"]:
            differ += tree_differs(tree)
        if params["packages"]:
            differ += ["package %s: not installed" % name for name in packages_missing(params["packages"], self.module.run_command)]
        if params["python_packages"]:
            python = params["python_packages"]["python"]
            differ += ["python %s: %s" % (python, pin) for pin in pins_differ(python, params["python_packages"]["pins"])]
        units, newest = {}, newest_change(params["inputs"])
        if params["units"]:
            rc, out, err = self.module.run_command(
                ["systemctl", "show", "--timestamp=unix", "--property=ActiveState,UnitFileState,ExecMainStartTimestamp"]
                + params["units"])
            if rc != 0:
                self.module.fail_json(msg="systemctl show %s failed: %s" % (" ".join(params["units"]), err.strip()))
            units = parse_units(params["units"], out, newest)
        self.module.exit_json(changed=False, differ=differ, units=units, inputs_newest=newest,
                              in_place=in_place(differ, units), settled=settled(differ, units))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            accounts=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                home=dict(type="str", required=True),
                shell=dict(type="str", default="/usr/sbin/nologin"),
            )),
            paths=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                state=dict(type="str", choices=["file", "directory", "link", "exists"], default="file"),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="str"),
                checksum=dict(type="str", no_log=True),
                src=dict(type="str"),
            )),
            trees=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                files=dict(type="list", elements="str", required=True),
                owner=dict(type="str"),
                group=dict(type="str"),
                private=dict(type="bool", default=False),
            )),
            packages=dict(type="list", elements="str", default=[]),
            units=dict(type="list", elements="str", default=[]),
            inputs=dict(type="list", elements="str", default=[]),
            python_packages=dict(type="dict", options=dict(
                python=dict(type="str", required=True),
                pins=dict(type="list", elements="str", required=True),
            )),
        ),
        supports_check_mode=True,
    )
    HostState(module).run()


if __name__ == "__main__":
    main()
