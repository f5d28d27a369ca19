# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter laddr.kafka.agent_groups: the groups option of kafka_consumer_group_info for Laddr's agents."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
---
name: agent_groups
short_description: The consumer groups of Laddr's agents, as the groups option of kafka_consumer_group_info takes them
description:
  - One entry per agent, sorted by agent, with the agent's group C(laddr-<agent>-workers) and its task topic
    C(laddr.tasks.<agent>), as Laddr names them on Kafka.
  - Given the topic plan (agent to a dict with C(workers)), each group is expected to have one member per worker,
    and, with workers, to be Stable with every partition assigned.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
options:
  _input:
    description: Agent names, or the topic plan of the laddr role (agent to a dict with C(workers)).
    type: raw
    required: true
  max_lag:
    description: When given, each group is also expected to lag at most this many tasks.
    type: int
"""

EXAMPLES = r"""
- name: Each agent's group is Stable, one member per worker
  laddr.kafka.kafka_consumer_group_info:
    bootstrap_servers: ["kafka1:9092"]
    groups: "{{ laddr_topic_plan | laddr.kafka.agent_groups }}"

- name: No task waits for any agent
  laddr.kafka.kafka_consumer_group_info:
    bootstrap_servers: ["kafka1:9092"]
    groups: "{{ ['researcher', 'writer'] | laddr.kafka.agent_groups(max_lag=0) }}"
    wait_timeout: 600
"""

RETURN = r"""
_value:
  description: Entries of the groups option of laddr.kafka.kafka_consumer_group_info.
  type: list
  elements: dict
"""


def agent_groups(agents, max_lag=None):
    plan = agents if isinstance(agents, dict) else {agent: None for agent in agents}
    wanted = []
    for agent in sorted(plan):
        entry = {"group": f"laddr-{agent}-workers", "topics": [f"laddr.tasks.{agent}"]}
        if plan[agent] is not None:
            try:
                workers = int(plan[agent]["workers"])
            except (KeyError, TypeError, ValueError) as exc:
                raise AnsibleFilterError(f"agent_groups: the plan of agent {agent!r} has no whole number of workers") from exc
            entry.update(expect_members=workers, expect_all_partitions_assigned=workers > 0)
            if workers > 0:  # a group without members is Empty or Dead, whichever Kafka says
                entry["expect_state"] = "Stable"
        if max_lag is not None:
            entry["expect_max_lag"] = int(max_lag)
        wanted.append(entry)
    return wanted


class FilterModule:
    def filters(self):
        return {"agent_groups": agent_groups}
