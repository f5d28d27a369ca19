#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_cluster_info
short_description: Read a Kafka cluster's brokers and partition health, and wait for it to be healthy
description:
  - Reports the brokers in the cluster's metadata, the controller, the number of topics and partitions,
    and the partitions that are under-replicated (fewer in-sync replicas than replicas), under their
    minimum ISR (fewer in-sync replicas than the topic's effective C(min.insync.replicas), so that
    producers with C(acks=all) are refused) or offline (no leader).
  - Optionally waits for an expected broker count and for no under-replicated or under-min-ISR
    partitions, as the gate between broker restarts of a rolling restart.
  - A wait that times out fails and reports what it last saw.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.kafka
  - laddr.kafka.read_only
options:
  expect_brokers:
    description:
      - Wait until the metadata lists exactly this many brokers.
    type: int
  expect_no_under_replicated:
    description:
      - Wait until no partition is under-replicated (and so none is offline).
    type: bool
    default: false
  expect_no_under_min_isr:
    description:
      - Wait until no partition has fewer in-sync replicas than its topic's C(min.insync.replicas).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the C(expect_*) conditions before failing. V(0) checks them once.
        A read under way when the time is up can add up to O(request_timeout).
      - Connection errors during the wait are retried until then (refused credentials fail at once),
        so a wait may start while the only bootstrap broker restarts.
    type: float
    default: 120
seealso:
  - module: laddr.kafka.kafka_topic
  - module: laddr.kafka.kafka_consumer_group_info
"""

EXAMPLES = r"""
- name: Read the cluster's health
  laddr.kafka.kafka_cluster_info:
    bootstrap_servers: ["kafka1:9092", "kafka2:9092", "kafka3:9092"]
  register: cluster

- name: Show it
  ansible.builtin.debug:
    msg: >-
      {{ cluster.broker_count }} brokers, controller {{ cluster.controller_id }},
      {{ cluster.under_replicated_partition_count }} under-replicated partitions

- name: All three brokers are back and every partition is fully replicated
  laddr.kafka.kafka_cluster_info:
    bootstrap_servers: ["kafka1:9092", "kafka2:9092", "kafka3:9092"]
    expect_brokers: 3
    expect_no_under_replicated: true
    expect_no_under_min_isr: true
    wait_timeout: 300
"""

RETURN = r"""
cluster_id:
  description: The cluster id.
  returned: always
  type: str
  sample: aaazgY7qSlurUjgy_6L06Q
controller_id:
  description: Broker id of the controller, or -1 when none is known.
  returned: always
  type: int
  sample: 1
broker_count:
  description: Number of brokers in the metadata.
  returned: always
  type: int
  sample: 3
brokers:
  description: Brokers in the metadata, sorted by id.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Broker id.
      type: int
      sample: 1
    host:
      description: Advertised host.
      type: str
      sample: kafka1
    port:
      description: Advertised port.
      type: int
      sample: 9092
topic_count:
  description: Number of topics, internal ones such as C(__consumer_offsets) included.
  returned: always
  type: int
  sample: 12
partition_count:
  description: Number of partitions of all topics.
  returned: always
  type: int
  sample: 120
under_replicated_partition_count:
  description: Partitions with fewer in-sync replicas than replicas.
  returned: always
  type: int
  sample: 0
under_min_isr_partition_count:
  description: Partitions with fewer in-sync replicas than their topic's effective C(min.insync.replicas).
  returned: always
  type: int
  sample: 0
offline_partition_count:
  description: Partitions without a leader.
  returned: always
  type: int
  sample: 0
under_replicated_partitions:
  description: The under-replicated partitions.
  returned: always
  type: list
  elements: dict
  sample: [{"topic": "laddr.responses", "partition": 2, "leader": 1, "replicas": [1, 2, 3], "isr": [1, 3]}]
under_min_isr_partitions:
  description: The under-min-ISR partitions, each with its topic's C(min_insync_replicas).
  returned: always
  type: list
  elements: dict
  sample:
    - {"topic": "laddr.responses", "partition": 2, "leader": 1, "replicas": [1, 2, 3], "isr": [1], "min_insync_replicas": 2}
offline_partitions:
  description: The partitions without a leader.
  returned: always
  type: list
  elements: dict
  sample: []
waited:
  description: Seconds spent waiting for the C(expect_*) conditions.
  returned: always
  type: float
  sample: 12.4
