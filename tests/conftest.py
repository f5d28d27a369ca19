"""Shared pytest fixtures for laddr.kafka tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kafka_local  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def kafka_mirror() -> kafka_local.Mirror:
    """The artifact mirror, built by scripts/kafka-dist if missing or stale."""
    return kafka_local.ensure_mirror()


@pytest.fixture(scope="session")
def kafka_broker(
    kafka_mirror: kafka_local.Mirror, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[kafka_local.KafkaBroker]:
    """A real ZooKeeper-mode Kafka broker on 127.0.0.1, shared by the whole session.

    Yields an object with .bootstrap ("127.0.0.1:PORT"), .zookeeper (connect
    string), .home (the unpacked kafka_2.13-<v> directory) and .version.
    Topics are never auto-created, so each test creates what it uses.
    """
    with kafka_local.running_kafka(
        kafka_mirror, tmp_path_factory.mktemp("kafka")
    ) as broker:
        yield broker


REPO = Path(__file__).resolve().parent.parent
LADDR_CONSTRAINTS = REPO / "roles" / "laddr" / "files" / "constraints-laddr-0.9.6.txt"


def _laddr_package(home: Path) -> Path:
    return next((home / "venv" / "lib").glob("python3*/site-packages/laddr"))


@pytest.fixture(scope="session")
def laddr_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A laddr_home with venv/ holding laddr[kafka] 0.9.6 from PyPI, pinned as the role pins it.

    One install serves the whole session (pip takes about 40 s). A test that depends on whether the
    collection's upstream fixes are in the code asks for laddr_stock or laddr_fixes as well.
    """
    home = tmp_path_factory.mktemp("laddr-home")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    subprocess.run([str(home / "venv/bin/pip"), "install", "-q", "laddr[kafka]==0.9.6", "-c", str(LADDR_CONSTRAINTS)],
                   check=True)
    shutil.copytree(_laddr_package(home), home / "laddr-as-installed")
    return home


@pytest.fixture
def laddr_stock(laddr_home: Path) -> Path:
    """laddr_home with Laddr's code as pip installed it, whatever fixes an earlier test applied."""
    package = _laddr_package(laddr_home)
    shutil.rmtree(package)
    shutil.copytree(laddr_home / "laddr-as-installed", package)
    return laddr_home


@pytest.fixture
def laddr_fixes(laddr_home: Path, tmp_path: Path) -> Callable[[], str]:
    """Applies the collection's patches for Laddr (roles/laddr/files/patches) to laddr_home's venv when
    called, with the laddr role's own tasks/upstream_fixes.yml; returns ansible-playbook's output (the play
    must succeed)."""

    def apply() -> str:
        playbook = tmp_path / "upstream-fixes.yml"
        playbook.write_text(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.include_role:\n        name: laddr.kafka.laddr\n"
            "        tasks_from: upstream_fixes.yml\n"
            f"      vars:\n        laddr_home: {laddr_home}\n"
        )
        proc = subprocess.run(
            [shutil.which("ansible-playbook") or str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
             str(playbook)],
            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc.stdout

    return apply


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((kafka_local.LOOPBACK, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free 127.0.0.1 port for the whole session, without persistence;
    yields "redis://127.0.0.1:PORT/0". Tests share it, so each one empties it first (redis_cli)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: scripts/setup installs it")
    work = tmp_path_factory.mktemp("redis")
    port = kafka_local.free_port()
    log = work / "redis.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [server, "--bind", kafka_local.LOOPBACK, "--port", str(port), "--dir", str(work),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=kafka_local._die_with_parent,
        )
    try:
        deadline = time.monotonic() + 20
        while not _redis_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start:\n" + kafka_local.tail(log))
            time.sleep(0.1)
        yield f"redis://{kafka_local.LOOPBACK}:{port}/0"
    finally:
        process.kill()
        process.wait(10)


@pytest.fixture
def redis_cli(redis_url: str) -> Callable[..., str]:
    """Runs one redis-cli command on the session's Redis and returns its raw output;
    the database is emptied for each test that asks for this."""

    def run(*args: str) -> str:
        return subprocess.run(["redis-cli", "-u", redis_url, *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    run("FLUSHALL")
    return run


TIERS = {
    "unit": "no root, no service, no lab; the whole tier runs in well under a minute (tests/unit: the plugins' pure tests)",
    "lint": "linters and ansible-test on the collection (ansible-test sanity downloads its tools from PyPI)",
    "broker": "real services on loopback, started by the test (Kafka, ZooKeeper, Redis, Laddr from PyPI); no root, no lab",
    "lab": "real hosts of a lab (scripts/lab, root); each test run drives a lab of its own and takes down only that one",
}


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """The tiers are declared here, not in pytest.ini, so that they hold under ansible-test units' own configuration too."""
    for tier, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {meaning}")


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    """Each test is in exactly one tier (pytest.ini): tests/unit are unit, elsewhere its module or itself says which.
    A test with none or two is refused, so that pytest -m unit never runs something heavier by accident."""
    unit_dir = Path(__file__).resolve().parent / "unit"
    wrong = []
    for item in items:
        if unit_dir in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.unit)
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {', '.join(tiers) or 'no tier'}")
    if wrong:
        raise pytest.UsageError("each test needs exactly one tier mark (" + ", ".join(TIERS) + "):\n  " + "\n  ".join(wrong))
    # The longest modules first (scripts/test keeps this order for pytest-xdist: --no-loadscope-reorder).
    order = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(Path(item.path).name, len(order)))


# Modules by their time in a run, longest first (rehearsal of cc88ad2 on a slow machine: the story's fixture 3 715 s,
# the molecule scenarios some 1 340 s, test_kafka_cluster.py some 1 800 s; then lint, the lab, sanity, the loads).
# pytest-xdist gives a worker the next module when fewer than three of its tests wait: the story takes one worker
# from the start, the other runs the molecule scenarios and the cluster tests, and what is left is short modules that
# either worker takes, so neither ends long after the other. By default xdist would order the modules by their count
# of tests, which put the five molecule scenarios, 1 340 s in one module, last of all.
LONGEST_FIRST = ["test_migration.py", "test_molecule.py", "test_kafka_cluster.py", "test_collection.py", "test_lab.py",
                 "test_module_sanity.py", "test_laddr_load.py", "test_module_kafka_topic.py",
                 "test_module_kafka_acl.py", "test_module_kafka_consumer_group_info.py"]

_FIGURES: list = []  # what this process's tests measured
_FIGURES_SENT = [0]
_FIGURES_SEEN: list = []  # what the reports carried: this process's, or every worker's under pytest-xdist


@pytest.fixture(scope="session")
def figures() -> list:
    """Measured figures, as (label, value) pairs, printed at the end of the run."""
    return _FIGURES


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """The figures measured since the last report travel with this one (as user properties), so that they reach the
    process that prints the summary also when the tests ran in workers."""
    outcome = yield
    new = _FIGURES[_FIGURES_SENT[0]:]
    _FIGURES_SENT[0] = len(_FIGURES)
    outcome.get_result().user_properties.extend(("figure", f"{label}: {value}") for label, value in new)


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    _FIGURES_SEEN.extend(text for key, text in report.user_properties if key == "figure")


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _FIGURES_SEEN:
        terminalreporter.section("figures measured in this run")
        for line in _FIGURES_SEEN:
            terminalreporter.write_line(line)
