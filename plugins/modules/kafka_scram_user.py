#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_scram_user
short_description: Keep Kafka's SASL/SCRAM users and their passwords
description:
  - Ensures that each user of O(users) has a SCRAM credential of its mechanism with its password and iteration
    count (O(users[].state=present)), or none (V(absent)).
  - Kafka keeps only a salted digest of a password, so the module cannot read one back. It asks the cluster
    instead. A user whose password already logs in (a real SASL/SCRAM login on O(login_bootstrap_servers)) and
    whose iteration count is as asked is left alone; any other gets its credential set again. A second run with
    the same passwords changes nothing, and a changed password is set.
  - After a change, waits up to O(wait_timeout) seconds until each new password logs in (the brokers learn new
    credentials from ZooKeeper a moment after they are written).
  - Passwords are never returned or logged.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.kafka
options:
  users:
    description:
      - The users.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The user name (the principal is C(User:<name>)).
        type: str
        required: true
      password:
        description: The password; required with O(users[].state=present).
        type: str
      mechanism:
        description: The SCRAM mechanism of the credential.
        type: str
        choices: [SCRAM-SHA-256, SCRAM-SHA-512]
        default: SCRAM-SHA-512
      iterations:
        description: Iterations of the credential's key derivation (Kafka takes 4096 to 16384).
        type: int
        default: 8192
      state:
        description: Whether the user has a credential of this mechanism.
        type: str
        choices: [present, absent]
        default: present
  login_bootstrap_servers:
    description:
      - Where the users log in to prove their passwords; a listener that takes SASL with the users' mechanism.
      - Defaults to O(bootstrap_servers).
    type: list
    elements: str
  login_security_protocol:
    description:
      - Protocol of the login listener; V(SASL_SSL) uses the TLS options of the connection (O(ssl_cafile) and
        the others).
      - Defaults to O(security_protocol) when that is a SASL protocol; required otherwise.
    type: str
    choices: [SASL_PLAINTEXT, SASL_SSL]
  wait_timeout:
    description:
      - Seconds to wait after a change until every changed user logs in with the new password.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    description: Reads and tries the logins, and reports what would be set or removed, setting nothing.
  diff_mode:
    support: none
    description: Passwords are not shown, and the users' actions are in RV(users).
seealso:
  - module: laddr.kafka.kafka_acl
"""

EXAMPLES = r"""
- name: The API and the workers of each agent have their own users
  laddr.kafka.kafka_scram_user:
    bootstrap_servers: ["kafka1:29092"]     # the brokers' TLS listener, where the admin is known by its certificate
    security_protocol: SSL
    ssl_cafile: /etc/kafka/tls/ca.crt
    ssl_certfile: /etc/kafka/tls/admin.crt
    ssl_keyfile: /etc/kafka/tls/admin.key
    login_bootstrap_servers: ["kafka1:9092"]
    login_security_protocol: SASL_SSL
    users:
      - {name: laddr-api, password: "{{ laddr_api_kafka_password }}"}
      - {name: laddr-writer, password: "{{ laddr_writer_kafka_password }}"}
  no_log: true

- name: A retired agent's user is gone
  laddr.kafka.kafka_scram_user:
    bootstrap_servers: ["kafka1:9092"]
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: admin
    sasl_password: "{{ kafka_admin_password }}"
    ssl_cafile: /etc/kafka/tls/ca.crt
    users:
      - {name: laddr-auditor, state: absent}
"""

RETURN = r"""
users:
  description: Per user of O(users), in order, what the task did (or would do, in check mode); no password.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The user name.
      type: str
    mechanism:
      description: The mechanism of the credential.
      type: str
    action:
      description: V(create), V(update) (the password did not log in, or other iterations), V(delete) or V(none).
      type: str
    changed:
      description: Whether the task changed this user's credential.
      type: bool
waited:
  description: Seconds spent waiting for the new passwords to log in.
  returned: always
  type: float
