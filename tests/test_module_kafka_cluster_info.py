"""laddr.kafka.kafka_cluster_info through ansible-playbook against the single test broker."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_tasks import run_tasks, task  # noqa: E402
from broker_view import admin, create_topic, wait_absent  # noqa: E402

from ansible_collections.laddr.kafka.plugins.modules import kafka_cluster_info as mod  # noqa: E402

pytestmark = pytest.mark.broker


@pytest.fixture
def conn(kafka_broker):
    return {"bootstrap_servers": [kafka_broker.bootstrap]}


def cluster_task(conn, **args):
    return task("kafka_cluster_info", {**conn, **args}, check_mode=True)


def test_single_broker_is_healthy_and_waits_report_what_they_saw(conn, kafka_broker):
    host, port = kafka_broker.bootstrap.rsplit(":", 1)
    read, gate, too_many = run_tasks(
        cluster_task(conn),
        cluster_task(conn, expect_brokers=1, expect_no_under_replicated=True, expect_no_under_min_isr=True,
                     wait_timeout=10),
        cluster_task(conn, expect_brokers=3, wait_timeout=2),
    ).results

    assert read["changed"] is False
    assert read["brokers"] == [{"id": 0, "host": host, "port": int(port)}]
    assert read["broker_count"] == 1 and read["controller_id"] == 0
    assert read["cluster_id"]
    assert read["topic_count"] == len(admin(kafka_broker.bootstrap).list_topics(timeout=10).topics)
    assert read["under_replicated_partition_count"] == 0
    assert read["under_min_isr_partition_count"] == 0
    assert read["offline_partition_count"] == 0

    assert not gate.get("failed"), gate.get("msg")
    assert too_many["failed"] is True
    assert "1 brokers (0), expected 3" in too_many["msg"]
    assert "Observed: 1 brokers, controller 0, 0 under-replicated" in too_many["msg"]
    assert too_many["waited"] >= 2


def test_topic_with_min_isr_above_its_replicas_is_under_min_isr(conn, kafka_broker):
    # One broker holds one replica; a topic asking for two in sync refuses acks=all writes.
    name = f"test.minisr.{uuid.uuid4().hex[:8]}"
    create_topic(kafka_broker.bootstrap, name, 2, {"min.insync.replicas": "2"})
    try:
        read, gate = run_tasks(
            cluster_task(conn),
            cluster_task(conn, expect_no_under_min_isr=True, wait_timeout=1),
        ).results
    finally:
        client = admin(kafka_broker.bootstrap)
        client.delete_topics([name], operation_timeout=15)[name].result(timeout=20)
        wait_absent(kafka_broker.bootstrap, name)
    assert read["under_min_isr_partition_count"] == 2
    assert read["under_min_isr_partitions"][0] == {
        "topic": name, "partition": 0, "leader": 0, "replicas": [0], "isr": [0], "min_insync_replicas": 2}
    assert read["under_replicated_partition_count"] == 0
    assert gate["failed"] is True
    assert f"2 partitions under min ISR: {name}[0] isr [0]" in gate["msg"]


def test_unreachable_cluster_fails_clearly_and_a_wait_retries_until_its_timeout():
    down = {"bootstrap_servers": ["127.0.0.1:1"]}
    started = time.monotonic()
    read = run_tasks(cluster_task(down)).results[0]
    read_seconds = time.monotonic() - started
    gate = run_tasks(cluster_task(down, expect_brokers=1, wait_timeout=6, request_timeout=2)).results[0]

    assert read["failed"] is True
    assert "Kafka at 127.0.0.1:1 is not reachable" in read["msg"] and "Connection refused" in read["msg"]
    assert "module_stderr" not in read
    assert read_seconds < 15, read_seconds
    assert gate["failed"] is True
    assert gate["msg"].startswith("Kafka cluster not as expected after ")
    assert "Kafka at 127.0.0.1:1 is not reachable" in gate["msg"]
    assert gate["waited"] >= 6


def test_module_defaults_of_the_kafka_action_group_give_every_kafka_module_its_connection(conn):
    defaults = {"module_defaults": {"group/laddr.kafka.kafka": conn}}
    info, group, without = run_tasks(
        task("kafka_cluster_info", {}, check_mode=True, **defaults),
        task("kafka_topic", {"name": f"test.defaults.{uuid.uuid4().hex[:6]}", "partitions": 1, "replication_factor": 1},
             check_mode=True, **defaults),
        task("kafka_cluster_info", {}, check_mode=True),
    ).results
    assert not info.get("failed"), info.get("msg")
    assert info["broker_count"] == 1
    assert not group.get("failed"), group.get("msg")
    assert group["changed"] is True  # check mode: the broker validated the topic it would create
    # Without the group's defaults the module goes to its own default, where no broker listens.
    assert conn["bootstrap_servers"] != ["127.0.0.1:9092"]
    assert without["failed"] is True and "Kafka at 127.0.0.1:9092 is not reachable" in without["msg"]
