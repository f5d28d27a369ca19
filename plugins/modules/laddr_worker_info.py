#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: laddr_worker_info
short_description: Read the Laddr worker instances of a host and wait until each is connected to its bus
description:
  - Lists the instances of a systemd template unit (by default C(laddr-worker@)) that are loaded or
    enabled on the host, with their state and main process.
  - For each instance, tells whether its main process holds an established TCP connection to one of
    the bus endpoints, which is what a worker does once it has reached Redis or Kafka.
  - Optionally waits until the expected instances, and only those, are active and connected.
  - Needs only the Python standard library, systemd and C(/proc) on the host.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.read_only
options:
  unit_prefix:
    description:
      - Template unit name up to and including the C(@).
    type: str
    default: laddr-worker@
  bus_endpoints:
    description:
      - Bus endpoints as C(host:port) (IPv4 or a name that resolves to one). A process connected to any of them counts as connected.
      - When empty, only the systemd state is checked.
    type: list
    elements: str
    default: []
  expect_instances:
    description:
      - Instance names (the part after the C(@)) that must be active and connected, and be the only ones running.
      - When omitted, the module only reads.
    type: list
    elements: str
  wait_timeout:
    description:
      - Seconds to wait for O(expect_instances); fails afterwards with what was seen.
    type: float
    default: 60
  environment_file:
    description:
      - A file the instances read their environment from; the result says whether it exists, so that a playbook
        that removes it once the instances are gone need not ask the host again.
    type: path
"""

EXAMPLES = r"""
- name: Read this host's worker instances
  laddr.kafka.laddr_worker_info:
  register: workers

- name: Every planned worker is running and connected to Redis
  laddr.kafka.laddr_worker_info:
    bus_endpoints: ["10.0.0.15:6379"]
    expect_instances: [researcher-1, researcher-2, writer-1]
    wait_timeout: 60
"""

RETURN = r"""
instances:
  description: Every loaded or enabled instance of the template on the host, by instance name.
  returned: always
  type: dict
  sample:
    researcher-1:
      active_state: active
      sub_state: running
      enabled: true
      main_pid: 4242
      connected: true
unexpected:
  description: Running instances that are not in O(expect_instances).
  returned: when O(expect_instances) is given
  type: list
  elements: str
not_ready:
  description: Expected instances that are not active or not connected.
  returned: when O(expect_instances) is given
  type: list
  elements: str
environment_file_exists:
  description: Whether O(environment_file) exists (a link counts by what it points at).
  returned: when O(environment_file) is given
  type: bool
"""

import glob
import os
import socket
import struct

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.laddr.kafka.plugins.module_utils.wait import wait_until

WANTS_GLOB = "/etc/systemd/system/*.wants/%s*.service"


def parse_endpoint(text):
    """'10.0.0.5:6379' -> ('10.0.0.5', 6379), names resolved; raises ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("bus endpoint %r is not address:port" % text)
    try:
        return socket.gethostbyname(host), int(port)
    except OSError as err:
        raise ValueError("bus endpoint %r: cannot resolve %r: %s" % (text, host, err))


def decode_proc_address(field):
    """'0100007F:18EB' from /proc/net/tcp -> ('127.0.0.1', 6379)."""
    address, port = field.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(address, 16))), int(port, 16)


def established_remotes(tcp_table_text):
    """Socket inode -> remote (address, port) for every ESTABLISHED line of /proc/net/tcp."""
    remotes = {}
    for line in tcp_table_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "01":
            remotes[fields[9]] = decode_proc_address(fields[2])
    return remotes


def socket_inodes(pid):
    inodes = set()
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def read_tcp_table(pid):
    # The process's own network namespace; the host's when systemd gives it no private one.
    try:
        with open("/proc/%d/net/tcp" % pid) as table:
            return table.read()
    except OSError:
        return ""


