"""The laddr_api role's round trip (roles/laddr_api/files/laddr_api_probe.py) against the real Laddr API on Redis.

The script is what probe.yml runs on the API host, by migrate.yml's cutover and by verify.yml: /api/health, then
one task to every agent at once. An agent whose worker runs answers; one without a worker is reported as not
answered, with what the API said, once the time limit is spent; an API that does not listen is reported as such.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kafka_local  # noqa: E402
from laddr_local import LAUNCHER, REPO, Stack  # noqa: E402

pytestmark = pytest.mark.broker

PROBE = REPO / "roles" / "laddr_api" / "files" / "laddr_api_probe.py"


def probe(python: str, url: str, agents: list[str], expect: str, limit: int) -> tuple[dict, float]:
    """Runs the script as probe.yml does (-c, the spec on stdin); returns its report and its seconds."""
    spec = {"url": url, "headers": {}, "agents": agents, "expect": expect, "timeout": 3, "health_timeout": limit,
            "message": json.dumps({"type": "finish", "answer": expect})}
    started = time.monotonic()
    proc = subprocess.run([python, "-c", PROBE.read_text()], input=json.dumps(spec), capture_output=True, text=True,
                          timeout=limit + 60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), time.monotonic() - started


def test_agents_with_a_worker_answer_and_one_without_is_named(laddr_home: Path, redis_url: str, redis_cli,
                                                              tmp_path: Path) -> None:
    redis_cli("FLUSHALL")
    python = str(laddr_home / "venv/bin/python")
    stack = Stack(python, tmp_path, ["writer"], QUEUE_BACKEND="redis", REDIS_URL=redis_url)
    try:
        stack.start_api()
        stack.run("writer", [python, str(LAUNCHER), "writer-1"]).wait_for("worker writer serving")
        report, seconds = probe(python, stack.api_url, ["writer", "researcher"], "probe-answer-1", 8)
    finally:
        stack.stop()
    assert report["health"] == 200, report
    assert report["agents"]["writer"]["answered"], report
    assert report["agents"]["writer"]["attempts"] == 1, report
    researcher = report["agents"]["researcher"]
    assert not researcher["answered"] and researcher["last"]["status"] == 200, report
    assert researcher["last"]["task_status"] != "completed", report
    # Both at once: the unanswered agent's limit, not the sum of the two.
    assert seconds < 8 + 3 + 10 + 5, seconds


def test_an_api_that_does_not_listen_is_reported_after_the_limit(laddr_home: Path) -> None:
    url = f"http://{kafka_local.LOOPBACK}:{kafka_local.free_port()}"
    report, seconds = probe(str(laddr_home / "venv/bin/python"), url, ["writer"], "x", 3)
    assert report == {"health": 0, "agents": {}}, report
    assert 3 <= seconds < 30, seconds
