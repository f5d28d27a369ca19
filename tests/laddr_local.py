"""Laddr on loopback for tests: the real API (uvicorn) and the example project's agents, each run by the
collection's worker runner, on the bus that environment variables name, with a laddr_home venv of the tests.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import kafka_local

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "examples" / "laddr-project"
LAUNCHER = REPO / "roles" / "laddr" / "files" / "laddr_worker.py"


class Process:
    """A process of the stack, its output in <name>.log under the test's directory."""

    def __init__(self, name: str, argv: list[str], env: dict, work: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, work / f"{name}.log"
        self.process = self.start()

    def start(self) -> subprocess.Popen:
        with open(self.log, "a") as out:
            return subprocess.Popen(self.argv, cwd=PROJECT, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"{self.name}: no {text!r} in {timeout} s:\n{self.output()}"
            time.sleep(0.1)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class RestartableRedis:
    """A redis-server of the test's own on a free loopback port, with an append-only file, restartable."""

    def __init__(self, work: Path):
        self.work, self.port = work, kafka_local.free_port()
        self.url = f"redis://{kafka_local.LOOPBACK}:{self.port}/0"
        self.process = self.start()

    def start(self) -> subprocess.Popen:
        with open(self.work / "redis.log", "ab") as out:
            process = subprocess.Popen(
                [shutil.which("redis-server"), "--bind", kafka_local.LOOPBACK, "--port", str(self.port),
                 "--dir", str(self.work), "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.cli("PING") != "PONG":
            assert process.poll() is None, (self.work / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer PING in 20 s"
            time.sleep(0.1)
        return process

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-u", self.url, *args], capture_output=True, text=True).stdout.strip()

    def restart(self) -> None:
        self.stop()
        self.process = self.start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


class Stack:
    """The Laddr API and one launcher per agent, on the bus that `bus` (environment variables) names."""

    def __init__(self, python: str, work: Path, agents: list[str], **bus: str):
        self.python, self.work, self.agents = python, work, agents
        self.port = kafka_local.free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, Process] = {}
        self.env = {name: value for name, value in os.environ.items()
                    if name not in ("QUEUE_BACKEND", "REDIS_URL", "KAFKA_BOOTSTRAP")}
        self.env.update(bus, LLM_BACKEND="noop", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")

    def run(self, name: str, argv: list[str]) -> Process:
        # A database each: processes writing one SQLite file at once could fail tasks with "database is locked".
        env = dict(self.env, DATABASE_URL=f"sqlite:///{self.work}/{name}.db")
        self.processes[name] = Process(name, argv, env, self.work)
        return self.processes[name]

    def start(self) -> "Stack":
        self.start_api()
        for agent in self.agents:
            self.run(agent, [self.python, str(LAUNCHER), f"{agent}-1"])
        for agent in self.agents:
            self.processes[agent].wait_for(f"worker {agent} serving")
        return self

    def start_api(self, name: str = "api") -> str:
        """Starts an API process (the stack's own one, or another on a port of its own); returns its URL."""
        port = self.port if name == "api" else kafka_local.free_port()
        url = f"http://127.0.0.1:{port}"
        api = self.run(name, [str(Path(self.python).with_name("uvicorn")), "laddr.api.main:app",
                              "--host", "127.0.0.1", "--port", str(port)])
        deadline = time.monotonic() + 60
        while True:
            assert api.process.poll() is None, api.output()
            try:
                urllib.request.urlopen(f"{url}/api/health", timeout=2)
                return url
            except OSError:
                assert time.monotonic() < deadline, "API did not start:\n" + api.output()
                time.sleep(0.3)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def chat(api_url: str, agent: str, answer: str, wait: bool = True, timeout: int = 30) -> dict:
    """One task through GET /api/agents/<agent>/chat whose answer (LLM_BACKEND=noop) is `answer`."""
    body = json.dumps({"message": json.dumps({"type": "finish", "answer": answer}), "wait": wait,
                       "timeout": timeout}).encode()
    request = urllib.request.Request(f"{api_url}/api/agents/{agent}/chat", data=body, method="GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout + 15) as response:
        return json.load(response)


def resolved(api_url: str, task_id: str) -> tuple[int, dict]:
    """GET /api/responses/<task_id>/resolved: the HTTP status and the body."""
    try:
        with urllib.request.urlopen(f"{api_url}/api/responses/{task_id}/resolved", timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
