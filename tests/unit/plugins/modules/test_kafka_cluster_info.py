"""kafka_cluster_info's pure functions."""

from __future__ import annotations

from ansible_collections.laddr.kafka.plugins.modules import kafka_cluster_info as mod


def test_partition_health_compares_isr_with_replicas_and_min_isr():
    topics = {"a": {"partitions": {0: {"leader": 1, "replicas": [1, 2, 3], "isr": [1, 3]},
                                   1: {"leader": -1, "replicas": [1, 2, 3], "isr": [1]}}},
              "b": {"partitions": {0: {"leader": 2, "replicas": [2, 3], "isr": [2, 3]}}}}
    health = mod.partition_health(topics, {"a": 2, "b": 1})
    assert health["partition_count"] == 3
    assert [(p["topic"], p["partition"]) for p in health["under_replicated_partitions"]] == [("a", 0), ("a", 1)]
    assert [(p["topic"], p["partition"]) for p in health["under_min_isr_partitions"]] == [("a", 1)]
    assert health["offline_partition_count"] == 1
    assert mod.min_isr_by_topic({"a": {"min.insync.replicas": {"value": "2"}}, "b": {}}) == {"a": 2}
