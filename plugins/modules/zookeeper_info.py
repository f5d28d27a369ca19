#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: zookeeper_info
short_description: Read the state of ZooKeeper servers and wait for a healthy ensemble
description:
  - Asks each ZooKeeper server for its state with the C(srvr) four-letter word and reports
    whether it serves, its mode (leader, follower, standalone) and its zxid.
  - Optionally waits until the ensemble is healthy, for a health gate between rolling restarts.
  - Needs only the Python standard library on the host it runs on.
  - The servers must allow C(srvr) in C(4lw.commands.whitelist).
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.read_only
options:
  servers:
    description:
      - Servers to ask, as C(host:port).
    type: list
    elements: str
    default: ["127.0.0.1:2181"]
  expect_healthy:
    description:
      - Wait until every server serves and, for more than one server, exactly one is the
        leader and the rest are followers.
      - Fails after O(wait_timeout) seconds with the state last observed.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for O(expect_healthy).
    type: float
    default: 120
  connect_timeout:
    description:
      - Seconds for one connection to one server.
    type: float
    default: 3
"""

EXAMPLES = r"""
- name: Read this member's state
  laddr.kafka.zookeeper_info:
  register: zk

- name: Wait until the three-member ensemble serves with one leader
  laddr.kafka.zookeeper_info:
    servers:
      - 10.0.0.11:2181
      - 10.0.0.12:2181
      - 10.0.0.13:2181
    expect_healthy: true
    wait_timeout: 120
"""

RETURN = r"""
servers:
  description: State of each server, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    server:
      description: The server as given.
      type: str
      sample: 10.0.0.11:2181
    serving:
      description: Whether the server answers and serves requests.
      type: bool
      sample: true
    mode:
      description: C(leader), C(follower), C(standalone), C(observer), or null when not serving.
      type: str
      sample: follower
    zxid:
      description: Last zxid seen, as reported.
      type: str
      sample: "0x100000002"
    version:
      description: ZooKeeper version.
      type: str
      sample: 3.8.4
    node_count:
      description: Number of znodes.
      type: int
      sample: 42
    error:
      description: Why the server did not answer, or null.
      type: str
      sample: null
leader_count:
  description: How many servers report the mode leader.
  returned: always
  type: int
  sample: 1
healthy:
  description: Whether every server serves and there is exactly one leader (or one standalone server).
  returned: always
  type: bool
  sample: true
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 2.5
"""

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.laddr.kafka.plugins.module_utils.wait import wait_until


def parse_srvr(text):
    """Turn the answer to srvr into a dict; None for a server that is up but not serving."""
    if "not currently serving" in text:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if "mode" not in fields:
        return None
    count = fields.get("node count", "")
    return {
        "mode": fields["mode"],
        "zxid": fields.get("zxid"),
        "version": fields.get("zookeeper version", "").split("-")[0] or None,
        "node_count": int(count) if count.isdigit() else None,
    }


def split_server(server):
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("server %r is not host:port" % server)
    return host.strip("[]"), int(port)


def ask(server, connect_timeout):
    state = {"server": server, "serving": False, "mode": None, "zxid": None, "version": None,
             "node_count": None, "error": None}
    try:
        host, port = split_server(server)
        with socket.create_connection((host, port), timeout=connect_timeout) as conn:
            conn.sendall(b"srvr")
            chunks = []
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")
    except (OSError, ValueError) as err:
        state["error"] = str(err)
        return state
    parsed = parse_srvr(text)
    if parsed is None:
        state["error"] = text.strip() or "empty answer (is srvr in 4lw.commands.whitelist?)"
        return state
    state.update(parsed)
    state["serving"] = True
    return state


def assess(states):
    """Leader count and health of an ensemble from its servers' states."""
    leaders = sum(1 for s in states if s["mode"] == "leader")
    serving = all(s["serving"] for s in states)
    if len(states) == 1:
        healthy = serving and states[0]["mode"] in ("standalone", "leader")
    else:
        healthy = serving and leaders == 1 and all(s["mode"] in ("leader", "follower", "observer") for s in states)
    return leaders, healthy


def describe(states):
    return "; ".join("%s: %s" % (s["server"], s["mode"] if s["serving"] else "not serving (%s)" % s["error"])
                     for s in states)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            servers=dict(type="list", elements="str", default=["127.0.0.1:2181"]),
            expect_healthy=dict(type="bool", default=False),
            wait_timeout=dict(type="float", default=120),
            connect_timeout=dict(type="float", default=3),
        ),
        supports_check_mode=True,
    )
    servers = module.params["servers"]
    if not servers:
        module.fail_json(msg="servers is empty: give at least one host:port")
    for server in servers:
        try:
            split_server(server)
        except ValueError as err:
            module.fail_json(msg=str(err))

    def read():
        states = [ask(server, module.params["connect_timeout"]) for server in servers]
        leaders, healthy = assess(states)
        return (states, leaders, healthy), [] if healthy else ["not healthy"]

    waiting = module.params["expect_healthy"]
    (states, leaders, healthy), _problems, waited = wait_until(read, waiting, module.params["wait_timeout"])
    result = dict(changed=False, servers=states, leader_count=leaders, healthy=healthy, waited=waited)
    if waiting and not healthy:
        module.fail_json(msg="ZooKeeper ensemble not healthy after %gs (%d leaders): %s"
                         % (waited, leaders, describe(states)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
