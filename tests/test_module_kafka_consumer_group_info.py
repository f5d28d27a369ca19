"""laddr.kafka.kafka_consumer_group_info through ansible-playbook, with real consumers in this process."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_tasks import run_module, run_tasks, task  # noqa: E402
from broker_view import create_topic, produce  # noqa: E402

from ansible_collections.laddr.kafka.plugins.modules import kafka_consumer_group_info as mod  # noqa: E402

pytestmark = pytest.mark.broker


class Worker:
    """A consumer in the group, as a laddr worker would be; polled only from one thread at a time."""

    def __init__(self, bootstrap: str, group: str, client_id: str, topic: str):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        })
        self.consumer.subscribe([topic])
        self.received = 0

    def poll(self, seconds: float = 0.2) -> None:
        message = self.consumer.poll(seconds)
        if message is not None and message.error() is None:
            self.received += 1

    def wait_assigned(self, timeout: float = 30) -> list[TopicPartition]:
        deadline = time.monotonic() + timeout
        while not self.consumer.assignment():
            assert time.monotonic() < deadline, "consumer got no assignment"
            self.poll()
        return self.consumer.assignment()

    def consume(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.received < count:
            assert time.monotonic() < deadline, f"received {self.received} of {count}"
            self.poll()

    def commit(self, offsets: dict[int, int] | None = None, topic: str | None = None) -> None:
        if offsets is None:
            self.consumer.commit(asynchronous=False)
        else:
            self.consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                                 asynchronous=False)

    def close(self) -> None:
        self.consumer.close()


@contextlib.contextmanager
def polling(*workers: Worker):
    """Keeps the workers polling (so they take part in rebalances) while the block runs."""
    stop = threading.Event()

    def loop(worker: Worker) -> None:
        while not stop.is_set():
            worker.poll(0.1)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


@pytest.fixture
def conn(kafka_broker):
    return {"bootstrap_servers": [kafka_broker.bootstrap]}


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return f"laddr.tasks.test{suffix}", f"laddr-test{suffix}-workers"


def group_task(conn, **args):
    return task("kafka_consumer_group_info", {**conn, **args})


def lag_view(result):
    return [(r["partition"], r["committed"], r["end_offset"], r["lag"]) for r in result["partitions"]]


def test_group_lag_before_and_after_consuming(conn, names, kafka_broker):
    topic, group = names
    create_topic(kafka_broker.bootstrap, topic, 3)
    produce(kafka_broker.bootstrap, topic, {0: 10, 1: 5, 2: 7})

    missing, refused = run_tasks(
        group_task(conn, group=group, topics=[topic], allow_missing=True),
        group_task(conn, group=group, topics=[topic]),
    ).results
    assert missing["exists"] is False and missing["state"] == "Dead" and missing["member_count"] == 0
    assert lag_view(missing) == [(0, None, 10, None), (1, None, 5, None), (2, None, 7, None)]
    assert missing["total_lag"] == 0
    assert missing["partitions_without_commit"] == 3
    assert missing["total_lag_including_uncommitted"] == 22
    assert refused["failed"] is True and "does not exist" in refused["msg"] and group in refused["msg"]

    worker = Worker(kafka_broker.bootstrap, group, "laddr-worker-test-1", topic)
    try:
        assert len(worker.wait_assigned()) == 3
        # Partition 2 is never committed: it must show as unknown, not as lag 0.
        worker.commit({0: 4, 1: 5}, topic)
        read, waited, lag_wait = run_tasks(
            group_task(conn, group=group),
            group_task(conn, group=group, expect_members=1, expect_state="Stable",
                       expect_all_partitions_assigned=True, wait_timeout=20),
            group_task(conn, group=group, expect_max_lag=0, wait_timeout=2),
        ).results

        assert read["exists"] is True and read["state"] == "Stable"
        assert read["topics"] == [topic]
        assert read["member_count"] == 1
        member = read["members"][0]
        assert member["client_id"] == "laddr-worker-test-1"
        assert member["host"] == "127.0.0.1"
        assert member["assignment"] == [{"topic": topic, "partition": p} for p in range(3)]
        assert lag_view(read) == [(0, 4, 10, 6), (1, 5, 5, 0), (2, None, 7, None)]
        assert all(r["member_id"] == member["member_id"] for r in read["partitions"])
        assert read["total_lag"] == 6
        assert read["partitions_without_commit"] == 1
        assert read["total_lag_including_uncommitted"] == 13
        assert read["all_partitions_assigned"] is True and read["unassigned_partitions"] == []

        assert not waited.get("failed"), waited.get("msg")
        assert lag_wait["failed"] is True
        assert "lag 13 counting 1 partitions without commit" in lag_wait["msg"]
        assert "Observed: state Stable, 1 members, total lag 6, 1 partitions without commit" in lag_wait["msg"]
        assert lag_wait["waited"] >= 2

        worker.consume(22)
        worker.commit()
        caught_up = run_module("kafka_consumer_group_info",
                               {**conn, "group": group, "expect_max_lag": 0, "wait_timeout": 10})
        assert not caught_up.get("failed"), caught_up.get("msg")
        assert lag_view(caught_up) == [(0, 10, 10, 0), (1, 5, 5, 0), (2, 7, 7, 0)]
        assert caught_up["total_lag"] == 0 and caught_up["partitions_without_commit"] == 0
    finally:
        worker.close()


def test_wait_for_a_joining_member_and_a_wait_that_times_out(conn, names, kafka_broker):
    topic, group = names
    create_topic(kafka_broker.bootstrap, topic, 2)
    first = Worker(kafka_broker.bootstrap, group, "laddr-worker-a", topic)
    second = None
    try:
        first.wait_assigned()
        second = Worker(kafka_broker.bootstrap, group, "laddr-worker-b", topic)
        with polling(first, second):
            joined, too_many = run_tasks(
                group_task(conn, group=group, topics=[topic], expect_members=2, expect_state="Stable",
                           expect_all_partitions_assigned=True, wait_timeout=40),
                group_task(conn, group=group, expect_members=3, wait_timeout=2),
            ).results
        assert not joined.get("failed"), joined.get("msg")
        assert sorted(m["client_id"] for m in joined["members"]) == ["laddr-worker-a", "laddr-worker-b"]
        assigned = sorted(p["partition"] for m in joined["members"] for p in m["assignment"])
        assert assigned == [0, 1]
        assert {r["client_id"] for r in joined["partitions"]} == {"laddr-worker-a", "laddr-worker-b"}

        assert too_many["failed"] is True
        assert "not as expected after" in too_many["msg"]
        assert "2 members, expected 3" in too_many["msg"]
        assert "Observed: state Stable, 2 members" in too_many["msg"]
        assert too_many["member_count"] == 2
    finally:
        first.close()
        if second is not None:
            second.close()


def test_unknown_topic_and_unreachable_cluster_fail_clearly(conn, names):
    topic, group = names
    started = time.monotonic()
    unknown, unreachable = run_tasks(
        group_task(conn, group=group, topics=["no.such.topic"], allow_missing=True),
        group_task({"bootstrap_servers": ["127.0.0.1:1"]}, group=group, request_timeout=2),
    ).results
    assert unknown["failed"] is True and "topic 'no.such.topic' does not exist" in unknown["msg"]
    assert unreachable["failed"] is True
    assert "Kafka at 127.0.0.1:1 is not reachable" in unreachable["msg"]
    assert "module_stderr" not in unreachable
    # Refused at once rather than after the default wait of 60 s; 11.9 s on a quiet machine, where the two tasks'
    # ansible-playbook takes most of it, and over 15 s once beside a test suite on the 2 cores.
    assert time.monotonic() - started < 40


def test_several_groups_in_one_run(conn, kafka_broker):
    """groups: each group read with its own topics and expectations, one wait for all, the failure names the group
    that misses its expectation and only that one."""
    suffix = uuid.uuid4().hex[:8]
    busy_topic, busy_group = f"laddr.tasks.busy{suffix}", f"laddr-busy{suffix}-workers"
    idle_topic, idle_group = f"laddr.tasks.idle{suffix}", f"laddr-idle{suffix}-workers"
    create_topic(kafka_broker.bootstrap, busy_topic, 2)
    create_topic(kafka_broker.bootstrap, idle_topic, 1)
    produce(kafka_broker.bootstrap, idle_topic, {0: 3})
    worker = Worker(kafka_broker.bootstrap, busy_group, "laddr-worker-busy", busy_topic)
    try:
        worker.wait_assigned()
        with polling(worker):
            both, short, one_unreadable = run_tasks(
                group_task(conn, allow_missing=True, wait_timeout=30, groups=[
                    {"group": busy_group, "topics": [busy_topic], "expect_members": 1, "expect_state": "Stable",
                     "expect_all_partitions_assigned": True},
                    {"group": idle_group, "topics": [idle_topic], "expect_members": 0}]),
                group_task(conn, allow_missing=True, wait_timeout=2, groups=[
                    {"group": busy_group, "topics": [busy_topic], "expect_members": 1},
                    {"group": idle_group, "topics": [idle_topic], "expect_max_lag": 0}]),
                group_task(conn, allow_missing=True, wait_timeout=2, groups=[
                    {"group": f"laddr-gone{suffix}-workers", "topics": ["no.such.topic"], "expect_members": 1},
                    {"group": idle_group, "topics": [idle_topic], "expect_max_lag": 0}]),
            ).results
        assert not both.get("failed"), both.get("msg")
        assert [g["group"] for g in both["groups"]] == [busy_group, idle_group]
        busy, idle = both["groups"]
        assert busy["member_count"] == 1 and busy["state"] == "Stable" and busy["all_partitions_assigned"]
        assert busy["problems"] == [] and idle["problems"] == []
        assert idle["exists"] is False and idle["total_lag_including_uncommitted"] == 3

        assert short["failed"] is True
        assert f"'{idle_group}': lag 3 counting 1 partitions without commit" in short["msg"], short["msg"]
        assert busy_group not in short["msg"], short["msg"]
        assert [g["problems"] == [] for g in short["groups"]] == [True, False]

        # A group that cannot be read (here its topic is missing; in a CI run, a coordinator on the move) is named
        # with its error, and the groups after it are still read and named.
        assert one_unreadable["failed"] is True
        assert f"'laddr-gone{suffix}-workers': topic 'no.such.topic' does not exist" in one_unreadable["msg"]
        assert f"'{idle_group}': lag 3 counting" in one_unreadable["msg"], one_unreadable["msg"]
    finally:
        worker.close()