"""

import time

from ansible_collections.laddr.kafka.plugins.module_utils.kafka import (
    KafkaAdmin,
    KafkaClientError,
    run_kafka_module,
)

# A user name Kafka takes and that stays readable in principals and logs.
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
ITERATIONS = (4096, 16384)


def problems_of(users):
    """Sentences for what is wrong with O(users), before anything is read (pure)."""
    problems, seen = [], set()
    for user in users:
        name = user["name"]
        if not name or not set(name) <= NAME_CHARS:
            problems.append("user %r: use letters, digits, '.', '_', '-' and '@'" % name)
        if (name, user["mechanism"]) in seen:
            problems.append("user %r is listed twice for %s" % (name, user["mechanism"]))
        seen.add((name, user["mechanism"]))
        if user["state"] == "present":
            if not user.get("password"):
                problems.append("user %r: give a password (or state: absent)" % name)
            if not ITERATIONS[0] <= user["iterations"] <= ITERATIONS[1]:
                problems.append("user %r: iterations is %d; Kafka takes %d to %d"
                                % (name, user["iterations"], ITERATIONS[0], ITERATIONS[1]))
    return problems


def action_of(user, has, logs_in):
    """create, update, delete or none for one user (pure). HAS: {mechanism: iterations} the cluster keeps;
    LOGS_IN: whether the user's password logged in (None when not tried)."""
    mechanism = user["mechanism"]
    if user["state"] == "absent":
        return "delete" if mechanism in has else "none"
    if mechanism not in has:
        return "create"
    return "none" if has[mechanism] == user["iterations"] and logs_in else "update"


class ScramUserManager(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        params = module.params
        protocol = params["login_security_protocol"] or (
            params["security_protocol"] if params["security_protocol"].startswith("SASL_") else None)
        if protocol is None:
            module.fail_json(msg="login_security_protocol is not set and the connection (security_protocol %s) is no "
                                 "SASL one: give the listener where the users log in (login_bootstrap_servers and "
                                 "login_security_protocol)" % params["security_protocol"])
        self.login = dict(params, bootstrap_servers=params["login_bootstrap_servers"] or params["bootstrap_servers"],
                          security_protocol=protocol)

    def logs_in(self, user, timeout=None):
        login = dict(self.login, sasl_mechanism=user["mechanism"], sasl_username=user["name"],
                     sasl_password=user["password"])
        return KafkaAdmin(login).authenticates(timeout)

    def run(self):
        users = self.module.params["users"]
        problems = problems_of(users)
        if problems:
            self.module.fail_json(msg="No user changed: " + "; ".join(problems))
        kept = self.client.scram_credentials(sorted(set(u["name"] for u in users)))
        actions = []
        for user in users:
            has = kept[user["name"]]
            tried = self.logs_in(user) if user["state"] == "present" and user["mechanism"] in has else None
            actions.append(action_of(user, has, tried))
        upserts = [(u["name"], u["mechanism"], u["iterations"], u["password"])
                   for u, action in zip(users, actions) if action in ("create", "update")]
        deletions = [(u["name"], u["mechanism"]) for u, action in zip(users, actions) if action == "delete"]
        report = [dict(name=u["name"], mechanism=u["mechanism"], action=action, changed=action != "none")
                  for u, action in zip(users, actions)]
        result = dict(changed=bool(upserts or deletions), users=report, waited=0.0)
        if self.module.check_mode or not result["changed"]:
            self.module.exit_json(**result)
        refused = dict((user, error) for user, error in
                       self.client.alter_scram_credentials(upserts, deletions).items() if error)
        if refused:
            self.module.fail_json(msg="Kafka refused: " + "; ".join("user %r: %s" % item for item in sorted(refused.items())),
                                  **result)
        result["waited"], late = self._wait_for_logins([u for u, a in zip(users, actions) if a in ("create", "update")])
        if late:
            self.module.fail_json(msg="Set, but these users' new passwords did not log in on %s within %gs: %s"
                                      % (",".join(self.login["bootstrap_servers"]), self.module.params["wait_timeout"],
                                         ", ".join(late)), **result)
        self.module.exit_json(**result)

    def _wait_for_logins(self, users):
        started = time.monotonic()
        deadline = started + self.module.params["wait_timeout"]
        waiting = list(users)
        while waiting:
            try:
                waiting = [u for u in waiting if not self.logs_in(u, timeout=max(deadline - time.monotonic(), 1))]
            except KafkaClientError:
                pass  # unreachable for a moment: ask again until the deadline
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        return round(time.monotonic() - started, 1), [u["name"] for u in waiting]


def main():
    run_kafka_module(
        ScramUserManager,
        dict(
            users=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                password=dict(type="str", no_log=True),
                mechanism=dict(type="str", default="SCRAM-SHA-512", choices=["SCRAM-SHA-256", "SCRAM-SHA-512"]),
                iterations=dict(type="int", default=8192),
                state=dict(type="str", default="present", choices=["present", "absent"]),
            )),
            login_bootstrap_servers=dict(type="list", elements="str"),
            login_security_protocol=dict(type="str", choices=["SASL_PLAINTEXT", "SASL_SSL"]),
            wait_timeout=dict(type="float", default=30),
        ),
    )


if __name__ == "__main__":
    main()
