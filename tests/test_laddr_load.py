"""The migration's load generator (tests/integration/laddr_load.py) against a real Laddr on loopback.

The real API (uvicorn) and the example project's agents, each run by the collection's launcher, on a real
Redis or a real Kafka broker, with laddr 0.9.6 from PyPI; the load generator runs with the same venv, as
it does on a lab host. It must report a healthy run as clean, and a broken one the way a user would
notice: tasks accepted by the API and never answered, a stretch where the API refused submissions.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kafka_local  # noqa: E402
from laddr_local import Stack  # noqa: E402

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parent.parent
LOAD = REPO / "tests" / "integration" / "laddr_load.py"
AGENTS = ["writer", "researcher", "analyzer"]
RATE = 10


class Load:
    """laddr_load.py, run as on a lab host; finish() makes the stop file and returns the result."""

    def __init__(self, stack: Stack, redis_url: str, kafka_bootstrap: str, settle: float, extra=("--rate", str(RATE))):
        self.out, self.stop_file, self.log = stack.work / "load.json", stack.work / "stop", stack.work / "load.log"
        self.progress = stack.work / "progress.json"
        self.settle = settle
        argv = [stack.python, str(LOAD), "--api", stack.api_url, "--agents", ",".join(stack.agents),
                *extra, "--redis-url", redis_url, "--kafka-bootstrap", kafka_bootstrap,
                "--out", str(self.out), "--stop-file", str(self.stop_file), "--settle", str(settle),
                "--progress", str(self.progress)]
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def answered(self) -> int:
        return json.loads(self.progress.read_text())["answered"] if self.progress.exists() else 0

    def waited(self, outcome: str) -> int:
        return json.loads(self.progress.read_text())["waited"].get(outcome, 0) if self.progress.exists() else 0

    def wait_for_answers(self, count: int, timeout: float = 60) -> None:
        """Until the load generator reports COUNT tasks answered: a window of load measured by what it got, not by time."""
        deadline = time.monotonic() + timeout
        while self.answered() < count:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{self.answered()} of {count} answers in {timeout} s"
            time.sleep(0.2)

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        self.wait_for_answers(self.answered() + count, timeout)

    def finish(self) -> dict:
        self.stop_file.touch()
        try:
            code = self.process.wait(self.settle + 30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail("the load generator did not stop:\n" + self.log.read_text())
        output = self.log.read_text()
        assert code == 0, output
        # Quiet: one summary line, no noise from a bus that is away.
        assert output.startswith("laddr_load: accepted ") and output.count("\n") == 1, output
        result = json.loads(self.out.read_text())
        # The progress it last reported is what it found in the end.
        assert json.loads(self.progress.read_text())["answered"] == result["answered"], result["answered"]
        return result


@pytest.fixture
def redis_stack(laddr_home, redis_url, redis_cli, tmp_path):
    stack = Stack(str(laddr_home / "venv/bin/python"), tmp_path, AGENTS, QUEUE_BACKEND="redis", REDIS_URL=redis_url)
    try:
        yield stack.start()
    finally:
        stack.stop()


def nowhere() -> str:
    """A loopback address where no Kafka listens: the load generator must wait for it quietly."""
    return f"127.0.0.1:{kafka_local.free_port()}"


WAITED = ("--rate", str(RATE), "--waited-rate", "2")


def assert_waited_calls_answered(result: dict) -> None:
    waited = result["waited"]
    assert waited["calls"] >= 5 and waited["answered"] == waited["calls"], waited
    assert waited["timeout"]["count"] == waited["wrong"]["count"] == 0, waited
    assert waited["refused"]["count"] == waited["failed"]["count"] == 0, waited


def test_load_on_a_healthy_laddr_is_clean(redis_stack, redis_url, figures):
    load = Load(redis_stack, redis_url, nowhere(), settle=15, extra=WAITED)
    load.wait_for_answers(60)  # some 6 s of the load at 10 tasks/s, waited calls among them
    result = load.finish()
    figures.append(("load on healthy Laddr (Redis): accepted, answered, longest gap s",
                    (result["accepted"], result["answered"], result["longest_gap_without_answer_s"])))
    assert result["accepted"] > 20, result
    assert result["lost"]["count"] == 0, result["lost"]
    assert result["wrong"]["count"] == 0, result["wrong"]
    assert result["duplicates"]["count"] == 0, result["duplicates"]
    assert result["answered"] == result["accepted"] == result["answers_by_bus"]["redis"]
    assert result["answers_by_bus"]["kafka"] == 0 and result["kafka_topic_found"] is None
    assert result["unknown_answers"] == 0 and result["refused_attempts"] == 0
    assert_waited_calls_answered(result)


def test_a_burst_of_a_fixed_count_gives_throughput_and_latency(redis_stack, redis_url, figures):
    """The benchmark's mode: a fixed number of tasks, several submissions at once, no rate."""
    load = Load(redis_stack, redis_url, nowhere(), settle=60, extra=("--rate", "0", "--concurrency", "8", "--count", "150"))
    code = load.process.wait(120)  # it stops by itself after the count, once everything is answered
    result = json.loads(load.out.read_text())
    figures.append(("burst of 150 on Laddr (Redis, loopback): tasks/s, latency p50/p99 s",
                    (result["throughput_per_s"], result["latency_s"]["p50"], result["latency_s"]["p99"])))
    assert code == 0
    assert result["accepted"] == result["answered"] == 150, result
    assert result["lost"]["count"] == result["wrong"]["count"] == result["duplicates"]["count"] == 0
    assert 0 <= result["latency_s"]["p50"] <= result["latency_s"]["p99"] <= result["latency_s"]["max"] < 60
    assert result["throughput_per_s"] > 0 and result["concurrency"] == 8


