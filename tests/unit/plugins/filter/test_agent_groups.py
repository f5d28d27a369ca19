"""Filter agent_groups: the groups option of kafka_consumer_group_info for Laddr's agents, as verify, scale and the
Kafka backlog pass it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.laddr.kafka.plugins.filter.agent_groups import agent_groups


def test_a_plan_expects_one_member_per_worker_and_stable_groups_only_with_workers():
    groups = agent_groups({"writer": {"workers": 0, "partitions": 3}, "analyzer": {"workers": "2", "partitions": 3}})
    assert groups == [
        {"group": "laddr-analyzer-workers", "topics": ["laddr.tasks.analyzer"], "expect_members": 2,
         "expect_all_partitions_assigned": True, "expect_state": "Stable"},
        # No state expected of a group without workers: Kafka calls it Empty or Dead, and the module's choices
        # refuse a null state.
        {"group": "laddr-writer-workers", "topics": ["laddr.tasks.writer"], "expect_members": 0,
         "expect_all_partitions_assigned": False},
    ]


def test_agent_names_with_a_lag_limit_expect_only_the_lag():
    assert agent_groups(["writer", "analyzer"], max_lag=0) == [
        {"group": "laddr-analyzer-workers", "topics": ["laddr.tasks.analyzer"], "expect_max_lag": 0},
        {"group": "laddr-writer-workers", "topics": ["laddr.tasks.writer"], "expect_max_lag": 0},
    ]
    assert agent_groups(["writer"]) == [{"group": "laddr-writer-workers", "topics": ["laddr.tasks.writer"]}]


def test_a_plan_without_a_worker_count_is_refused_by_agent_name():
    with pytest.raises(AnsibleFilterError, match="agent 'writer' has no whole number of workers"):
        agent_groups({"writer": {"partitions": 3}})
