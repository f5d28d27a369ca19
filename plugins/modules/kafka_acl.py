#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_acl
short_description: Grant and revoke Kafka ACLs, and keep a principal to exactly the ACLs listed
description:
  - Ensures that the ACLs of O(acls) exist (O(state=present)) or do not (O(state=absent)) on a cluster whose
    brokers run an authorizer (C(authorizer.class.name)).
  - With O(principals), the task owns every ACL of those principals; with O(state=present), an ACL of one of
    them that O(acls) does not list is removed, so a principal keeps exactly what the task grants (least
    privilege survives an agent or a grant taken out of the inventory).
  - Reads every ACL of the cluster in one request, then creates and deletes in one request each.
  - The connection needs a principal allowed to describe and alter the cluster (a super user, or ALTER and
    DESCRIBE on the cluster resource).
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.kafka
options:
  acls:
    description:
      - The ACLs, one per principal, host, operation, permission and resource.
    type: list
    elements: dict
    default: []
    suboptions:
      principal:
        description: The principal, as Kafka names it, for example C(User:laddr-writer).
        type: str
        required: true
      host:
        description: The client address the ACL applies to; V(*) for any.
        type: str
        default: "*"
      operation:
        description: What the principal may (or may not) do to the resource.
        type: str
        required: true
        choices: [all, read, write, create, delete, alter, describe, cluster_action, describe_configs,
                  alter_configs, idempotent_write]
      permission:
        description: Allow it, or deny it (a deny wins over any allow).
        type: str
        choices: [allow, deny]
        default: allow
      resource_type:
        description: The kind of resource; V(cluster) is the cluster itself (Kafka's C(kafka-cluster)).
        type: str
        required: true
        choices: [topic, group, cluster, transactional_id]
      resource_name:
        description:
          - Name of the topic, group or transactional id, or its prefix with O(acls[].pattern_type=prefixed);
            V(*) for every one. Not used for V(cluster).
        type: str
      pattern_type:
        description: Whether O(acls[].resource_name) is the whole name or a prefix of the names.
        type: str
        choices: [literal, prefixed]
        default: literal
  state:
    description:
      - Whether the ACLs of O(acls) should exist.
    type: str
    choices: [present, absent]
    default: present
  principals:
    description:
      - Principals whose ACLs this task owns. With O(state=present), every ACL of these principals that
        O(acls) does not list is removed; a principal listed here without any entry in O(acls) loses all its
        ACLs. Principals not listed here keep ACLs that O(acls) does not name.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reports what would be created and removed; nothing is sent but the read.
  diff_mode:
    support: full
    description: Before and after list the ACLs of the principals the task names, one line each.
seealso:
  - module: laddr.kafka.kafka_topic
"""

EXAMPLES = r"""
- name: The writer agent's workers read their tasks in their group and write answers, nothing else
  laddr.kafka.kafka_acl:
    bootstrap_servers: ["kafka1:9092"]
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: admin
    sasl_password: "{{ kafka_admin_password }}"
    ssl_cafile: /etc/kafka/tls/ca.crt
    principals: [User:laddr-writer]
    acls:
      - {principal: "User:laddr-writer", operation: read, resource_type: topic, resource_name: laddr.tasks.writer}
      - {principal: "User:laddr-writer", operation: describe, resource_type: topic, resource_name: laddr.tasks.writer}
      - {principal: "User:laddr-writer", operation: read, resource_type: group, resource_name: laddr-writer-workers}
      - {principal: "User:laddr-writer", operation: write, resource_type: topic, resource_name: laddr.responses}
      - {principal: "User:laddr-writer", operation: describe, resource_type: topic, resource_name: laddr.responses}

- name: Kafka UI reads every topic
  laddr.kafka.kafka_acl:
    acls:
      - {principal: "User:kafka-ui", operation: read, resource_type: topic, resource_name: "*"}
      - {principal: "User:kafka-ui", operation: describe, resource_type: cluster}

- name: A retired agent's principal keeps nothing
  laddr.kafka.kafka_acl:
    principals: [User:laddr-auditor]
"""

RETURN = r"""
acls:
  description: The ACLs of the principals named by the task (in O(acls) or O(principals)) after it, or as they
    would be in check mode, sorted.
  returned: always
  type: list
  elements: dict
  sample: [{"principal": "User:laddr-writer", "host": "*", "operation": "read", "permission": "allow",
            "resource_type": "topic", "resource_name": "laddr.tasks.writer", "pattern_type": "literal"}]
created:
  description: The ACLs created (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
removed:
  description: The ACLs removed (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
diff:
  description: With C(--diff), before and after of the named principals' ACLs, one line each.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.laddr.kafka.plugins.module_utils.kafka import (
    ACL_FIELDS,
    CLUSTER_RESOURCE_NAME,
    run_kafka_module,
)

# Kafka's names of the resource types of the choices (the cluster is BROKER in its admin API).
RESOURCE_TYPES = {"topic": "TOPIC", "group": "GROUP", "cluster": "BROKER", "transactional_id": "TRANSACTIONAL_ID"}
RESOURCE_CHOICES = dict((kafka, choice) for choice, kafka in RESOURCE_TYPES.items())


def principal_problem(principal):
    """A sentence when PRINCIPAL is no TYPE:NAME, else None (pure)."""
    if not principal or ":" not in principal:
        return "principal %r: give the type and name, as in User:laddr-writer" % principal
    return None


def wanted_key(acl):
    """An item of O(acls) as the client's acl_key tuple, or a sentence saying what is wrong with it (pure)."""
    problem = principal_problem(acl["principal"])
    if problem:
        return None, problem
    if acl["resource_type"] == "cluster":
        if acl.get("resource_name") not in (None, CLUSTER_RESOURCE_NAME):
            return None, "%s: a cluster ACL names no resource (resource_name %r)" % (acl["principal"], acl["resource_name"])
        name, pattern = CLUSTER_RESOURCE_NAME, "literal"
    else:
        name, pattern = acl.get("resource_name"), acl["pattern_type"]
        if not name:
            return None, "%s: %s ACL without resource_name; give the name, a prefix or *" % (
                acl["principal"], acl["resource_type"])
    return (acl["principal"], acl["host"], acl["operation"].upper(), acl["permission"].upper(),
            RESOURCE_TYPES[acl["resource_type"]], name, pattern.upper()), None


def acl_dict(key):
    """The acl_key tuple as the module returns it, in the option's words (pure)."""
    entry = dict(zip(ACL_FIELDS, key))
    entry.update(operation=entry["operation"].lower(), permission=entry["permission"].lower(),
                 resource_type=RESOURCE_CHOICES.get(entry["resource_type"], entry["resource_type"].lower()),
                 pattern_type=entry["pattern_type"].lower())
    return entry


def acl_line(key):
    entry = acl_dict(key)
    return "%(principal)s %(permission)s %(operation)s on %(resource_type)s %(resource_name)s (%(pattern_type)s) from %(host)s" % entry


def plan(wanted, actual, state, owned):
    """(to create, to remove) as sorted lists of keys (pure)."""
    if state == "absent":
        return [], sorted(wanted & actual)
    stray = set(key for key in actual if key[0] in owned) - wanted
    return sorted(wanted - actual), sorted(stray)


class AclManager(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client

    def run(self):
        params = self.module.params
        keys, problems = [], []
        for acl in params["acls"]:
            key, problem = wanted_key(acl)
            if problem:
                problems.append(problem)
            else:
                keys.append(key)
        problems += [problem for problem in map(principal_problem, params["principals"]) if problem]
        if problems:
            self.module.fail_json(msg="No ACL changed: " + "; ".join(problems))
        wanted, owned = set(keys), set(params["principals"])
        named = owned | set(key[0] for key in keys)
        actual = self.client.acls()
        create, remove = plan(wanted, actual, params["state"], owned)
        errors = {}
        if not self.module.check_mode:
            errors.update(("create %s" % acl_line(k), e) for k, e in self.client.create_acls(create).items() if e)
            errors.update(("remove %s" % acl_line(k), e) for k, e in self.client.delete_acls(remove).items() if e)
        before = sorted(key for key in actual if key[0] in named)
        after = sorted((set(before) | set(create)) - set(remove))
        result = dict(changed=bool(create or remove), acls=[acl_dict(k) for k in after],
                      created=[acl_dict(k) for k in create], removed=[acl_dict(k) for k in remove])
        if self.module._diff:
            result["diff"] = {"before": "".join(acl_line(k) + "\n" for k in before),
                              "after": "".join(acl_line(k) + "\n" for k in after)}
        if errors:
            # What the cluster holds now, rather than what was planned.
            now = self.client.acls()
            result.update(changed=now != actual, acls=[acl_dict(k) for k in sorted(k for k in now if k[0] in named)])
            self.module.fail_json(msg="Kafka refused: " + "; ".join("%s: %s" % item for item in sorted(errors.items())),
                                  **result)
        self.module.exit_json(**result)


def main():
    run_kafka_module(
        AclManager,
        dict(
            acls=dict(type="list", elements="dict", default=[], options=dict(
                principal=dict(type="str", required=True),
                host=dict(type="str", default="*"),
                operation=dict(type="str", required=True,
                               choices=["all", "read", "write", "create", "delete", "alter", "describe",
                                        "cluster_action", "describe_configs", "alter_configs", "idempotent_write"]),
                permission=dict(type="str", default="allow", choices=["allow", "deny"]),
                resource_type=dict(type="str", required=True, choices=list(RESOURCE_TYPES)),
                resource_name=dict(type="str"),
                pattern_type=dict(type="str", default="literal", choices=["literal", "prefixed"]),
            )),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            principals=dict(type="list", elements="str", default=[]),
        ),
    )


if __name__ == "__main__":
    main()
