#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_consumer_group_info
short_description: Read a Kafka consumer group's members, offsets and lag, and wait for it to be ready
description:
  - Reports a consumer group's state, its members with their client ids, hosts and assigned partitions,
    and for every partition of the topics it consumes the committed offset, the log start and end offsets
    and the lag.
  - The topics reported are those the group has committed offsets on, those assigned to its members,
    and those given in O(topics), so that a group that never committed on a topic still shows that
    topic's partitions.
  - A partition without a committed offset has RV(partitions[].committed) and RV(partitions[].lag) null,
    never a lag of 0, and is counted in RV(partitions_without_commit). Where such a group would start
    reading depends on the consumers' C(auto.offset.reset), which the cluster does not know;
    RV(total_lag_including_uncommitted) counts those partitions from their log start offset, the most
    a consumer could have to read.
  - Optionally waits until the group has the expected members, state, lag and assignment, for playbooks
    that gate on workers being up or caught up. A wait that times out fails and reports what it last saw.
  - With O(groups), reads and waits for several groups in one run (one connection, one wait for all of them)
    and reports each in RV(groups).
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
extends_documentation_fragment:
  - laddr.kafka.kafka
  - laddr.kafka.read_only
options:
  group:
    description:
      - The consumer group id. One of O(group) and O(groups) is required.
    type: str
    aliases: [group_id]
  groups:
    description:
      - Several groups at once, each with its own topics and expectations (the options of the same names,
        which then apply to none of them); O(allow_missing) and O(wait_timeout) apply to all.
      - The task waits until every group meets its expectations, and fails naming each group that does not.
    type: list
    elements: dict
    suboptions:
      group:
        description: The consumer group id.
        type: str
        required: true
      topics:
        description: As O(topics).
        type: list
        elements: str
        default: []
      expect_members:
        description: As O(expect_members).
        type: int
      expect_state:
        description: As O(expect_state).
        type: str
        choices: [Stable, Empty, PreparingRebalance, CompletingRebalance, Dead]
      expect_max_lag:
        description: As O(expect_max_lag).
        type: int
      expect_all_partitions_assigned:
        description: As O(expect_all_partitions_assigned).
        type: bool
        default: false
  topics:
    description:
      - Topics to report in addition to those the group commits on or is assigned.
      - A topic that does not exist fails the task.
    type: list
    elements: str
    default: []
  allow_missing:
    description:
      - Report a group that does not exist (no members and no committed offsets) with RV(exists=false)
        instead of failing.
    type: bool
    default: false
  expect_members:
    description:
      - Wait until the group has exactly this many members.
    type: int
  expect_state:
    description:
      - Wait until the group is in this state. V(Stable) means every member has its assignment.
    type: str
    choices: [Stable, Empty, PreparingRebalance, CompletingRebalance, Dead]
  expect_max_lag:
    description:
      - Wait until RV(total_lag_including_uncommitted) is at most this many messages, so that a partition
        without a committed offset counts with everything from its log start.
    type: int
  expect_all_partitions_assigned:
    description:
      - Wait until every reported partition is assigned to a member.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the C(expect_*) conditions before failing. V(0) checks them once.
        A read under way when the time is up can add up to O(request_timeout).
      - Connection errors during the wait are retried until then (refused credentials fail at once).
    type: float
    default: 60
seealso:
  - module: laddr.kafka.kafka_topic
  - module: laddr.kafka.kafka_cluster_info
"""

EXAMPLES = r"""
- name: Read the researcher workers' group
  laddr.kafka.kafka_consumer_group_info:
    bootstrap_servers: ["kafka1:9092"]
    group: laddr-researcher-workers
    topics: [laddr.tasks.researcher]
  register: researcher_group

- name: Show the lag
  ansible.builtin.debug:
    msg: >-
      {{ researcher_group.total_lag }} behind on committed partitions,
      {{ researcher_group.partitions_without_commit }} partitions never committed

- name: Three researcher workers have joined and own every partition
  laddr.kafka.kafka_consumer_group_info:
    bootstrap_servers: ["kafka1:9092"]
    group: laddr-researcher-workers
    topics: [laddr.tasks.researcher]
    expect_members: 3
    expect_state: Stable
    expect_all_partitions_assigned: true
    wait_timeout: 120

- name: Every agent's group has its workers, read and waited for in one run
  laddr.kafka.kafka_consumer_group_info:
    bootstrap_servers: ["kafka1:9092"]
    groups:
      - {group: laddr-researcher-workers, topics: [laddr.tasks.researcher], expect_members: 3, expect_state: Stable}
      - {group: laddr-writer-workers, topics: [laddr.tasks.writer], expect_members: 1, expect_state: Stable}
    wait_timeout: 120
  register: agent_groups

