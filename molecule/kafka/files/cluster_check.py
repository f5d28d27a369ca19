"""Checks a Kafka cluster from outside, as a client would: the brokers in the metadata,
the replication settings each broker runs with, and a produce/consume round trip through a
topic replicated to every broker. Prints one JSON object."""
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

bootstrap = sys.argv[1]
messages = int(sys.argv[2]) if len(sys.argv) > 2 else 200
admin = AdminClient({"bootstrap.servers": bootstrap})
metadata = admin.list_topics(timeout=15)
brokers = sorted(metadata.brokers)

settings = {}
# The admin API takes one broker resource per call.
for broker in brokers:
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    settings[resource.name] = {key.replace(".", "_"): configs[key].value for key in
                               ("default.replication.factor", "min.insync.replicas", "auto.create.topics.enable",
                                "inter.broker.listener.name", "advertised.listeners")}

topic = f"verify-{uuid.uuid4().hex[:8]}"
admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=len(brokers))])[topic].result(timeout=30)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    if partitions and all(len(p.isrs) == len(brokers) for p in partitions.values()):
        break
    time.sleep(0.5)
isr_sizes = sorted(len(p.isrs) for p in partitions.values())

acked = []
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
for number in range(messages):
    producer.produce(topic, key=str(number % 3), value=str(number),
                     on_delivery=lambda err, msg: None if err else acked.append(int(msg.value())))
producer.flush(30)

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
# Explicit offsets: no committed offsets to fetch, so reading does not wait for the group
# coordinator, whose offsets topic a fresh cluster creates on first use.
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
received = []
deadline = time.monotonic() + 60
while len(received) < len(acked) and time.monotonic() < deadline:
    msg = consumer.poll(0.5)
    if msg is not None and not msg.error():
        received.append(int(msg.value()))
consumer.close()
admin.delete_topics([topic])[topic].result(timeout=30)

print(json.dumps({"brokers": brokers, "settings": settings, "isr_sizes": isr_sizes,
                  "acked": len(acked), "received": len(received),
                  "all_received": sorted(received) == sorted(acked) == list(range(messages))}))
