"""laddr.kafka.kafka_scram_user through ansible-playbook against the real broker: users created, their passwords
proven by real SCRAM-SHA-512 logins on the broker's SASL listener, changed and removed. Its pure planning:
tests/unit/plugins/modules/test_kafka_scram_user.py."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))

from ansible_tasks import run_tasks, task  # noqa: E402

pytestmark = pytest.mark.broker


@pytest.fixture
def conn(kafka_broker):
    """The admin connection on PLAINTEXT (the test broker's super user), logins on the SASL listener."""
    return {"bootstrap_servers": [kafka_broker.bootstrap], "login_bootstrap_servers": [kafka_broker.sasl_bootstrap],
            "login_security_protocol": "SASL_PLAINTEXT"}


def user_task(conn, check_mode=False, **args):
    return task("kafka_scram_user", {**conn, **args}, check_mode=check_mode)


def logs_in(kafka_broker, user, password):
    """A real SCRAM-SHA-512 login on the SASL listener: True when taken, False when the broker refuses it."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors = []
    admin = AdminClient({"bootstrap.servers": kafka_broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                         "error_cb": errors.append})
    for _ in range(10):
        try:
            admin.list_topics(timeout=1)
            return True
        except KafkaException:
            admin.poll(0.2)  # error_cb runs from poll
            if any(error.code() == KafkaError._AUTHENTICATION for error in errors):
                return False
    raise AssertionError(f"the login of {user} was neither taken nor refused in about 12 s: {errors}")


def test_users_are_created_proven_changed_and_removed(conn, kafka_broker):
    name = f"laddr-scram{uuid.uuid4().hex[:8]}"
    first_password, second_password = "first-" + uuid.uuid4().hex, "second-" + uuid.uuid4().hex
    created, again, preview = run_tasks(
        user_task(conn, users=[{"name": name, "password": first_password}]),
        user_task(conn, users=[{"name": name, "password": first_password}]),
        user_task(conn, check_mode=True, users=[{"name": name, "password": second_password}]),
    ).results
    assert not created.get("failed"), created.get("msg")
    assert created["changed"] is True and created["users"] == [
        {"name": name, "mechanism": "SCRAM-SHA-512", "action": "create", "changed": True}]
    assert again["changed"] is False and again["users"][0]["action"] == "none"
    # Check mode finds the other password refused and would set it; nothing is set.
    assert preview["changed"] is True and preview["users"][0]["action"] == "update"
    assert logs_in(kafka_broker, name, first_password) is True
    assert logs_in(kafka_broker, name, second_password) is False
    assert first_password not in str(created) + str(preview)

    changed, iterations, removed, removed_again = run_tasks(
        user_task(conn, users=[{"name": name, "password": second_password}]),
        user_task(conn, users=[{"name": name, "password": second_password, "iterations": 4096}]),
        user_task(conn, users=[{"name": name, "state": "absent"}]),
        user_task(conn, users=[{"name": name, "state": "absent"}]),
    ).results
    assert changed["changed"] is True and changed["users"][0]["action"] == "update"
    assert iterations["changed"] is True and iterations["users"][0]["action"] == "update"
    assert removed["changed"] is True and removed["users"][0]["action"] == "delete"
    assert removed_again["changed"] is False
    assert logs_in(kafka_broker, name, second_password) is False


def test_bad_input_changes_nothing_and_a_connection_without_sasl_needs_the_login_listener(conn, kafka_broker):
    name = f"laddr-scram{uuid.uuid4().hex[:8]}"
    bad, no_login = run_tasks(
        user_task(conn, users=[{"name": name, "password": "a-password", "iterations": 100},
                               {"name": "has space", "password": "x"}]),
        task("kafka_scram_user", {"bootstrap_servers": [kafka_broker.bootstrap],
                                  "users": [{"name": name, "password": "a-password"}]}),
    ).results
    assert bad["failed"] is True
    assert f"user '{name}': iterations is 100; Kafka takes 4096 to 16384" in bad["msg"]
    assert "user 'has space': use letters, digits" in bad["msg"]
    assert no_login["failed"] is True and "login_security_protocol is not set" in no_login["msg"]
    assert logs_in(kafka_broker, name, "a-password") is False