- name: The workers have drained the task topic
  laddr.kafka.kafka_consumer_group_info:
    bootstrap_servers: ["kafka1:9092"]
    group: laddr-researcher-workers
    topics: [laddr.tasks.researcher]
    expect_max_lag: 0
    wait_timeout: 600
"""

RETURN = r"""
group:
  description: The consumer group id.
  returned: when O(group) is given
  type: str
  sample: laddr-researcher-workers
exists:
  description: Whether the cluster knows the group (it has members or committed offsets).
  returned: when O(group) is given
  type: bool
  sample: true
state:
  description: >-
    Group state as Kafka names it: V(Stable), V(Empty), V(PreparingRebalance), V(CompletingRebalance),
    V(Dead) or V(Unknown).
  returned: when O(group) is given
  type: str
  sample: Stable
partition_assignor:
  description: Assignment strategy the members agreed on (empty when the group has no members).
  returned: when O(group) is given
  type: str
  sample: range
coordinator:
  description: Broker that coordinates the group.
  returned: when O(group) is given
  type: dict
  sample: {"id": 1, "host": "kafka1", "port": 9092}
member_count:
  description: Number of members.
  returned: when O(group) is given
  type: int
  sample: 3
members:
  description: The group's members.
  returned: when O(group) is given
  type: list
  elements: dict
  contains:
    member_id:
      description: Member id the coordinator gave the consumer.
      type: str
      sample: laddr-worker-1-6c1b0f0e
    client_id:
      description: The consumer's C(client.id).
      type: str
      sample: laddr-worker-1
    host:
      description: Address the consumer connected from.
      type: str
      sample: 10.0.0.21
    group_instance_id:
      description: Static membership id, or null.
      type: str
      sample: null
    assignment:
      description: Partitions assigned to the member.
      type: list
      elements: dict
      sample: [{"topic": "laddr.tasks.researcher", "partition": 0}]
topics:
  description: Topics reported, sorted.
  returned: when O(group) is given
  type: list
  elements: str
  sample: [laddr.tasks.researcher]
partitions:
  description: One entry per partition of RV(topics), sorted by topic and partition.
  returned: when O(group) is given
  type: list
  elements: dict
  contains:
    topic:
      description: Topic name.
      type: str
      sample: laddr.tasks.researcher
    partition:
      description: Partition id.
      type: int
      sample: 0
    committed:
      description: The group's committed offset, or null if it never committed on this partition.
      type: int
      sample: 1200
    log_start_offset:
      description: First offset still in the log (null for a topic that no longer exists).
      type: int
      sample: 0
    end_offset:
      description: Offset the next message will get (null for a topic that no longer exists).
      type: int
      sample: 1250
    lag:
      description: RV(partitions[].end_offset) minus RV(partitions[].committed), or null without a commit.
      type: int
      sample: 50
    member_id:
      description: Member the partition is assigned to, or null.
      type: str
      sample: laddr-worker-1-6c1b0f0e
    client_id:
      description: Client id of that member, or null.
      type: str
      sample: laddr-worker-1
total_lag:
  description: Sum of the lag of the partitions with a committed offset.
  returned: when O(group) is given
  type: int
  sample: 50
partitions_without_commit:
  description: Number of partitions (of existing topics) the group never committed an offset on.
  returned: when O(group) is given
  type: int
  sample: 0
total_lag_including_uncommitted:
  description: >-
    RV(total_lag) plus, for each partition without a committed offset, its end offset minus its log
    start offset.
  returned: when O(group) is given
  type: int
  sample: 50
all_partitions_assigned:
  description: Whether every reported partition is assigned to a member (false when none is reported).
  returned: when O(group) is given
  type: bool
  sample: true
unassigned_partitions:
  description: Reported partitions no member is assigned.
  returned: when O(group) is given
  type: list
  elements: dict
  sample: [{"topic": "laddr.tasks.researcher", "partition": 5}]
waited:
  description: Seconds spent waiting for the C(expect_*) conditions.
  returned: always
  type: float
  sample: 3.2
groups:
  description:
    - With O(groups), one entry per group in the order given, each with the values above that O(group) returns
      (RV(group), RV(exists), RV(state), RV(members), RV(partitions), the lags...), and C(problems), what of its
      expectations it did not meet (empty when it met them all).
  returned: when O(groups) is given
  type: list
  elements: dict
  sample: [{"group": "laddr-writer-workers", "state": "Stable", "member_count": 1, "total_lag": 0, "problems": []}]