def test_load_reports_the_tasks_of_an_agent_whose_workers_died(redis_stack, redis_url, figures):
    load = Load(redis_stack, redis_url, nowhere(), settle=3, extra=("--rate", str(RATE), "--waited-rate", "2",
                                                                     "--wait-timeout", "2"))
    load.wait_for_answers(20)
    redis_stack.processes["writer"].stop(signal.SIGKILL)
    load.wait_for_more(40)  # the other agents' answers go on; the writer's tasks wait for no one
    deadline = time.monotonic() + 60
    while not load.waited("timeout"):  # and a waited call has met the dead writer
        assert time.monotonic() < deadline, "no waited call timed out within 60 s of the writer's death"
        time.sleep(0.2)
    result = load.finish()
    lost = result["lost"]
    figures.append(("load with the writer's worker killed for 40 answers: accepted, lost", (result["accepted"], lost["count"])))
    assert lost["count"] > 0, result
    assert lost["count"] == len(lost["tasks"]) <= 50
    assert {task["agent"] for task in lost["tasks"]} == {"writer"}, lost
    assert all(task["token"].endswith("-writer") for task in lost["tasks"]), lost
    assert result["answered"] == result["accepted"] - lost["count"]
    assert result["wrong"]["count"] == 0 and result["duplicates"]["count"] == 0, result
    # A waited call to the dead writer times out, and its task is among the lost ones.
    timeouts = result["waited"]["timeout"]["calls"]
    assert timeouts and {call["task_id"] for call in timeouts} <= {task["task_id"] for task in lost["tasks"]}, result["waited"]
    assert result["waited"]["failed"]["count"] == result["waited"]["wrong"]["count"] == 0, result["waited"]
    assert result["waited"]["refused"]["count"] == 0, result["waited"]


def test_load_records_the_stretch_when_the_api_is_down_and_loses_nothing(redis_stack, redis_url, figures):
    load = Load(redis_stack, redis_url, nowhere(), settle=15)
    load.wait_for_answers(20)
    redis_stack.processes["api"].stop()
    time.sleep(3)  # the outage itself, not a measurement: the refusals it causes are what is measured
    redis_stack.start_api()
    load.wait_for_more(20)  # answers again after the API is back
    result = load.finish()
    figures.append(("load with the API down ~3 s: refused attempts, longest refusal s",
                    (result["refused_attempts"], result["longest_refusal_s"])))
    assert result["refused_attempts"] > 0 and result["longest_refusal_s"] >= 2, result
    assert result["lost"]["count"] == 0, result["lost"]
    assert result["wrong"]["count"] == 0 and result["duplicates"]["count"] == 0, result
    assert result["accepted"] > 20, result


@pytest.fixture
def kafka_stack(laddr_home, laddr_fixes, kafka_broker, redis_url, redis_cli, tmp_path):
    laddr_fixes()  # responses carry their task_id only with the collection's fix
    agents = ["researcher", "analyzer"]
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    existing = admin.list_topics(timeout=10).topics
    topics = [f"laddr.tasks.{agent}" for agent in agents] + ["laddr.responses"]
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in topics if name not in existing]).values():
        future.result()
    stack = Stack(str(laddr_home / "venv/bin/python"), tmp_path, agents, QUEUE_BACKEND="kafka",
                  KAFKA_BOOTSTRAP=kafka_broker.bootstrap)
    try:
        yield stack.start()
    finally:
        stack.stop()


def test_load_on_laddr_over_kafka_is_seen_on_kafka(kafka_stack, kafka_broker, redis_url, figures):
    load = Load(kafka_stack, redis_url, kafka_broker.bootstrap, settle=20, extra=WAITED)
    load.wait_for_answers(60)
    result = load.finish()
    figures.append(("load on healthy Laddr (Kafka): accepted, answered, longest gap s",
                    (result["accepted"], result["answered"], result["longest_gap_without_answer_s"])))
    assert result["accepted"] > 20, result
    assert result["lost"]["count"] == 0, result["lost"]
    assert result["wrong"]["count"] == 0 and result["duplicates"]["count"] == 0, result
    assert result["answered"] == result["accepted"] == result["answers_by_bus"]["kafka"], result
    assert result["answers_by_bus"]["redis"] == 0 and result["kafka_topic_found"], result
    assert_waited_calls_answered(result)
