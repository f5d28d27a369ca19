"""kafka_consumer_group_info's pure functions: partition rows, their summary, and what an expectation misses."""

from __future__ import annotations

from ansible_collections.laddr.kafka.plugins.modules import kafka_consumer_group_info as mod


def test_partition_rows_report_missing_commits_as_unknown():
    rows = mod.partition_rows([("t", 1), ("t", 0)], {("t", 0): 3}, {("t", 0): 0, ("t", 1): 2},
                              {("t", 0): 10, ("t", 1): 8}, {("t", 0): {"member_id": "m", "client_id": "c"}})
    assert [(r["partition"], r["committed"], r["lag"], r["member_id"]) for r in rows] == [
        (0, 3, 7, "m"), (1, None, None, None)]
    summary = mod.summarize(rows)
    assert summary["total_lag"] == 7
    assert summary["partitions_without_commit"] == 1
    assert summary["total_lag_including_uncommitted"] == 7 + 6
    assert summary["all_partitions_assigned"] is False
    assert summary["unassigned_partitions"] == [{"topic": "t", "partition": 1}]


def test_unmet_expectations_say_what_was_observed():
    observed = {"exists": True, "member_count": 1, "state": "PreparingRebalance",
                "total_lag_including_uncommitted": 5, "partitions_without_commit": 0,
                "all_partitions_assigned": True, "partitions": [{}], "unassigned_partitions": []}
    assert mod.unmet(observed, {"members": 2, "state": "Stable", "max_lag": 0}, False) == [
        "1 members, expected 2", "state PreparingRebalance, expected Stable",
        "lag 5 counting 0 partitions without commit from their log start, expected at most 0"]
    assert mod.unmet(dict(observed, exists=False), {}, False) == [
        "the group does not exist (no members, no committed offsets)"]
    assert mod.unmet(dict(observed, exists=False), {}, True) == []