"""

from ansible_collections.laddr.kafka.plugins.module_utils.kafka import (
    KafkaClientError,
    metadata_topics,
    run_kafka_module,
)
from ansible_collections.laddr.kafka.plugins.module_utils.wait import wait_until


# confluent-kafka's ConsumerGroupState names, as Kafka's tools and docs spell the states.
GROUP_STATES = {
    "UNKNOWN": "Unknown",
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
    "STABLE": "Stable",
    "DEAD": "Dead",
    "EMPTY": "Empty",
}


def state_name(state):
    name = getattr(state, "name", str(state))
    return GROUP_STATES.get(name, name)


def partition_rows(partitions, committed, log_start, log_end, owners):
    """One row per partition with offsets and lag (pure).

    partitions: [(topic, partition)]; committed: {(topic, partition): offset or None};
    log_start, log_end: {(topic, partition): offset} (missing for topics that no longer exist);
    owners: {(topic, partition): member dict}.
    """
    rows = []
    for key in sorted(partitions):
        offset = committed.get(key)
        end = log_end.get(key)
        owner = owners.get(key) or {}
        rows.append({
            "topic": key[0],
            "partition": key[1],
            "committed": offset,
            "log_start_offset": log_start.get(key),
            "end_offset": end,
            "lag": end - offset if offset is not None and end is not None else None,
            "member_id": owner.get("member_id"),
            "client_id": owner.get("client_id"),
        })
    return rows


def summarize(rows):
    """Totals over the partition rows (pure)."""
    total = sum(row["lag"] for row in rows if row["lag"] is not None)
    uncommitted = [row for row in rows if row["committed"] is None and row["end_offset"] is not None]
    unassigned = [{"topic": row["topic"], "partition": row["partition"]} for row in rows if row["member_id"] is None]
    return {
        "total_lag": total,
        "partitions_without_commit": len(uncommitted),
        "total_lag_including_uncommitted": total + sum(row["end_offset"] - row["log_start_offset"]
                                                       for row in uncommitted),
        "all_partitions_assigned": bool(rows) and not unassigned,
        "unassigned_partitions": unassigned,
    }


def unmet(observed, expect, allow_missing):
    """What of the expectations the observation does not meet, as sentences (pure)."""
    problems = []
    if not observed["exists"] and not allow_missing:
        problems.append("the group does not exist (no members, no committed offsets)")
    if expect.get("members") is not None and observed["member_count"] != expect["members"]:
        problems.append("%d members, expected %d" % (observed["member_count"], expect["members"]))
    if expect.get("state") and observed["state"].lower() != expect["state"].lower():
        problems.append("state %s, expected %s" % (observed["state"], expect["state"]))
    if expect.get("max_lag") is not None and observed["total_lag_including_uncommitted"] > expect["max_lag"]:
        problems.append("lag %d counting %d partitions without commit from their log start, expected at most %d"
                        % (observed["total_lag_including_uncommitted"], observed["partitions_without_commit"],
                           expect["max_lag"]))
    if expect.get("all_partitions_assigned") and not observed["all_partitions_assigned"]:
        if observed["partitions"]:
            problems.append("%d of %d partitions unassigned (%s)" % (
                len(observed["unassigned_partitions"]), len(observed["partitions"]),
                ", ".join("%s[%d]" % (p["topic"], p["partition"]) for p in observed["unassigned_partitions"][:10])))
        else:
            problems.append("no partitions to assign (the group consumes no topic yet)")
    return problems


def describe_observed(observed):
    return ("state %s, %d members, total lag %d, %d partitions without commit, %d of %d partitions assigned"
            % (observed["state"], observed["member_count"], observed["total_lag"],
               observed["partitions_without_commit"],
               len(observed["partitions"]) - len(observed["unassigned_partitions"]), len(observed["partitions"])))


def wanted(params):
    """The group, topics and expectations of one group, from the module's options or an item of groups (pure)."""
    return {
        "group": params["group"],
        "topics": params.get("topics") or [],
        "expect": {
            "members": params.get("expect_members"),
            "state": params.get("expect_state"),
            "max_lag": params.get("expect_max_lag"),
            "all_partitions_assigned": bool(params.get("expect_all_partitions_assigned")),
        },
    }


def expects_something(expect):
    return any(expect[key] is not None for key in ("members", "state", "max_lag")) or expect["all_partitions_assigned"]


