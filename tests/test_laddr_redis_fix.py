"""Laddr 0.9.6 on Redis, stock and with the collection's patches: a waited call while Redis restarts.

A caller asks the real API (uvicorn) for an answer with wait true; the task is accepted and waits in
the writer's stream; Redis restarts (appendonly, so the task is still there, as with any persistent
Redis); then the writer's worker (the collection's runner) starts and answers. Stock 0.9.6's
RedisBus.wait_for_response has no handling of a lost connection: the caller gets HTTP 500 the moment
Redis goes away, although its task is answered a moment later. With patch 0004 the call waits through
the restart and gets its answer.
"""
from __future__ import annotations

import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from laddr_local import LAUNCHER, RestartableRedis, Stack, chat  # noqa: E402

pytestmark = pytest.mark.broker


def waited_call_through_a_redis_restart(python: str, work: Path) -> tuple[object, str, Path]:
    """One waited call to the writer, Redis restarted while it waits, then the writer's worker started.
    Returns what the caller got (the reply, or the HTTP status of an error), the worker's log, and work."""
    work.mkdir()
    redis = RestartableRedis(work)
    stack = Stack(python, work, ["writer"], QUEUE_BACKEND="redis", REDIS_URL=redis.url)
    got: dict = {}

    def call() -> None:
        try:
            got["reply"] = chat(stack.api_url, "writer", "through-the-restart", timeout=40)
        except urllib.error.HTTPError as error:
            got["reply"] = error.code

    caller = threading.Thread(target=call)
    try:
        stack.start_api()
        caller.start()
        deadline = time.monotonic() + 20
        while redis.cli("XLEN", "laddr:tasks:writer") != "1":
            assert time.monotonic() < deadline, "the waited call's task was not accepted in 20 s"
            time.sleep(0.1)
        time.sleep(1.5)  # the call is past its first look at the answer's key, subscribed and waiting
        redis.restart()
        assert redis.cli("XLEN", "laddr:tasks:writer") == "1", "the task did not survive the restart"
        worker = stack.run("writer", [python, str(LAUNCHER), "writer-1"])
        worker.wait_for("worker writer serving")
        caller.join(60)
        assert not caller.is_alive(), "the waited call did not end within its timeout"
        worker.wait_for(" answered in ")
        return got["reply"], worker.output(), work
    finally:
        stack.stop()
        redis.stop()
        caller.join(5)


def test_waited_call_fails_on_stock_laddr_when_redis_restarts_and_is_answered_with_the_fix(
        laddr_stock, laddr_fixes, tmp_path, figures):
    python = str(laddr_stock / "venv" / "bin" / "python")
    stock, stock_worker, _ = waited_call_through_a_redis_restart(python, tmp_path / "stock")
    # Stock: the caller is told the call failed, yet the task was accepted and the worker answered it.
    assert stock == 500, stock
    assert "answered in" in stock_worker, stock_worker

    laddr_fixes()
    fixed, _, _ = waited_call_through_a_redis_restart(python, tmp_path / "fixed")
    figures.append(("waited call through a Redis restart: stock / patched HTTP status",
                    (stock, 200 if isinstance(fixed, dict) else fixed)))
    assert isinstance(fixed, dict), f"the patched API answered HTTP {fixed}"
    assert fixed["status"] == "completed" and fixed["response"]["result"] == "through-the-restart", fixed
