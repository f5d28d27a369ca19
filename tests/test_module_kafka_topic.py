"""laddr.kafka.kafka_topic through ansible-playbook against the real broker, and its pure planning functions."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_tasks import run_module, run_tasks, task  # noqa: E402
from broker_view import partition_count, topic_overrides, wait_absent  # noqa: E402
from kafka_local import SASL_PASSWORD, SASL_USERNAME  # noqa: E402

from ansible_collections.laddr.kafka.plugins.modules import kafka_topic as mod  # noqa: E402

pytestmark = pytest.mark.broker


def unique(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def conn(kafka_broker):
    return {"bootstrap_servers": [kafka_broker.bootstrap]}


def topic_task(conn, check_mode=False, diff=False, **args):
    return task("kafka_topic", {**conn, **args}, check_mode=check_mode, diff=diff)


# --------------------------------------------------------------------------
# Against the broker
# --------------------------------------------------------------------------


def test_create_then_second_run_is_unchanged(conn, kafka_broker):
    name = unique("create")
    args = dict(name=name, partitions=3, replication_factor=1,
                configs={"retention.ms": 86400000, "cleanup.policy": "delete"})
    first, second = run_tasks(topic_task(conn, **args), topic_task(conn, **args)).results

    assert not first.get("failed"), first
    assert first["changed"] is True
    assert first["topic"] == {"name": name, "state": "present", "partitions": 3, "replication_factor": 1,
                              "configs": {"retention.ms": "86400000", "cleanup.policy": "delete"},
                              "changed": True, "actions": ["create"]}
    assert second["changed"] is False, second
    assert second["topic"]["actions"] == []
    assert second["topic"]["configs"] == {"retention.ms": "86400000", "cleanup.policy": "delete"}
    assert partition_count(kafka_broker.bootstrap, name) == 3
    assert topic_overrides(kafka_broker.bootstrap, name) == {"retention.ms": "86400000", "cleanup.policy": "delete"}


def test_partitions_grow_and_a_decrease_is_refused(conn, kafka_broker):
    name = unique("grow")
    created, grown, shrunk = run_tasks(
        topic_task(conn, name=name, partitions=2),
        topic_task(conn, name=name, partitions=4),
        topic_task(conn, name=name, partitions=3),
    ).results

    assert created["changed"] and created["topic"]["partitions"] == 2
    assert grown["changed"] is True
    assert grown["topic"]["actions"] == ["add_partitions"]
    assert grown["topic"]["partitions"] == 4
    assert shrunk["failed"] is True
    assert name in shrunk["msg"] and "4 partitions" in shrunk["msg"] and "3 were requested" in shrunk["msg"]
    assert "module_stderr" not in shrunk and "Traceback" not in shrunk.get("exception", "")
    assert partition_count(kafka_broker.bootstrap, name) == 4


def test_replication_factor_mismatch_is_refused(conn, kafka_broker):
    name = unique("rf")
    created, mismatch = run_tasks(
        topic_task(conn, name=name, partitions=1, replication_factor=1),
        topic_task(conn, name=name, replication_factor=3),
    ).results
    assert created["changed"]
    assert mismatch["failed"] is True
    assert name in mismatch["msg"]
    assert "replication factor 1 and 3 was requested" in mismatch["msg"]
    assert mismatch["changed"] is False


def test_configs_touch_only_the_keys_given(conn, kafka_broker):
    name = unique("configs")
    created, altered, again, removed = run_tasks(
        topic_task(conn, name=name, partitions=1, configs={"retention.ms": 3600000}),
        topic_task(conn, name=name, configs={"segment.bytes": 10485760, "cleanup.policy": "compact"}),
        topic_task(conn, name=name, configs={"segment.bytes": "10485760"}),
        topic_task(conn, name=name, configs={"cleanup.policy": None}),
    ).results

    assert created["changed"]
    assert altered["changed"] is True
    assert altered["topic"]["actions"] == ["set_configs"]
    assert altered["topic"]["configs"] == {"retention.ms": "3600000", "segment.bytes": "10485760",
                                           "cleanup.policy": "compact"}
    assert again["changed"] is False
    assert removed["changed"] is True and removed["topic"]["actions"] == ["remove_configs"]
    assert topic_overrides(kafka_broker.bootstrap, name) == {"retention.ms": "3600000", "segment.bytes": "10485760"}


def test_check_mode_changes_nothing_and_diffs_exactly(conn, kafka_broker):
    name = unique("check")
    new_name = unique("checknew")
    setup = run_module("kafka_topic", {**conn, "name": name, "partitions": 2, "configs": {"retention.ms": 1000}})
    assert setup["changed"]

    grow, create, refused = run_tasks(
        topic_task(conn, name=name, partitions=5, configs={"retention.ms": 2000, "segment.ms": 600000},
                   check_mode=True, diff=True),
        topic_task(conn, name=new_name, partitions=2, replication_factor=1, configs={"retention.ms": 5000},
                   check_mode=True, diff=True),
        # One broker cannot hold three replicas: the brokers' validation fails this in check mode too.
        topic_task(conn, name=unique("checkrf"), partitions=1, replication_factor=3, check_mode=True),
    ).results

    assert grow["changed"] is True, grow
    assert grow["diff"] == {
        "before": {"name": name, "state": "present", "partitions": 2, "replication_factor": 1,
                   "configs": {"retention.ms": "1000"}},
        "after": {"name": name, "state": "present", "partitions": 5, "replication_factor": 1,
                  "configs": {"retention.ms": "2000", "segment.ms": "600000"}},
    }
    assert grow["topic"]["actions"] == ["add_partitions", "set_configs"]
    assert partition_count(kafka_broker.bootstrap, name) == 2
    assert topic_overrides(kafka_broker.bootstrap, name) == {"retention.ms": "1000"}

    assert create["changed"] is True
    assert create["diff"]["before"] == {"name": new_name, "state": "absent", "partitions": None,
                                        "replication_factor": None, "configs": None}
    assert create["diff"]["after"] == {"name": new_name, "state": "present", "partitions": 2,
                                       "replication_factor": 1, "configs": {"retention.ms": "5000"}}
    assert partition_count(kafka_broker.bootstrap, new_name) is None

    assert refused["failed"] is True
    assert "INVALID_REPLICATION_FACTOR" in refused["msg"] and "check mode" in refused["msg"]


def test_absent_deletes_and_absent_of_a_missing_topic_is_unchanged(conn, kafka_broker):
    name = unique("absent")
    created, deleted_check, deleted, again = run_tasks(
        topic_task(conn, name=name, partitions=1),
        topic_task(conn, name=name, state="absent", check_mode=True, diff=True),
        topic_task(conn, name=name, state="absent", diff=True),
        topic_task(conn, name=name, state="absent"),
    ).results
    assert created["changed"]
    assert deleted_check["changed"] is True and deleted_check["diff"]["after"]["state"] == "absent"
    assert deleted["changed"] is True
    assert deleted["diff"]["before"]["state"] == "present" and deleted["diff"]["after"]["state"] == "absent"
    assert deleted["topic"]["actions"] == ["delete"]
    assert again["changed"] is False
    assert wait_absent(kafka_broker.bootstrap, name)


def test_list_form_batches_several_topics(conn, kafka_broker):
    base = unique("list")
    doomed = f"{base}.old"
    args = dict(partitions=2, configs={"retention.ms": 7200000}, topics=[
        {"name": f"{base}.a"},
        {"name": f"{base}.b", "partitions": 4},
        {"name": f"{base}.c", "configs": {"cleanup.policy": "compact"}},
        {"name": doomed, "state": "absent"},
    ])
    setup = run_module("kafka_topic", {**conn, "name": doomed, "partitions": 1})
    assert setup["changed"]
    first, second = run_tasks(topic_task(conn, **args, diff=True), topic_task(conn, **args)).results

    assert first["changed"] is True, first
    by_name = {t["name"]: t for t in first["topics"]}
    assert [t["name"] for t in first["topics"]] == [f"{base}.a", f"{base}.b", f"{base}.c", doomed]
    assert by_name[f"{base}.a"]["partitions"] == 2 and by_name[f"{base}.b"]["partitions"] == 4
    assert by_name[f"{base}.c"]["configs"] == {"retention.ms": "7200000", "cleanup.policy": "compact"}
    assert by_name[doomed]["actions"] == ["delete"]
    assert set(first["diff"]["before"]) == set(by_name)
    assert first["diff"]["before"][f"{base}.a"]["state"] == "absent"
    assert first["diff"]["after"][doomed]["state"] == "absent"
    assert "topic" not in first

    assert second["changed"] is False, [t for t in second["topics"] if t["changed"]]
    assert partition_count(kafka_broker.bootstrap, f"{base}.b") == 4
    assert topic_overrides(kafka_broker.bootstrap, f"{base}.c") == {"retention.ms": "7200000",
                                                                    "cleanup.policy": "compact"}
    assert wait_absent(kafka_broker.bootstrap, doomed)


def test_list_form_changes_nothing_when_one_topic_is_refused(conn, kafka_broker):
    base = unique("listrefused")
    setup = run_module("kafka_topic", {**conn, "name": f"{base}.big", "partitions": 3})
    assert setup["changed"]
    result = run_module("kafka_topic", {**conn, "topics": [
        {"name": f"{base}.new", "partitions": 1},
        {"name": f"{base}.big", "partitions": 2},
    ]})
    assert result["failed"] is True and result["changed"] is False
    assert "No topic changed" in result["msg"] and f"{base}.big" in result["msg"]
    assert partition_count(kafka_broker.bootstrap, f"{base}.new") is None


def test_a_refused_step_reports_what_the_cluster_did(conn, kafka_broker):
    base = unique("partial")
    setup = run_module("kafka_topic", {**conn, "name": f"{base}.grow", "partitions": 1})
    assert setup["changed"]
    result = run_module("kafka_topic", {**conn, "topics": [
        {"name": f"{base}.new", "partitions": 1},
        # The partitions are added, then the brokers refuse the config value.
        {"name": f"{base}.grow", "partitions": 2, "configs": {"cleanup.policy": "bogus"}},
    ]}, diff=True)
    assert result["failed"] is True and result["changed"] is True
    assert f"topic '{base}.grow': change configs:" in result["msg"]
    new, grown = result["topics"]
    assert new["actions"] == ["create"] and new["changed"] is True
    assert grown["changed"] is True and grown["partitions"] == 2 and grown["configs"] == {}
    assert result["diff"]["after"][f"{base}.grow"]["partitions"] == 2
    assert partition_count(kafka_broker.bootstrap, f"{base}.grow") == 2
    assert partition_count(kafka_broker.bootstrap, f"{base}.new") == 1


def test_unreachable_bootstrap_fails_clearly_and_fast():
    # Fast: well within a request timeout of 60 s, which a module that waited for an answer would take in full. The
    # margin is wide because the time includes the module's own start, 16 s on a loaded 2-core machine.
    started = time.monotonic()
    result = run_module("kafka_topic", {"bootstrap_servers": ["127.0.0.1:1"], "name": "never", "partitions": 1,
                                        "request_timeout": 60})
    elapsed = time.monotonic() - started
    assert result["failed"] is True
    assert "Kafka at 127.0.0.1:1 is not reachable" in result["msg"]
    assert "Connection refused" in result["msg"]
    assert "module_stderr" not in result and "Traceback" not in result.get("exception", "")
    assert elapsed < 30, elapsed


def test_wrong_password_fails_at_once_without_showing_it(kafka_broker):
    # At once: well within a request timeout of 60 s (a task that retried would take all of it). The margin is wide
    # because the run's own start counts too: 11.5 s once beside the suite on the 2 cores, against an older limit of 8.
    started = time.monotonic()
    result = run_module("kafka_topic", {
        "bootstrap_servers": [kafka_broker.sasl_bootstrap], "security_protocol": "SASL_PLAINTEXT",
        "sasl_username": SASL_USERNAME, "sasl_password": "not-the-password", "name": "never", "partitions": 1,
        "request_timeout": 60,
    })
    elapsed = time.monotonic() - started
    assert result["failed"] is True
    assert "refused the connection" in result["msg"] and "Authentication failed" in result["msg"], result["msg"]
    assert "not-the-password" not in str(result)
    assert elapsed < 30, elapsed


def test_right_credentials_are_accepted_over_sasl(kafka_broker):
    name = f"sasl-{uuid.uuid4().hex[:6]}"
    result = run_module("kafka_topic", {
        "bootstrap_servers": [kafka_broker.sasl_bootstrap], "security_protocol": "SASL_PLAINTEXT",
        "sasl_username": SASL_USERNAME, "sasl_password": SASL_PASSWORD, "name": name, "partitions": 1,
    })
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert SASL_PASSWORD not in json.dumps(result)


def test_plaintext_client_against_the_sasl_listener_does_not_hang(kafka_broker):
    # A client that skips SASL gets no answer from a SASL listener: it must fail in its timeout (4 s), not hang. The
    # bound allows for the module's own start, which took 22 s in all on a loaded 2-core machine.
    started = time.monotonic()
    result = run_module("kafka_topic", {"bootstrap_servers": [kafka_broker.sasl_bootstrap], "name": "never",
                                        "partitions": 1, "request_timeout": 4})
    elapsed = time.monotonic() - started
    assert result["failed"] is True
    assert elapsed < 40, elapsed


def test_invalid_requests_fail_before_asking_the_cluster():
    result = run_module("kafka_topic", {"bootstrap_servers": ["127.0.0.1:1"], "topics": [
        {"name": "ok.topic"}, {"name": "bad name!"}, {"name": "ok.topic"}, {"name": "zero", "partitions": 0}]})
    assert result["failed"] is True
    assert "'bad name!' is not a valid topic name" in result["msg"]
    assert "'ok.topic' is listed more than once" in result["msg"]
    assert "partitions must be at least 1" in result["msg"]


# --------------------------------------------------------------------------
