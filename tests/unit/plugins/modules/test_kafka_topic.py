"""kafka_topic's pure planning: what it would do to a topic, from what is asked and what the cluster has."""

from __future__ import annotations

from ansible_collections.laddr.kafka.plugins.modules import kafka_topic as mod


def present(name="t", partitions=3, rf=1, configs=None):
    return {"name": name, "state": "present", "partitions": partitions, "replication_factor": rf,
            "configs": dict(configs or {})}


def wanted(name="t", state="present", partitions=None, rf=None, configs=None):
    return {"name": name, "state": state, "partitions": partitions, "replication_factor": rf,
            "configs": dict(configs or {})}


def test_plan_unchanged_topic_has_no_actions():
    plan = mod.plan_topic(wanted(partitions=3, rf=1, configs={"a": "1"}), present(configs={"a": "1", "b": "2"}))
    assert plan["actions"] == [] and plan["errors"] == []
    assert plan["after"] == present(configs={"a": "1", "b": "2"})


def test_plan_sets_and_removes_only_the_given_keys():
    plan = mod.plan_topic(wanted(configs={"a": "9", "b": None, "c": None}), present(configs={"a": "1", "b": "2", "d": "4"}))
    assert plan["configs"] == {"a": "9", "b": None}
    assert plan["actions"] == ["set_configs", "remove_configs"]
    assert plan["after"]["configs"] == {"a": "9", "d": "4"}


def test_plan_refuses_decrease_and_replication_change():
    plan = mod.plan_topic(wanted(name="x", partitions=2, rf=3), present(name="x", partitions=5, rf=1))
    assert plan["actions"] == []
    assert plan["errors"][0] == ("topic 'x' has 5 partitions and 2 were requested: Kafka cannot remove partitions")
    assert "replication factor 1 and 3 was requested" in plan["errors"][1]


def test_plan_create_uses_broker_defaults_for_the_prediction():
    absent = mod.actual_topic("t", None, None)
    plan = mod.plan_topic(wanted(configs={"a": "1", "b": None}), absent, {"partitions": 6, "replication_factor": 3})
    assert plan["create"] == {"name": "t", "partitions": -1, "replication_factor": -1, "configs": {"a": "1"}}
    assert plan["after"] == present(partitions=6, rf=3, configs={"a": "1"})


def test_plan_absent():
    assert mod.plan_topic(wanted(state="absent"), present())["actions"] == ["delete"]
    assert mod.plan_topic(wanted(state="absent"), mod.actual_topic("t", None, None))["actions"] == []


def test_desired_topics_merge_top_level_defaults():
    params = {"name": None, "state": "present", "partitions": 6, "replication_factor": 3,
              "configs": {"retention.ms": 1000, "compression.type": "lz4"},
              "topics": [{"name": "a"}, {"name": "b", "partitions": 12, "configs": {"retention.ms": 5, "x": True}},
                         {"name": "c", "state": "absent"}]}
    a, b, c = mod.desired_topics(params)
    assert a == {"name": "a", "state": "present", "partitions": 6, "replication_factor": 3,
                 "configs": {"retention.ms": "1000", "compression.type": "lz4"}}
    assert b["partitions"] == 12 and b["configs"] == {"retention.ms": "5", "compression.type": "lz4", "x": "true"}
    assert c["state"] == "absent"
