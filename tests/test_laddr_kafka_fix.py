"""Laddr 0.9.6 on Kafka, stock and with the collection's fix, on a real loopback broker.

Stock laddr 0.9.6 workers publish Kafka responses without the task_id that the API's wait matches on,
so every API call that waits times out. The roles fix it with tasks/upstream_fixes.yml of the
laddr role; this test runs that task file on a real laddr install and shows the call answered
afterwards, with a real worker (the example project's writer) and the real API (uvicorn).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kafka_local  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "examples" / "laddr-project"


@pytest.fixture(scope="module")
def topics(kafka_broker) -> str:
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    wanted = [NewTopic(name, 1, 1) for name in ("laddr.tasks.writer", "laddr.responses")]
    existing = admin.list_topics(timeout=10).topics
    for future in admin.create_topics([t for t in wanted if t.topic not in existing]).values():
        future.result()
    return kafka_broker.bootstrap


def start(argv, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def chat(port: int, answer: str, timeout: int) -> dict:
    body = json.dumps({"message": json.dumps({"type": "finish", "answer": answer}), "wait": True,
                       "timeout": timeout}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/agents/writer/chat", data=body, method="GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout + 15) as response:
        return json.load(response)


def wait_for_api(port: int, api: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert api.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("API did not start:\n" + log.read_text()[-3000:])


def test_api_wait_times_out_on_stock_laddr_and_answers_with_the_fix(laddr_stock, laddr_fixes, topics, tmp_path):
    laddr_home = laddr_stock
    env = dict(os.environ, QUEUE_BACKEND="kafka", KAFKA_BOOTSTRAP=topics, LLM_BACKEND="noop",
               DATABASE_URL=f"sqlite:///{tmp_path}/laddr.db", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("REDIS_URL", None)
    python = str(laddr_home / "venv/bin/python")
    port = kafka_local.free_port()
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    api = start([python, "-m", "uvicorn", "laddr.api.main:app", "--host", "127.0.0.1", "--port", str(port)],
                env, api_log)
    worker = start([python, "-m", "agents.writer"], env, worker_log)
    try:
        wait_for_api(port, api, api_log)
        stock = chat(port, "stock-answer", timeout=12)
        assert stock["status"] == "timeout", stock
        assert "Received 1 task" in worker_log.read_text(), \
            "the worker never took the task, so the timeout proves nothing:\n" + worker_log.read_text()[-3000:]

        first = laddr_fixes()
        assert "changed=1" in first, first[-3000:]
        again = laddr_fixes()
        assert "changed=0" in again, again[-3000:]

        stop(worker)  # the worker publishes responses: it must run the fixed code
        worker = start([python, "-m", "agents.writer"], env, worker_log)
        fixed = chat(port, "fixed-answer", timeout=30)
        assert fixed["status"] == "completed", fixed
        assert fixed["response"]["result"] == "fixed-answer"
        assert fixed["response"]["task_id"] == fixed["task_id"]
    finally:
        stop(worker)
        stop(api)
