"""The collection's worker launcher (roles/laddr/files/laddr_worker.py) stops without losing tasks.

A worker is stopped with SIGTERM while it holds a task and three more wait in the queue, on a real
Redis and a real Kafka broker, with laddr 0.9.6 from PyPI. The agent is the test's own: it answers
after a pause, so that the task stays in hand long enough to stop the worker mid-task. Stock Laddr
(WorkerRunner.start) is stopped the same way to show the loss that the launcher exists to prevent.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from laddr_local import RestartableRedis  # noqa: E402

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "roles" / "laddr" / "files" / "laddr_worker.py"
TASK_SECONDS = 3
# The launcher stops after the task in hand and the read under way (1 s): the rest is start-up slack.
STOP_BOUND_S = TASK_SECONDS + 7

SLOW_AGENT = f'''
"""An agent that answers a finish message after {TASK_SECONDS} s, printing the task it takes."""
import asyncio
import json

from laddr.core import Agent, AgentConfig


class SlowAgent(Agent):
    async def handle(self, task: dict) -> dict:
        answer = json.loads(task["message"])["answer"]
        print("slow: handling", answer, flush=True)
        await asyncio.sleep({TASK_SECONDS})
        return {{"status": "success", "result": answer}}


slow = SlowAgent(AgentConfig(name="slow", role="Slow", goal="Answer after a pause"))
'''

# Publishes one finish task per argument with laddr's own bus; prints the task ids in order.
PUBLISH = '''
import asyncio, json, os, sys
from laddr.core.message_bus import KafkaBus, RedisBus

async def main():
    kafka = os.environ.get("QUEUE_BACKEND") == "kafka"
    bus = KafkaBus(os.environ["KAFKA_BOOTSTRAP"]) if kafka else RedisBus(os.environ["REDIS_URL"])
    for answer in sys.argv[1:]:
        print(await bus.publish_task("slow", {"message": json.dumps({"type": "finish", "answer": answer})}))
    if kafka:
        await bus._producer.stop()

asyncio.run(main())
'''

STOCK_WORKER = "import asyncio; from laddr import WorkerRunner; from agents.slow import slow; " \
               "asyncio.run(WorkerRunner(slow).start())"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "__init__.py").write_text("")
    (tmp_path / "agents" / "slow.py").write_text(SLOW_AGENT)
    return tmp_path


def bus_env(project: Path, **bus: str) -> dict:
    env = {name: value for name, value in os.environ.items()
           if name not in ("QUEUE_BACKEND", "REDIS_URL", "KAFKA_BOOTSTRAP")}
    return dict(env, **bus, LLM_BACKEND="noop", DATABASE_URL=f"sqlite:///{project}/laddr.db",
                PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")


def publish(python: str, project: Path, env: dict, answers: list[str]) -> list[str]:
    printed = subprocess.run([python, "-c", PUBLISH, *answers], cwd=project, env=env, check=True,
                             capture_output=True, text=True, timeout=60).stdout
    return printed.split()


class Worker:
    """One worker process of the slow agent, its output in a log file."""

    def __init__(self, argv: list[str], project: Path, env: dict, log: Path):
        self.log = log
        with open(log, "w") as out:
            self.process = subprocess.Popen(argv, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            assert self.process.poll() is None, f"worker exited with {self.process.returncode}:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} x{count} in {timeout} s:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def terminate(self, timeout: float = STOP_BOUND_S) -> tuple[int, float]:
        """SIGTERM, as systemd sends it; returns the exit code and the seconds the worker took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker still running {timeout} s after SIGTERM:\n{self.output()[-3000:]}")
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def launcher(python: str, project: Path, env: dict, log: Path) -> Worker:
    return Worker([python, str(LAUNCHER), "slow-1"], project, env, log)


def redis_answers(redis_cli, task_ids: list[str]) -> dict[str, object]:
    answers = {}
    for task_id in task_ids:
        stored = redis_cli("GET", f"laddr:response:{task_id}")
        if stored:
            answers[task_id] = json.loads(stored)["result"]
    return answers


def redis_queued(redis_cli, task_ids: list[str]) -> list[str]:
    stream = redis_cli("XRANGE", "laddr:tasks:slow", "-", "+")
    return [task_id for task_id in task_ids if task_id in stream]


def wait_until(condition, timeout: float, worker: Worker, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} in {timeout} s:\n{worker.output()[-3000:]}"
        time.sleep(0.2)


