#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Create, grow, configure and delete Kafka topics
description:
  - Ensures that Kafka topics exist with at least the given number of partitions, the given replication
    factor and the given topic-level configs, or that they do not exist.
  - Takes one topic (O(name)) or many (O(topics)). Many topics cost the same few requests as one;
    the module reads all topics' metadata and configs once, then creates, grows and reconfigures
    them in one batched request each.
  - Nothing is changed unless every topic's plan is possible, so a refused partition decrease or
    replication factor change leaves every topic of the task as it was.
  - Check mode asks the brokers to validate the creations, partition additions and config changes
    without applying them, so it fails where the real run would fail.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.kafka
options:
  name:
    description:
      - Name of the topic. Mutually exclusive with O(topics).
    type: str
  topics:
    description:
      - Many topics in one task. Each item takes the keys of the single-topic form; O(state),
        O(partitions), O(replication_factor) and O(configs) given at the top level are the defaults
        for the items (an item's O(configs) are merged over the top-level ones).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the topic.
        type: str
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
      partitions:
        description: As O(partitions).
        type: int
      replication_factor:
        description: As O(replication_factor).
        type: int
      configs:
        description: As O(configs).
        type: dict
  state:
    description:
      - Whether the topic should exist.
      - Deleting a topic deletes its messages; the brokers must have C(delete.topic.enable=true).
    type: str
    choices: [present, absent]
    default: present
  partitions:
    description:
      - Number of partitions. A new topic gets this many; an existing topic with fewer gets more.
      - Kafka cannot remove partitions, so a lower number than the topic has fails the task.
      - When omitted a new topic gets the controller's C(num.partitions) and an existing topic keeps
        its count.
    type: int
  replication_factor:
    description:
      - Replicas of each partition. Used when the topic is created.
      - An existing topic with another replication factor fails the task; changing it needs a
        partition reassignment, which this module does not do.
      - When omitted a new topic gets the controller's C(default.replication.factor).
    type: int
  configs:
    description:
      - Topic-level configs to set, for example C(retention.ms) or C(cleanup.policy).
      - Only the keys given are touched (incremental alter); every other topic-level config stays as it is.
      - A key counts as unchanged when the topic already has it set to the same value at topic level.
        A value equal to the broker default is still set at topic level, so the topic keeps it if the
        default changes.
      - A key with a null value removes the topic-level value, so the broker default applies again.
      - Values are sent as strings; YAML booleans become C(true) or C(false).
    type: dict
attributes:
  check_mode:
    support: full
    description: The brokers validate the changes without applying them.
  diff_mode:
    support: full
    description: Before and after show the state, partitions, replication factor and topic-level configs.
seealso:
  - module: laddr.kafka.kafka_consumer_group_info
  - module: laddr.kafka.kafka_cluster_info
"""

EXAMPLES = r"""
- name: Responses topic exists with six partitions and three-day retention
  laddr.kafka.kafka_topic:
    bootstrap_servers: ["kafka1:9092", "kafka2:9092"]
    name: laddr.responses
    partitions: 6
    replication_factor: 3
    configs:
      retention.ms: 259200000
      min.insync.replicas: 2

- name: Task topics of every agent exist, in one batch
  laddr.kafka.kafka_topic:
    bootstrap_servers: ["kafka1:9092"]
    partitions: 6
    replication_factor: 3
    configs:
      min.insync.replicas: 2
    topics:
      - name: laddr.tasks.researcher
      - name: laddr.tasks.writer
        partitions: 12
      - name: laddr.tasks.retired
        state: absent

- name: Retention of the responses topic is the broker default again
  laddr.kafka.kafka_topic:
    name: laddr.responses
    configs:
      retention.ms: null

- name: Old topic is gone
  laddr.kafka.kafka_topic:
    name: laddr.legacy
    state: absent

- name: SASL over TLS
  laddr.kafka.kafka_topic:
    bootstrap_servers: ["kafka1:9093"]
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    ssl_cafile: /etc/kafka/ssl/ca.pem
    name: laddr.responses
    partitions: 6
"""

RETURN = r"""
topic:
  description: The topic after the task (or as it would be, in check mode). Only with O(name).
  returned: when O(name) is given
  type: dict
  contains:
    name:
      description: Topic name.
      type: str
      sample: laddr.responses
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    partitions:
      description: Partition count, or null for an absent topic.
      type: int
      sample: 6
    replication_factor:
      description: Replicas per partition, or null for an absent topic.
      type: int
      sample: 3
    configs:
      description: Topic-level configs (those not inherited from the broker), or null for an absent topic.
      type: dict
      sample: {"retention.ms": "259200000"}
    changed:
      description: Whether the task changed this topic.
      type: bool
      sample: true
    actions:
      description: >-
        What was done (or would be, in check mode): V(create), V(add_partitions), V(set_configs),
        V(remove_configs), V(delete).
      type: list
      elements: str
      sample: ["add_partitions", "set_configs"]
topics:
  description: Every topic of the task, in the order given, each as RV(topic).
  returned: always
  type: list
  elements: dict
  sample:
    - name: laddr.tasks.researcher
      state: present
      partitions: 6
      replication_factor: 3
      configs: {"min.insync.replicas": "2"}
      changed: false
      actions: []
diff:
  description: >-
    With C(--diff): before and after of the topic (O(name)), or of every topic keyed by name (O(topics)).
  returned: when diff mode is on
  type: dict
  sample:
    before:
      name: laddr.responses
      state: present
      partitions: 3
      replication_factor: 3
      configs: {}
    after:
      name: laddr.responses
      state: present
      partitions: 6
      replication_factor: 3
      configs: {"retention.ms": "259200000"}
"""

import re

from ansible_collections.laddr.kafka.plugins.module_utils.kafka import (
    KafkaClientError,
    metadata_topics,
    run_kafka_module,
)

TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
TOPIC_KEYS = ("state", "partitions", "replication_factor", "configs")


def config_value(value):
    """A config value as Kafka stores it: a string, or None (remove)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def desired_topics(params):
    """The list of wanted topics from the module parameters, top-level values as defaults (pure)."""
    defaults = dict((key, params.get(key)) for key in TOPIC_KEYS)
    items = params["topics"] if params.get("topics") is not None else [dict(name=params["name"])]
    wanted = []
    for item in items:
        topic = {"name": item["name"]}
        for key in ("state", "partitions", "replication_factor"):
            topic[key] = item.get(key) if item.get(key) is not None else defaults[key]
        configs = dict(defaults["configs"] or {})
        configs.update(item.get("configs") or {})
        topic["configs"] = dict((str(key), config_value(value)) for key, value in configs.items())
        topic["state"] = topic["state"] or "present"
        wanted.append(topic)
    return wanted


def validate(wanted):
    """Problems with the request itself, before asking the cluster (pure)."""
    problems = []
    seen = set()
    for topic in wanted:
        name = topic["name"]
        if name in seen:
            problems.append("topic %r is listed more than once" % name)
        seen.add(name)
        if not TOPIC_NAME.match(name or "") or name in (".", ".."):
            problems.append("%r is not a valid topic name (up to 249 of a-z A-Z 0-9 . _ -)" % name)
        for key in ("partitions", "replication_factor"):
            if topic[key] is not None and topic[key] < 1:
                problems.append("topic %r: %s must be at least 1, got %d" % (name, key, topic[key]))
    return problems


def actual_topic(name, meta, overrides):
    """The topic's state as the cluster reports it (pure).

    meta is the topic's entry of metadata_topics() or None; overrides its topic-level configs.
    """
    if meta is None:
        return {"name": name, "state": "absent", "partitions": None, "replication_factor": None, "configs": None}
    partitions = meta["partitions"]
    replication = max([len(p["replicas"]) for p in partitions.values()] or [0])
    return {"name": name, "state": "present", "partitions": len(partitions), "replication_factor": replication,
            "configs": dict(overrides or {})}


def plan_topic(wanted, actual, broker_defaults=None):
    """Compare one wanted topic with its actual state (pure).

    Returns {"errors": [...], "actions": [...], "after": state, "create": spec or None,
    "partitions": new total or None, "configs": {key: value or None} to change}.
    broker_defaults gives "partitions" and "replication_factor" for a new topic that names neither.
    """
    name = wanted["name"]
    plan = {"errors": [], "actions": [], "after": dict(actual), "create": None, "partitions": None, "configs": {}}
    if wanted["state"] == "absent":
        if actual["state"] == "present":
            plan["actions"].append("delete")
            plan["after"] = actual_topic(name, None, None)
        return plan

    set_configs = dict((k, v) for k, v in wanted["configs"].items() if v is not None)
    if actual["state"] == "absent":
        defaults = broker_defaults or {}
        plan["actions"].append("create")
        plan["create"] = {
            "name": name,
            "partitions": wanted["partitions"] if wanted["partitions"] is not None else -1,
            "replication_factor": wanted["replication_factor"] if wanted["replication_factor"] is not None else -1,
            "configs": set_configs,
        }
        plan["after"] = {
            "name": name, "state": "present",
            "partitions": wanted["partitions"] if wanted["partitions"] is not None else defaults.get("partitions"),
            "replication_factor": (wanted["replication_factor"] if wanted["replication_factor"] is not None
                                   else defaults.get("replication_factor")),
            "configs": set_configs,
        }
        return plan

    if wanted["partitions"] is not None and wanted["partitions"] < actual["partitions"]:
        plan["errors"].append(
            "topic %r has %d partitions and %d were requested: Kafka cannot remove partitions"
            % (name, actual["partitions"], wanted["partitions"]))
    if wanted["replication_factor"] is not None and wanted["replication_factor"] != actual["replication_factor"]:
        plan["errors"].append(
            "topic %r has replication factor %d and %d was requested: changing it needs a partition "
            "reassignment, which this module does not do"
            % (name, actual["replication_factor"], wanted["replication_factor"]))
    if plan["errors"]:
        return plan

    after = dict(actual, configs=dict(actual["configs"]))
    if wanted["partitions"] is not None and wanted["partitions"] > actual["partitions"]:
        plan["actions"].append("add_partitions")
        plan["partitions"] = wanted["partitions"]
        after["partitions"] = wanted["partitions"]
    for key, value in sorted(wanted["configs"].items()):
        current = actual["configs"].get(key)
        if value is None and key in actual["configs"]:
            plan["configs"][key] = None
            del after["configs"][key]
        elif value is not None and current != value:
            plan["configs"][key] = value
            after["configs"][key] = value
    if any(v is not None for v in plan["configs"].values()):
        plan["actions"].append("set_configs")
    if any(v is None for v in plan["configs"].values()):
        plan["actions"].append("remove_configs")
    plan["after"] = after
    return plan


def topic_overrides(described):
    """Topic-level configs from KafkaAdmin.topic_configs() entries of one topic (pure)."""
    return dict((key, entry["value"]) for key, entry in described.items()
                if entry["source"] == "DYNAMIC_TOPIC_CONFIG")


def without_name(state):
    return dict((key, value) for key, value in state.items() if key != "name")


class TopicManager(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client

    def _broker_defaults(self, metadata):
        broker_id = metadata.controller_id if metadata.controller_id >= 0 else sorted(metadata.brokers)[0]
        config = self.client.broker_config(broker_id)
        return {"partitions": int(config["num.partitions"]),
                "replication_factor": int(config["default.replication.factor"])}

    def _read(self, names):
        """(metadata, {topic: actual state}) for the named topics: two requests, however many topics."""
        metadata = self.client.metadata()
        known = metadata_topics(metadata)
        described = self.client.topic_configs([name for name in names if name in known])
        return metadata, dict((name, actual_topic(name, known.get(name), topic_overrides(described.get(name, {}))))
                              for name in names)

    def run(self):
        wanted = desired_topics(self.module.params)
        problems = validate(wanted)
        if problems:
            self.module.fail_json(msg="; ".join(problems))

        metadata, actual = self._read([t["name"] for t in wanted])
        needs_defaults = any(t["state"] == "present" and actual[t["name"]]["state"] == "absent"
                             and (t["partitions"] is None or t["replication_factor"] is None) for t in wanted)
        defaults = self._broker_defaults(metadata) if needs_defaults else None
        plans = [(t["name"], plan_topic(t, actual[t["name"]], defaults)) for t in wanted]

        errors = [e for dummy, plan in plans for e in plan["errors"]]
        if errors:
            self.module.fail_json(msg="No topic changed: " + "; ".join(errors),
                                  topics=[self._report(actual[n], [], False) for n, dummy in plans])

        failures = self._apply(plans)
        after = dict((name, plan["after"]) for name, plan in plans)
        note = ""
        for name in failures:
            after[name] = actual[name]
        if failures and not self.module.check_mode:
            # A refused step may follow steps that went through: report what the cluster says now.
            try:
                after.update(self._read(sorted(failures))[1])
            except KafkaClientError as exc:
                note = " (their state after the refusal could not be read: %s)" % exc
        topics = []
        for name, plan in plans:
            if name in failures:
                topics.append(self._report(after[name], [], after[name] != actual[name]))
            else:
                topics.append(self._report(plan["after"], plan["actions"], bool(plan["actions"])))
        result = {"changed": any(t["changed"] for t in topics), "topics": topics}
        if self.module.params.get("name") is not None:
            result["topic"] = topics[0]
        if self.module._diff:
            result["diff"] = self._diff([name for name, dummy in plans], actual, after)
        if failures:
            self.module.fail_json(
                msg="%s: %s%s" % ("Kafka refused (check mode)" if self.module.check_mode else "Kafka refused",
                                  "; ".join("topic %r: %s" % (n, e) for n, e in sorted(failures.items())), note),
                **result)
        self.module.exit_json(**result)

    def _apply(self, plans):
        """Runs the batched requests; returns {topic: error} for those the cluster refused."""
        check = self.module.check_mode
        failures = {}

        def note(answers, what):
            for name, error in answers.items():
                if error is not None:
                    failures.setdefault(name, "%s: %s" % (what, error))

        note(self.client.create_topics([p["create"] for dummy, p in plans if p["create"]], validate_only=check),
             "create")
        note(self.client.create_partitions(dict((n, p["partitions"]) for n, p in plans
                                                if p["partitions"] and n not in failures), validate_only=check),
             "add partitions")
        note(self.client.alter_topic_configs(dict((n, p["configs"]) for n, p in plans
                                                  if p["configs"] and n not in failures), validate_only=check),
             "change configs")
        deletes = [n for n, p in plans if "delete" in p["actions"]]
        if not check:
            note(self.client.delete_topics(deletes), "delete")
        return failures

    @staticmethod
    def _report(state, actions, changed):
        return dict(state, changed=changed, actions=list(actions))

    def _diff(self, names, before, after):
        if self.module.params.get("name") is not None:
            return {"before": before[names[0]], "after": after[names[0]]}
        return {"before": dict((n, without_name(before[n])) for n in names),
                "after": dict((n, without_name(after[n])) for n in names)}


def main():
    run_kafka_module(
        TopicManager,
        dict(
            name=dict(type="str"),
            topics=dict(type="list", elements="dict", options=dict(
                name=dict(type="str", required=True),
                state=dict(type="str", choices=["present", "absent"]),
                partitions=dict(type="int"),
                replication_factor=dict(type="int"),
                configs=dict(type="dict"),
            )),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            partitions=dict(type="int"),
            replication_factor=dict(type="int"),
            configs=dict(type="dict"),
        ),
        mutually_exclusive=[("name", "topics")],
        required_one_of=[("name", "topics")],
    )


if __name__ == "__main__":
    main()
