"""Runs laddr.kafka modules through ansible-playbook and returns their registered results.

Tests use this instead of calling module functions so that argument parsing,
check mode, diff mode, no_log and the module_utils import all go through
Ansible as they do in a playbook. Several tasks share one ansible-playbook run
(about two seconds of start-up each) and each task's result is returned in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Run:
    results: list[dict]
    seconds: float
    output: str

    def __getitem__(self, index: int) -> dict:
        return self.results[index]


def task(module: str, args: dict, **keywords) -> dict:
    """One task: laddr.kafka.<module> with args, plus task keywords (check_mode, diff, ...)."""
    return {"name": f"{module} {len(args)} args", f"laddr.kafka.{module}": args, **keywords}


def run_tasks(*tasks: dict, timeout: float = 300) -> Run:
    """Runs the tasks in one play on localhost; a failing task does not stop the next."""
    with tempfile.TemporaryDirectory(prefix="laddr-kafka-test-") as tmp:
        out = Path(tmp) / "results.json"
        play_tasks = []
        for index, item in enumerate(tasks):
            play_tasks.append({**item, "register": f"result_{index}", "ignore_errors": True})
        names = ", ".join(f"result_{i}" for i in range(len(tasks)))
        play_tasks.append({
            "name": "Results are saved for the test",
            "ansible.builtin.copy": {"content": "{{ [%s] | to_json }}" % names, "dest": str(out)},
            "check_mode": False,
            "diff": False,
        })
        playbook = Path(tmp) / "play.yml"
        playbook.write_text(json.dumps([{
            "name": "Modules under test",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": play_tasks,
        }]))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0")
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
        started = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook),
             "-e", f"ansible_python_interpreter={sys.executable}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
        )
        seconds = time.monotonic() - started
        output = proc.stdout + proc.stderr
        if not out.exists():
            raise AssertionError(f"ansible-playbook failed ({proc.returncode}):\n{output[-6000:]}")
        return Run(json.loads(out.read_text()), seconds, output)


def run_module(module: str, args: dict, **keywords) -> dict:
    """One task in its own run; returns its result."""
    return run_tasks(task(module, args, **keywords))[0]