def test_launcher_on_redis_finishes_the_task_in_hand_and_leaves_the_queue(
        laddr_home, redis_url, redis_cli, project, figures):
    python = str(laddr_home / "venv/bin/python")
    env = bus_env(project, QUEUE_BACKEND="redis", REDIS_URL=redis_url)
    answers = [f"graceful-{n}" for n in range(1, 5)]
    task_ids = publish(python, project, env, answers)
    first = launcher(python, project, env, project / "first.log")
    second = None
    try:
        first.wait_for("slow: handling graceful-1")
        assert redis_cli("XLEN", "laddr:tasks:slow") == "3"
        code, seconds = first.terminate()
        figures.append(("launcher on Redis: seconds from SIGTERM to exit with a 3 s task in hand",
                        round(seconds, 1)))
        assert code == 0, first.output()[-3000:]
        assert "slow: handling graceful-2" not in first.output()
        assert redis_answers(redis_cli, task_ids) == {task_ids[0]: "graceful-1"}
        assert redis_cli("XLEN", "laddr:tasks:slow") == "3"
        assert redis_queued(redis_cli, task_ids) == task_ids[1:]

        second = launcher(python, project, env, project / "second.log")
        wait_until(lambda: len(redis_answers(redis_cli, task_ids)) == 4, 60, second,
                   "the second launcher did not answer the 3 queued tasks")
        code, _ = second.terminate()
        assert code == 0, second.output()[-3000:]
        assert redis_answers(redis_cli, task_ids) == dict(zip(task_ids, answers))
        assert redis_cli("XLEN", "laddr:tasks:slow") == "0"
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_stock_laddr_on_redis_loses_tasks_on_sigterm(laddr_home, redis_url, redis_cli, project, figures):
    python = str(laddr_home / "venv/bin/python")
    env = bus_env(project, QUEUE_BACKEND="redis", REDIS_URL=redis_url)
    task_ids = publish(python, project, env, [f"stock-{n}" for n in range(1, 5)])
    worker = Worker([python, "-c", STOCK_WORKER], project, env, project / "stock.log")
    try:
        worker.wait_for("slow: handling stock-1")
        code, _ = worker.terminate()
    finally:
        worker.kill()
    answered = redis_answers(redis_cli, task_ids)
    queued = redis_queued(redis_cli, task_ids)
    lost = [task_id for task_id in task_ids if task_id not in answered and task_id not in queued]
    figures.append(("stock Laddr on Redis, SIGTERM with 1 task in hand and 3 queued: exit code, "
                    "answered, still queued, lost", (code, len(answered), len(queued), len(lost))))
    assert len(lost) > 0, (answered, queued, worker.output()[-3000:])


@pytest.fixture
def slow_topics(kafka_broker) -> str:
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    existing = admin.list_topics(timeout=10).topics
    wanted = [NewTopic(name, 1, 1) for name in ("laddr.tasks.slow", "laddr.responses") if name not in existing]
    for future in admin.create_topics(wanted).values():
        future.result()
    return kafka_broker.bootstrap


