"""laddr.kafka.kafka_acl through ansible-playbook against the real broker (Kafka's AclAuthorizer), with a real
client of a principal that is no super user. Its pure planning: tests/unit/plugins/modules/test_kafka_acl.py."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_tasks import run_tasks, task  # noqa: E402
from kafka_local import SASL_USER, SASL_USER_PASSWORD  # noqa: E402

PRINCIPAL = f"User:{SASL_USER}"


@pytest.fixture
def conn(kafka_broker):
    return {"bootstrap_servers": [kafka_broker.bootstrap]}


def acl_task(conn, check_mode=False, diff=False, **args):
    return task("kafka_acl", {**conn, **args}, check_mode=check_mode, diff=diff)


def worker_grants(tasks_topic, group, responses_topic):
    """What the collection means to give an agent's workers: read their tasks in their group, write answers."""
    return [
        {"principal": PRINCIPAL, "operation": "read", "resource_type": "topic", "resource_name": tasks_topic},
        {"principal": PRINCIPAL, "operation": "describe", "resource_type": "topic", "resource_name": tasks_topic},
        {"principal": PRINCIPAL, "operation": "read", "resource_type": "group", "resource_name": group},
        {"principal": PRINCIPAL, "operation": "write", "resource_type": "topic", "resource_name": responses_topic},
        {"principal": PRINCIPAL, "operation": "describe", "resource_type": "topic", "resource_name": responses_topic},
    ]


def produce_as_user(kafka_broker, topic):
    """Produces one message as the SASL user; None when delivered, else Kafka's error name."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "PLAIN", "sasl.username": SASL_USER, "sasl.password": SASL_USER_PASSWORD,
                         "message.timeout.ms": 15000, "allow.auto.create.topics": False})
    outcome = []
    producer.produce(topic, b"answer", on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(30)
    assert outcome, f"no delivery report for {topic} within 30 s"
    return None if outcome[0] is None else outcome[0].name()


pytestmark = pytest.mark.broker


def test_grants_are_kept_exactly_and_a_real_client_gets_only_them(conn, kafka_broker):
    from confluent_kafka.admin import AdminClient, NewTopic

    suffix = uuid.uuid4().hex[:8]
    tasks_topic, responses_topic = f"laddr.tasks.acl{suffix}", f"laddr.responses.acl{suffix}"
    group = f"laddr-acl{suffix}-workers"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    for future in admin.create_topics([NewTopic(tasks_topic, 1, 1), NewTopic(responses_topic, 1, 1)]).values():
        future.result(30)
    grants = worker_grants(tasks_topic, group, responses_topic)
    without_write = [g for g in grants if g["operation"] != "write"]
    try:
        first, again, preview = run_tasks(
            acl_task(conn, acls=grants, principals=[PRINCIPAL]),
            acl_task(conn, acls=grants, principals=[PRINCIPAL]),
            acl_task(conn, check_mode=True, diff=True, acls=without_write, principals=[PRINCIPAL]),
        ).results
        assert not first.get("failed"), first.get("msg")
        assert first["changed"] is True and len(first["created"]) == 5 and first["removed"] == []
        assert {(a["operation"], a["resource_type"], a["resource_name"]) for a in first["acls"]} == {
            ("read", "topic", tasks_topic), ("describe", "topic", tasks_topic), ("read", "group", group),
            ("write", "topic", responses_topic), ("describe", "topic", responses_topic)}
        assert again["changed"] is False and again["created"] == [] and again["removed"] == []

        # Check mode tells what would go, and nothing goes: the writer still answers.
        assert preview["changed"] is True and [a["operation"] for a in preview["removed"]] == ["write"]
        assert f"{PRINCIPAL} allow write on topic {responses_topic} (literal) from *" in preview["diff"]["before"]
        assert "allow write" not in preview["diff"]["after"]
        assert produce_as_user(kafka_broker, responses_topic) is None
        # No grant to write its own task topic: refused, though the same client may read it.
        assert produce_as_user(kafka_broker, tasks_topic) == "TOPIC_AUTHORIZATION_FAILED"

        # The grant taken out of the list goes, because the task owns the principal's ACLs.
        narrowed, = run_tasks(acl_task(conn, acls=without_write, principals=[PRINCIPAL])).results
        assert narrowed["changed"] is True and [a["operation"] for a in narrowed["removed"]] == ["write"]
        assert produce_as_user(kafka_broker, responses_topic) == "TOPIC_AUTHORIZATION_FAILED"
    finally:
        gone, = run_tasks(acl_task(conn, principals=[PRINCIPAL])).results
        admin.delete_topics([tasks_topic, responses_topic])
    assert not gone.get("failed"), gone.get("msg")
    assert gone["acls"] == []


def test_absent_removes_only_what_is_listed_and_bad_input_changes_nothing(conn):
    suffix = uuid.uuid4().hex[:8]
    principal = f"User:laddr-acl{suffix}"
    read = {"principal": principal, "operation": "read", "resource_type": "topic",
            "resource_name": f"laddr.tasks.acl{suffix}", "pattern_type": "prefixed"}
    describe = {"principal": principal, "operation": "describe", "resource_type": "cluster"}
    made, removed, removed_again, bad, left = run_tasks(
        acl_task(conn, acls=[read, describe]),
        acl_task(conn, acls=[read], state="absent"),
        acl_task(conn, acls=[read], state="absent"),
        acl_task(conn, acls=[dict(read, principal="laddr-without-type"), describe], principals=[principal]),
        acl_task(conn, principals=[principal], check_mode=True),
    ).results
    assert made["changed"] is True and len(made["created"]) == 2
    assert removed["changed"] is True and removed["removed"] == [dict(read, host="*", permission="allow")]
    assert removed_again["changed"] is False
    assert bad["failed"] is True and "No ACL changed: principal 'laddr-without-type': give the type and name" in bad["msg"]
    # The cluster grant is still there after the refused task; the check-mode run says it would go.
    assert [a["resource_type"] for a in left["removed"]] == ["cluster"]
    assert left["removed"][0]["resource_name"] == "kafka-cluster"
    cleaned, = run_tasks(acl_task(conn, principals=[principal])).results
    assert cleaned["changed"] is True and cleaned["acls"] == []
