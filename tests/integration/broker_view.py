"""What the broker itself says, read from the test process, to check the modules' claims against."""

from __future__ import annotations

import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def partition_count(bootstrap: str, name: str) -> int | None:
    """Partitions of the topic, or None when the broker does not list it."""
    topic = admin(bootstrap).list_topics(timeout=10).topics.get(name)
    return None if topic is None or topic.error is not None else len(topic.partitions)


def topic_overrides(bootstrap: str, name: str) -> dict[str, str]:
    """The topic-level configs (not inherited from the broker)."""
    resource = ConfigResource(ResourceType.TOPIC, name)
    client = admin(bootstrap)  # must outlive the future, or the handle is destroyed under it
    entries = client.describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
    return {k: e.value for k, e in entries.items()
            if ConfigSource(e.source) == ConfigSource.DYNAMIC_TOPIC_CONFIG}


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str] | None = None) -> None:
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(name, partitions, 1, config=configs or {})],
                                             operation_timeout=15, request_timeout=15)
    futures[name].result(timeout=20)


def wait_absent(bootstrap: str, name: str, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if partition_count(bootstrap, name) is None:
            return True
        time.sleep(0.2)
    return False


def produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    """Writes counts[p] messages to each partition p and waits until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, value=f"m{i}".encode(), partition=partition)
    left = producer.flush(20)
    assert left == 0, f"{left} messages not acknowledged"
