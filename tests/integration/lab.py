"""The lab as the tests and scripts/bench drive it: scripts/lab and the inventory it writes, a shell on
a host, playbook runs, the addresses and the password the inventory holds, and the Laddr load generator
(laddr_load.py) on the API host.

The layout is scripts/lab's: lab1..lab3, ZooKeeper and Kafka on all three, workers on all three, Kafka UI,
Redis and the API on lab3. Nothing here decides what a failure means: callers check return codes and
fail their own way (pytest.fail in the tests, SystemExit in scripts/bench).

Each process that imports this drives a lab of its own (ENV: its bridge, subnet, state and inventory), so that a
test run never takes down the lab of a developer, of the demo, or of another run on the machine: a free slot
1..8 is held (a lock) for the process's life, and the lab that the process brought up is taken down when it
exits. LAB_BRIDGE set in the environment means the caller chose a lab: then its LAB_* settings are used as given.
"""
from __future__ import annotations

import atexit
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "scripts" / "lab"
LOAD = REPO / "tests" / "integration" / "laddr_load.py"
SLOTS = range(1, 9)
# Without root no lab can run, but importing this module still holds a slot: then in a directory of the user's own,
# so that one user's test run never finds the directory of another's.
SLOT_LOCKS = Path("/run/laddr-lab-runs") if os.geteuid() == 0 else Path(tempfile.gettempdir()) / f"laddr-lab-runs-{os.geteuid()}"


def _own_lab() -> tuple[dict, Path]:
    """The LAB_* settings of this process's lab, and its inventory directory (the hosts.yml scripts/lab writes there,
    beside links to inventories/lab's group and host variables)."""
    if os.environ.get("LAB_BRIDGE"):
        hosts_yml = Path(os.environ.get("LAB_INVENTORY", REPO / "inventories" / "lab" / "hosts.yml"))
        return {}, hosts_yml.parent
    SLOT_LOCKS.mkdir(parents=True, exist_ok=True)
    for slot in SLOTS:
        lock = open(SLOT_LOCKS / f"{slot}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _own_lab.lock = lock  # held until this process ends
        inventory = Path(tempfile.mkdtemp(prefix=f"laddr-lab-run{slot}-")) / "inventory"
        inventory.mkdir()
        for part in ("group_vars", "host_vars"):
            (inventory / part).symlink_to(REPO / "inventories" / "lab" / part)
        return {"LAB_BRIDGE": f"lrun{slot}", "LAB_SUBNET": f"10.79.{slot}.0/24",
                "LAB_STATE_DIR": f"/var/lib/laddr-lab-runs/{slot}", "LAB_INVENTORY": str(inventory / "hosts.yml")}, inventory
    raise RuntimeError(f"every lab slot ({SLOTS.start}..{SLOTS.stop - 1}) is held by another run ({SLOT_LOCKS}); wait for one")


ENV, INVENTORY = _own_lab()
# The lab's artifact mirror, on its gateway (scripts/lab's defaults where ENV leaves them).
_SUBNET = ipaddress.ip_network(ENV.get("LAB_SUBNET") or os.environ.get("LAB_SUBNET", "10.77.0.0/24"))
MIRROR_URL = f"http://{_SUBNET[1]}:{os.environ.get('LAB_MIRROR_PORT', '8099')}"
LOAD = REPO / "tests" / "integration" / "laddr_load.py"
HOSTS = ["lab1", "lab2", "lab3"]
API_HOST = "lab3"
# The agents of examples/laddr-project, which the lab's hosts run.
AGENTS = ["analyzer", "coordinator", "researcher", "validator", "writer"]
# Where the load generator lives on the API host, and the Python that runs it (the API's own venv has Laddr).
LOAD_ON_HOST = "/root/laddr_load.py"
LOAD_PYTHON = "/opt/laddr/venv/bin/python"


def lab_env(**more: str) -> dict:
    """The environment in which scripts/lab (and molecule, whose create and destroy run it) drive this process's lab."""
    return dict(os.environ, **ENV, **more)


def lab(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """scripts/lab ARGS (up N, down, reboot HOST...) on this process's lab. Hosts boot with PyPI closed
    (LAB_PYPI=closed): the lab inventory installs Python packages from the mirror's wheels, as a site without PyPI does."""
    if args[:1] == ("up",):
        _brought_up.append(True)
    return subprocess.run([str(LAB), *args], check=check, capture_output=True, text=True, timeout=timeout,
                          env=lab_env(LAB_PYPI="closed"))


_brought_up: list = []


def _terminated(signum, frame):  # type: ignore[no-untyped-def]
    raise SystemExit(128 + signum)  # so that a run stopped by SIGTERM (a CI timeout) still takes its lab down at exit


if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _terminated)


@atexit.register
def _down_at_exit() -> None:
    """What this process brought up goes when it ends, even after a failure that skipped a test's own teardown."""
    if _brought_up and ENV:
        subprocess.run([str(LAB), "down"], capture_output=True, text=True, timeout=300, env=lab_env())
    if ENV:
        shutil.rmtree(INVENTORY.parent, ignore_errors=True)


def ssh(host: str, command: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """COMMAND run by a shell on HOST; its exit status is the caller's to judge."""
    return subprocess.run([str(LAB), "ssh", host, command], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=lab_env())


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