def is_connected(pid, endpoints):
    if not pid or not endpoints:
        return False
    remotes = established_remotes(read_tcp_table(pid))
    return any(remotes.get(inode) in endpoints for inode in socket_inodes(pid))


def instance_names(module, prefix):
    names = set()
    rc, out, err = module.run_command(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--full", prefix + "*.service"])
    if rc != 0:
        module.fail_json(msg="systemctl list-units failed: %s" % err.strip())
    for line in out.splitlines():
        unit = line.split()[0] if line.split() else ""
        if unit.startswith(prefix) and unit.endswith(".service"):
            names.add(unit[len(prefix):-len(".service")])
    for link in glob.glob(WANTS_GLOB % prefix):
        names.add(os.path.basename(link)[len(prefix):-len(".service")])
    names.discard("")
    return sorted(names)


def read_instances(module, prefix, endpoints):
    instances = {}
    for name in instance_names(module, prefix):
        unit = "%s%s.service" % (prefix, name)
        rc, out, err = module.run_command(
            ["systemctl", "show", unit, "--property=ActiveState,SubState,MainPID,UnitFileState"])
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        pid = int(props.get("MainPID") or 0)
        instances[name] = dict(
            active_state=props.get("ActiveState", "unknown"),
            sub_state=props.get("SubState", "unknown"),
            enabled=props.get("UnitFileState") == "enabled" or bool(glob.glob(
                "/etc/systemd/system/*.wants/%s" % unit)),
            main_pid=pid,
            connected=is_connected(pid, endpoints),
        )
    return instances


def assess(instances, expected, check_connection):
    """(not_ready, unexpected) for the expected instance names."""
    not_ready = []
    for name in expected:
        state = instances.get(name)
        if (state is None or state["active_state"] != "active"
                or (check_connection and not state["connected"])):
            not_ready.append(name)
    unexpected = sorted(name for name, state in instances.items()
                        if name not in expected and state["active_state"] in ("active", "activating", "reloading"))
    return not_ready, unexpected


def describe(instances, names):
    parts = []
    for name in names:
        state = instances.get(name)
        if state is None:
            parts.append("%s: no such unit" % name)
        else:
            parts.append("%s: %s/%s, %s" % (name, state["active_state"], state["sub_state"],
                                            "connected" if state["connected"] else "not connected to the bus"))
    return "; ".join(parts)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit_prefix=dict(type="str", default="laddr-worker@"),
            bus_endpoints=dict(type="list", elements="str", default=[]),
            expect_instances=dict(type="list", elements="str"),
            wait_timeout=dict(type="float", default=60),
            environment_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    prefix = module.params["unit_prefix"]
    if not prefix.endswith("@"):
        module.fail_json(msg="unit_prefix %r must end with '@' (a template unit)" % prefix)
    try:
        endpoints = set(parse_endpoint(item) for item in module.params["bus_endpoints"])
    except ValueError as err:
        module.fail_json(msg=str(err))
    expected = module.params["expect_instances"]
    more = {}
    if module.params["environment_file"]:
        more["environment_file_exists"] = os.path.exists(module.params["environment_file"])
    if expected is None:
        module.exit_json(changed=False, instances=read_instances(module, prefix, endpoints), **more)

    def read():
        instances = read_instances(module, prefix, endpoints)
        not_ready, unexpected = assess(instances, expected, bool(endpoints))
        return (instances, not_ready, unexpected), not_ready + unexpected

    (instances, not_ready, unexpected), _problems, waited = wait_until(read, True, module.params["wait_timeout"])
    result = dict(changed=False, instances=instances, not_ready=not_ready, unexpected=unexpected, waited=waited, **more)
    if not_ready or unexpected:
        msg = "Worker instances not as planned after %gs." % waited
        if not_ready:
            msg += " Not ready: %s." % describe(instances, not_ready)
        if unexpected:
            msg += " Running but not planned: %s." % ", ".join(unexpected)
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