"""

from ansible_collections.laddr.kafka.plugins.module_utils.kafka import (
    KafkaClientError,
    metadata_brokers,
    metadata_topics,
    run_kafka_module,
)
from ansible_collections.laddr.kafka.plugins.module_utils.wait import wait_until


def min_isr_by_topic(configs):
    """{topic: effective min.insync.replicas} from KafkaAdmin.topic_configs() (pure)."""
    found = {}
    for topic, entries in configs.items():
        value = (entries.get("min.insync.replicas") or {}).get("value")
        if value is not None and str(value).isdigit():
            found[topic] = int(value)
    return found


def partition_health(topics, min_isr):
    """Under-replicated, under-min-ISR and offline partitions (pure).

    topics: metadata_topics() output; min_isr: {topic: effective min.insync.replicas}; a topic missing
    from min_isr (it vanished between the two reads) is not judged for min ISR.
    """
    under_replicated, under_min_isr, offline = [], [], []
    count = 0
    for topic in sorted(topics):
        for partition_id in sorted(topics[topic]["partitions"]):
            count += 1
            p = topics[topic]["partitions"][partition_id]
            entry = {"topic": topic, "partition": partition_id, "leader": p["leader"],
                     "replicas": p["replicas"], "isr": p["isr"]}
            if len(p["isr"]) < len(p["replicas"]):
                under_replicated.append(entry)
            if topic in min_isr and len(p["isr"]) < min_isr[topic]:
                under_min_isr.append(dict(entry, min_insync_replicas=min_isr[topic]))
            if p["leader"] < 0:
                offline.append(entry)
    return {
        "partition_count": count,
        "under_replicated_partition_count": len(under_replicated),
        "under_replicated_partitions": under_replicated,
        "under_min_isr_partition_count": len(under_min_isr),
        "under_min_isr_partitions": under_min_isr,
        "offline_partition_count": len(offline),
        "offline_partitions": offline,
    }


def unmet(observed, expect):
    """What of the expectations the observation does not meet, as sentences (pure)."""
    problems = []

    def listed(partitions):
        return ", ".join("%s[%d] isr %s" % (p["topic"], p["partition"], p["isr"]) for p in partitions[:10])

    if expect.get("brokers") is not None and observed["broker_count"] != expect["brokers"]:
        problems.append("%d brokers (%s), expected %d" % (
            observed["broker_count"], ", ".join(str(b["id"]) for b in observed["brokers"]) or "none",
            expect["brokers"]))
    if expect.get("no_under_replicated") and observed["under_replicated_partition_count"]:
        problems.append("%d under-replicated partitions: %s" % (
            observed["under_replicated_partition_count"], listed(observed["under_replicated_partitions"])))
    if expect.get("no_under_min_isr") and observed["under_min_isr_partition_count"]:
        problems.append("%d partitions under min ISR: %s" % (
            observed["under_min_isr_partition_count"], listed(observed["under_min_isr_partitions"])))
    return problems


class ClusterInfo(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        params = module.params
        self.expect = {
            "brokers": params["expect_brokers"],
            "no_under_replicated": params["expect_no_under_replicated"],
            "no_under_min_isr": params["expect_no_under_min_isr"],
        }
        self.waiting = (self.expect["brokers"] is not None or self.expect["no_under_replicated"]
                        or self.expect["no_under_min_isr"])

    def observe(self):
        metadata = self.client.metadata()
        topics = metadata_topics(metadata)
        min_isr = min_isr_by_topic(self.client.topic_configs(sorted(topics)))
        brokers = metadata_brokers(metadata)
        observed = {
            "cluster_id": metadata.cluster_id,
            "controller_id": metadata.controller_id,
            "broker_count": len(brokers),
            "brokers": brokers,
            "topic_count": len(topics),
        }
        observed.update(partition_health(topics, min_isr))
        return observed

    def run(self):
        def read():
            observed = self.observe()
            return observed, unmet(observed, self.expect)

        observed, problems, waited = wait_until(read, self.waiting, self.module.params["wait_timeout"],
                                                transient=(KafkaClientError,))
        if not problems:
            self.module.exit_json(changed=False, waited=waited, **observed)
        msg = "Kafka cluster not as expected after %gs: %s" % (waited, "; ".join(problems))
        if observed is None:
            self.module.fail_json(msg=msg, changed=False, waited=waited)
        msg += ". Observed: %d brokers, controller %d, %d under-replicated, %d under min ISR, %d offline" % (
            observed["broker_count"], observed["controller_id"], observed["under_replicated_partition_count"],
            observed["under_min_isr_partition_count"], observed["offline_partition_count"])
        self.module.fail_json(msg=msg, changed=False, waited=waited, **observed)


def main():
    run_kafka_module(
        ClusterInfo,
        dict(
            expect_brokers=dict(type="int"),
            expect_no_under_replicated=dict(type="bool", default=False),
            expect_no_under_min_isr=dict(type="bool", default=False),
            wait_timeout=dict(type="float", default=120),
        ),
    )


if __name__ == "__main__":
    main()