def kafka_answers(bootstrap: str, task_ids: list[str]) -> dict[str, list]:
    """Every answer on laddr.responses for these tasks: each partition read from its start to its end.

    Other modules leave laddr.responses behind on the session's broker, with more than one partition
    (test_laddr_kafka_fix makes three): every partition is read to the high watermark it had when
    the read began, so that an answer is never missed for a partition that was read first.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"graceful-test-{time.monotonic_ns()}",
                         "enable.auto.commit": False})
    answers: dict[str, list] = {task_id: [] for task_id in task_ids}
    try:
        partitions = consumer.list_topics("laddr.responses", timeout=10).topics["laddr.responses"].partitions
        ends = {}
        for number in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition("laddr.responses", number), timeout=10)
            if high > low:
                ends[number] = high
        consumer.assign([TopicPartition("laddr.responses", number, OFFSET_BEGINNING) for number in ends])
        deadline = time.monotonic() + 30
        while ends:
            assert time.monotonic() < deadline, f"laddr.responses not read to its end in 30 s: {ends}"
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                raise AssertionError(message.error())
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
            response = json.loads(message.value())
            if response.get("task_id") in answers:
                answers[response["task_id"]].append(response["result"])
    finally:
        consumer.close()
    return answers


def test_launcher_on_kafka_finishes_the_task_in_hand_and_the_next_takes_the_rest(
        laddr_home, laddr_fixes, slow_topics, project, figures):
    laddr_fixes()  # responses carry their task_id only with the collection's fix
    python = str(laddr_home / "venv/bin/python")
    env = bus_env(project, QUEUE_BACKEND="kafka", KAFKA_BOOTSTRAP=slow_topics)
    answers = [f"kafka-{n}" for n in range(1, 5)]
    task_ids = publish(python, project, env, answers)
    first = launcher(python, project, env, project / "first.log")
    second = None
    try:
        first.wait_for("slow: handling kafka-1")
        code, seconds = first.terminate()
        figures.append(("launcher on Kafka: seconds from SIGTERM to exit with a 3 s task in hand", round(seconds, 1)))
        assert code == 0, first.output()[-3000:]
        assert "slow: handling kafka-2" not in first.output()
        assert kafka_answers(slow_topics, task_ids)[task_ids[0]] == ["kafka-1"]

        second = launcher(python, project, env, project / "second.log")
        second.wait_for("slow: handling", count=3, timeout=90)
        wait_until(lambda: all(kafka_answers(slow_topics, task_ids).values()), 30, second,
                   "the second launcher did not answer the 3 queued tasks")
        code, _ = second.terminate()
        assert code == 0, second.output()[-3000:]
        assert kafka_answers(slow_topics, task_ids) == {task_id: [answer] for task_id, answer in zip(task_ids, answers)}
    finally:
        first.kill()
        if second is not None:
            second.kill()


def redis_consumer(python: str, project: Path, env: dict, redis_cli, worker: Worker) -> str:
    """The consumer name of the slow agent's only worker. Redis 7.0 lists a consumer once a read has handed
    it an entry, so a first task is answered first."""
    [first] = publish(python, project, env, ["first"])
    wait_until(lambda: redis_answers(redis_cli, [first]), 30, worker, "the worker did not answer a first task")
    listed = redis_cli("XINFO", "CONSUMERS", "laddr:tasks:slow", "slow_workers").splitlines()
    names = [listed[at + 1] for at, line in enumerate(listed[:-1]) if line == "name"]
    assert len(names) == 1, listed
    return names[0]


def test_launcher_on_redis_answers_a_task_whose_read_lost_its_reply_and_stock_laddr_never_does(
        laddr_home, redis_url, redis_cli, project, figures):
    python = str(laddr_home / "venv/bin/python")
    env = bus_env(project, QUEUE_BACKEND="redis", REDIS_URL=redis_url)
    took = {}
    for name, argv in (("stock", [python, "-c", STOCK_WORKER]), ("runner", [python, str(LAUNCHER), "slow-1"])):
        redis_cli("FLUSHALL")
        worker = Worker(argv, project, env, project / f"{name}.log")
        try:
            consumer = redis_consumer(python, project, env, redis_cli, worker)
            os.killpg(worker.process.pid, signal.SIGSTOP)
            wait_until(lambda: not [line for line in redis_cli("CLIENT", "LIST").splitlines()
                                    if "cmd=xreadgroup" in line and re.search(r" flags=\w*b", line)],
                       10, worker, "the stopped worker's read still waits in Redis")
            [task_id] = publish(python, project, env, [f"{name}-lost-read"])
            taken = redis_cli("XREADGROUP", "GROUP", "slow_workers", consumer, "COUNT", "1",
                              "STREAMS", "laddr:tasks:slow", ">")
            assert task_id in taken, taken
            started = time.monotonic()
            os.killpg(worker.process.pid, signal.SIGCONT)
            # The runner reads its pending list every 5 s and takes 3 s for the task: 3 times that is ample.
            deadline = started + 3 * (5 + TASK_SECONDS)
            while task_id not in redis_answers(redis_cli, [task_id]) and time.monotonic() < deadline:
                assert worker.process.poll() is None, worker.output()[-3000:]
                time.sleep(0.2)
            took[name] = round(time.monotonic() - started, 1) if redis_answers(redis_cli, [task_id]) else None
            pending = redis_cli("XPENDING", "laddr:tasks:slow", "slow_workers").splitlines()[0]
            took[f"{name} pending after"] = int(pending)
        finally:
            worker.kill()
    figures.append(("a task whose read lost its reply on Redis: answered after s (stock, runner)",
                    (took["stock"], took["runner"])))
    assert took["stock"] is None and took["stock pending after"] == 1, took
    assert took["runner"] is not None and took["runner pending after"] == 0, took


def test_launcher_on_redis_publishes_the_answer_of_a_task_held_through_an_outage(laddr_home, project, tmp_path):
    """Redis goes away while the worker holds a task and stays away longer than redis-py's own retries
    (about 5 s): the runner keeps the answer and publishes it once Redis is back, and keeps serving."""
    redis = RestartableRedis(tmp_path)
    python = str(laddr_home / "venv/bin/python")
    env = bus_env(project, QUEUE_BACKEND="redis", REDIS_URL=redis.url)
    [task_id] = publish(python, project, env, ["through-an-outage"])
    worker = launcher(python, project, env, project / "outage.log")
    try:
        worker.wait_for("slow: handling through-an-outage")
        redis.stop()
        worker.wait_for(f"task {task_id}: answer not published yet", timeout=TASK_SECONDS + 30)
        redis.process = redis.start()
        wait_until(lambda: redis.cli("GET", f"laddr:response:{task_id}") != "", 60, worker,
                   "the answer was not published after Redis came back")
        assert json.loads(redis.cli("GET", f"laddr:response:{task_id}"))["result"] == "through-an-outage"
        [after] = publish(python, project, env, ["after-the-outage"])
        wait_until(lambda: redis.cli("GET", f"laddr:response:{after}") != "", 60, worker,
                   "the worker did not answer the next task")
        assert worker.process.poll() is None, worker.output()[-3000:]
    finally:
        worker.kill()
        redis.stop()
