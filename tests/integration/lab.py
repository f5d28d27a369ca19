"""The lab as the tests and scripts/bench drive it: scripts/lab and the inventory it writes, a shell on
a host, playbook runs, the addresses and the password the inventory holds, and the Laddr load generator
(laddr_load.py) on the API host.

The layout is scripts/lab's: lab1..lab3, ZooKeeper and Kafka on all three, workers on all three, Kafka UI,
Redis and the API on lab3. Nothing here decides what a failure means: callers check return codes and
fail their own way (pytest.fail in the tests, SystemExit in scripts/bench).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "scripts" / "lab"
INVENTORY = REPO / "inventories" / "lab"
LOAD = REPO / "tests" / "integration" / "laddr_load.py"
HOSTS = ["lab1", "lab2", "lab3"]
API_HOST = "lab3"
# The agents of examples/laddr-project, which the lab's hosts run.
AGENTS = ["analyzer", "coordinator", "researcher", "validator", "writer"]
# Where the load generator lives on the API host, and the Python that runs it (the API's own venv has Laddr).
LOAD_ON_HOST = "/root/laddr_load.py"
LOAD_PYTHON = "/opt/laddr/venv/bin/python"


def lab(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """scripts/lab ARGS (up N, down, reboot HOST...)."""
    return subprocess.run([str(LAB), *args], check=check, capture_output=True, text=True, timeout=timeout)


def ssh(host: str, command: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """COMMAND run by a shell on HOST; its exit status is the caller's to judge."""
    return subprocess.run([str(LAB), "ssh", host, command], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def ansible_env() -> dict:
    """The environment for ansible-playbook: plain output, which the tests read."""
    return dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")


def run_playbook(path: str, *args: str, inventory: Path = INVENTORY, timeout: float = 2400) -> subprocess.CompletedProcess:
    """ansible-playbook PATH (relative to the repository) ARGS. The result also has .seconds (wall time)
    and .window (start and end as epoch seconds, to match against the load generator's answer times)."""
    started, began = time.monotonic(), time.time()
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), path, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=ansible_env())
    proc.seconds = time.monotonic() - started
    proc.window = (began, time.time())
    return proc


def changed(output: str) -> dict[str, int]:
    """Changed count per host from the PLAY RECAP in OUTPUT."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def addresses(inventory: Path = INVENTORY) -> dict[str, str]:
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["hosts"]
    return {name: hosts[name]["ansible_host"] for name in HOSTS}


def bootstrap(inventory: Path = INVENTORY) -> str:
    return ",".join(f"{address}:9092" for address in addresses(inventory).values())


def redis_password(inventory: Path = INVENTORY) -> str:
    return yaml.safe_load((inventory / "group_vars" / "all.yml").read_text())["redis_password"]


def longest_gap(times: list[float], start: float, end: float) -> float:
    """Longest stretch between answers within [START, END], the window's ends included."""
    bounds = [start, *[t for t in times if start <= t <= end], end]
    return round(max(b - a for a, b in zip(bounds, bounds[1:])), 2)


def install_load_generator() -> subprocess.CompletedProcess:
    return ssh(API_HOST, f"cat > {LOAD_ON_HOST}", stdin=LOAD.read_text())


def load_command(out: str, *options: str) -> str:
    """The command line, on the API host, of the load generator sending to the lab's API, watching both
    buses, writing its result to OUT and stopping when OUT.stop appears; OPTIONS set rate, count and the rest
    (see laddr_load.py)."""
    address = addresses()
    return " ".join([
        LOAD_PYTHON, LOAD_ON_HOST, f"--api http://{address[API_HOST]}:8000", "--agents", ",".join(AGENTS),
        f"--redis-url redis://:{redis_password()}@{address[API_HOST]}:6379/0", "--kafka-bootstrap", bootstrap(),
        f"--out {out}", f"--stop-file {out}.stop", *options])


def run_load(out: str, *options: str, unit: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """The load generator on the API host (see load_command), after removing what an earlier run left at OUT.
    With UNIT it runs as that transient systemd unit and this returns at once (stop it with stop_load);
    without, this returns when it has finished (a --count run)."""
    command = load_command(out, *options)
    if unit:
        command = f"systemd-run --unit {unit} --collect {command}"
    return ssh(API_HOST, f"rm -f {out} {out}.stop; {command} > /dev/null", timeout=timeout)


def load_result(out: str, timeout: float) -> dict | None:
    """The load generator's result at OUT on the API host, once written; None if not within TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        found = ssh(API_HOST, f"cat {out}")
        if found.returncode == 0 and found.stdout.strip():
            return json.loads(found.stdout)
        if time.monotonic() > deadline:
            return None
        time.sleep(2)


def stop_load(out: str, timeout: float) -> dict | None:
    """Asks the load generator writing to OUT to stop and returns its result (None if none within TIMEOUT:
    it waits up to its --settle seconds for answers still on their way)."""
    ssh(API_HOST, f"touch {out}.stop")
    return load_result(out, timeout)