class ConsumerGroupInfo(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        params = module.params
        self.several = params["groups"] is not None
        self.wanted = [wanted(item) for item in params["groups"]] if self.several else [wanted(params)]
        self.waiting = any(expects_something(one["expect"]) for one in self.wanted)

    def observe(self, group, wanted_topics, known):
        missing = [topic for topic in wanted_topics if topic not in known]
        if missing:
            plural = len(missing) > 1
            raise KafkaClientError("%s %s %s not exist" % ("topics" if plural else "topic",
                                                           ", ".join(repr(t) for t in missing),
                                                           "do" if plural else "does"))
        description = self.client.describe_group(group)
        committed = self.client.committed_offsets(group)
        members = []
        owners = {}
        for member in description.members:
            assigned = sorted((tp.topic, tp.partition) for tp in
                              (member.assignment.topic_partitions if member.assignment else []))
            entry = {"member_id": member.member_id, "client_id": member.client_id,
                     "host": (member.host or "").lstrip("/"), "group_instance_id": member.group_instance_id,
                     "assignment": [{"topic": t, "partition": p} for t, p in assigned]}
            members.append(entry)
            for key in assigned:
                owners[key] = entry
        topics = set(t for t, dummy in committed) | set(t for t, dummy in owners) | set(wanted_topics)
        live = [(t, p) for t in sorted(topics) if t in known for p in known[t]["partitions"]]
        stale = [key for key in committed if key[0] not in known]
        log_start, log_end = self.client.log_offsets(live)
        rows = partition_rows(live + stale, committed, log_start, log_end, owners)
        coordinator = description.coordinator
        state = state_name(description.state)
        observed = {
            "group": group,
            "exists": bool(members or committed or state != "Dead"),
            "state": state,
            "partition_assignor": description.partition_assignor or "",
            "coordinator": {"id": coordinator.id, "host": coordinator.host, "port": coordinator.port}
            if coordinator is not None else None,
            "member_count": len(members),
            "members": sorted(members, key=lambda m: (m["client_id"], m["member_id"])),
            "topics": sorted(topics),
            "partitions": rows,
        }
        observed.update(summarize(rows))
        return observed

    def read(self):
        """Every group once, with one metadata read: ([observed with its problems], [problem sentences])."""
        allow_missing = self.module.params["allow_missing"]
        known = metadata_topics(self.client.metadata())
        seen, problems, failed = [], [], []
        for one in self.wanted:
            try:
                observed = self.observe(one["group"], one["topics"], known)
            except KafkaClientError as exc:
                # One group's failed read does not hide what the others show.
                if exc.permanent or not self.several:
                    raise
                failed.append("%r: %s" % (one["group"], exc))
                continue
            observed["problems"] = unmet(observed, one["expect"], allow_missing)
            seen.append(observed)
            if observed["problems"]:
                problems.append("%r: %s" % (one["group"], "; ".join(observed["problems"])))
        if failed:
            raise KafkaClientError("; ".join(failed + problems))
        return seen, problems

    def run(self):
        label = "Consumer groups" if self.several else "Consumer group %r" % self.wanted[0]["group"]
        try:
            seen, problems, waited = wait_until(self.read, self.waiting, self.module.params["wait_timeout"],
                                                transient=(KafkaClientError,))
        except KafkaClientError as exc:
            self.module.fail_json(msg="%s: %s" % (label, exc))
        if seen is None:
            result = {}
        elif self.several:
            result = {"groups": seen}
        else:
            result = dict(seen[0])
            problems = result.pop("problems")
        if not problems:
            self.module.exit_json(changed=False, waited=waited, **result)
        if not self.waiting:
            self.module.fail_json(msg="%s: %s" % (label, "; ".join(problems)), changed=False, waited=waited, **result)
        msg = "%s not as expected after %gs: %s" % (label, waited, "; ".join(problems))
        if seen is not None:
            msg += ". Observed: " + "; ".join(
                ("%r: " % one["group"] if self.several else "") + describe_observed(one)
                for one in seen if one["problems"] or not self.several)
        self.module.fail_json(msg=msg, changed=False, waited=waited, **result)


def group_options():
    """The options of one group: the module's own with O(group), and each item's of O(groups)."""
    return dict(
        topics=dict(type="list", elements="str", default=[]),
        expect_members=dict(type="int"),
        expect_state=dict(type="str", choices=["Stable", "Empty", "PreparingRebalance", "CompletingRebalance", "Dead"]),
        expect_max_lag=dict(type="int"),
        expect_all_partitions_assigned=dict(type="bool", default=False),
    )


def main():
    run_kafka_module(
        ConsumerGroupInfo,
        dict(
            group=dict(type="str", aliases=["group_id"]),
            groups=dict(type="list", elements="dict", options=dict(group=dict(type="str", required=True), **group_options())),
            allow_missing=dict(type="bool", default=False),
            wait_timeout=dict(type="float", default=60),
            **group_options()
        ),
        mutually_exclusive=[("group", "groups")],
        required_one_of=[("group", "groups")],
    )


if __name__ == "__main__":
    main()
