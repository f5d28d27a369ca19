"""An acks=all producer that keeps sending numbered messages while something is done to the brokers, the
watcher that records how many brokers are out at each moment, and the read back of what was acknowledged.

tests/test_kafka_cluster.py asserts with it that a rolling restart loses nothing and keeps two brokers up;
scripts/bench counts with it the delivery errors a producer sees during a change of one broker setting.
Failures are not judged here: callers read acked, errors and missing and decide.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def make_topic(servers: str, topic: str, partitions: int = 3) -> None:
    """A topic replicated on 3 brokers that refuses a write 2 of them have not got (min.insync.replicas 2)."""
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=3, config={"min.insync.replicas": "2"})]
    )[topic].result(timeout=30)


class Load:
    """The producer and the watcher, as a context manager. A broker is out when its client port refuses a TCP
    connection, or when a metadata read that succeeds does not list it. A metadata read that fails, or comes
    from a broker that does not know the cluster yet, says nothing by itself and is counted apart.

    acked: the numbers the brokers acknowledged; errors: the delivery errors reported to the producer (each a
    message given up); missing: (monotonic time, brokers out) samples every 0.2 s; produced: messages handed
    to the producer. PRODUCER_CONFIG adds to or overrides the producer's settings."""

    def __init__(self, servers: str, topic: str, producer_config: dict | None = None):
        self.servers, self.topic = servers, topic
        self.config = {"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True,
                       "delivery.timeout.ms": 120000, **(producer_config or {})}
        self.acked: list[int] = []
        self.errors: list[str] = []
        self.missing: list[tuple[float, int]] = []
        self.failed_reads = self.produced = 0
        self.delivery_timeout_s = self.config["delivery.timeout.ms"] / 1000
        self.stop = threading.Event()
        admin = AdminClient({"bootstrap.servers": servers})
        self.brokers = {b.id: (b.host, b.port) for b in admin.list_topics(timeout=15).brokers.values()}
        self.threads = [threading.Thread(target=self.produce), threading.Thread(target=self.watch)]

    def produce(self) -> None:
        producer = Producer(self.config)

        def delivered(err, msg):  # type: ignore[no-untyped-def]
            (self.errors if err else self.acked).append(str(err) if err else int(msg.value()))

        while not self.stop.is_set():
            try:
                producer.produce(self.topic, value=str(self.produced), on_delivery=delivered)
                self.produced += 1
            except BufferError:  # the producer's queue is full while a broker is away: wait for room
                pass
            producer.poll(0.01)
        # Every message handed over is acknowledged or given up within the delivery timeout.
        producer.flush(self.delivery_timeout_s)

    @staticmethod
    def refuses(address: tuple[str, int]) -> bool:
        try:
            with socket.create_connection(address, timeout=1):
                return False
        except OSError:
            return True

    def watch(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.servers})
        while not self.stop.is_set():
            out = {b for b, address in self.brokers.items() if self.refuses(address)}
            try:
                metadata = admin.list_topics(timeout=5)
            except KafkaException:
                metadata = None
            # A broker that has just started answers before the controller has told it about the
            # cluster, listing no brokers, not even itself: such an answer is not evidence.
            if metadata is not None and metadata.orig_broker_id in metadata.brokers:
                out |= set(self.brokers) - set(metadata.brokers)
            else:
                self.failed_reads += 1
            self.missing.append((time.monotonic(), len(out)))
            time.sleep(0.2)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.delivery_timeout_s + 60)

    def most_out(self) -> int:
        return max((missing for _, missing in self.missing), default=0)


def read_all(servers: str, topic: str, expected: int, partitions: int = 3, timeout: float = 120) -> list[int]:
    """The numbers in TOPIC, read from the start of every partition until EXPECTED distinct ones are seen."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"drill-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    # Explicit offsets, so that reading never waits on the group coordinator.
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while len(set(seen)) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen.append(int(msg.value()))
    consumer.close()
    return seen
