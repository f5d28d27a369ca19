"""Real ZooKeeper and Kafka processes on loopback for tests.

Everything runs from the tarballs that scripts/kafka-dist puts in the artifact
mirror, unpacked into a temporary directory, so a passing test means the
archive we ship to hosts can actually run a broker. Only 127.0.0.1 is used.

Typical use (see tests/conftest.py for the session fixture)::

    mirror = ensure_mirror()
    with running_kafka(mirror, tmp_dir) as broker:
        broker.bootstrap   # "127.0.0.1:PORT"
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_DIST = REPO_ROOT / "scripts" / "kafka-dist"
LOOPBACK = "127.0.0.1"
# The JVMs of these tests compile with the client compiler only: on a machine of 2 shared cores that is a fifth to
# two fifths less CPU for a broker (README, the lab's JVM options), and their code paths are the same.
CLIENT_COMPILER = ("-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1")

# Processes started here and not yet stopped; emptied by stop(). atexit uses it
# so that even an aborted session (Ctrl-C mid-fixture) leaves no JVM behind.
_running: list["JavaProcess"] = []


class LocalClusterError(RuntimeError):
    """A local ZooKeeper/Kafka process did not start or answer in time."""


# --------------------------------------------------------------------------
# The mirror
# --------------------------------------------------------------------------


def default_mirror_dir() -> Path:
    """Where tests keep the mirror.

    LADDR_MIRROR_DIR wins; otherwise the script's own default when we may write
    there (root, CI), so tests share the mirror the playbooks use; otherwise a
    per-checkout cache (a developer without root).
    """
    if os.environ.get("LADDR_MIRROR_DIR"):
        return Path(os.environ["LADDR_MIRROR_DIR"])
    printed = subprocess.run(
        [str(KAFKA_DIST), "--print-dir"], check=True, capture_output=True, text=True
    ).stdout.strip()
    system_dir = Path(printed)
    probe = system_dir
    while not probe.exists():
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return system_dir
    return REPO_ROOT / ".cache" / "kafka-mirror"


@dataclass(frozen=True)
class Mirror:
    root: Path
    kafka_version: str
    kafka_archive: Path
    zookeeper_version: str
    zookeeper_archive: Path

    @property
    def kafka_top(self) -> str:
        return f"kafka_2.13-{self.kafka_version}"

    @property
    def zookeeper_top(self) -> str:
        return f"apache-zookeeper-{self.zookeeper_version}-bin"


def run_kafka_dist(
    mirror_root: Path, *args: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Runs scripts/kafka-dist against mirror_root; raises with its output on failure."""
    env = dict(os.environ, LADDR_MIRROR_DIR=str(mirror_root))
    result = subprocess.run(
        [str(KAFKA_DIST), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise LocalClusterError(
            f"scripts/kafka-dist {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def read_mirror(mirror_root: Path, kafka_version: str | None = None) -> Mirror:
    """Finds the archives of one Kafka version (default: newest) via index.json."""
    index = json.loads((mirror_root / "index.json").read_text())
    kafka_version = kafka_version or index["newest"]["kafka"]
    by_key = {(a["name"], a["version"]): a for a in index["artifacts"]}
    kafka = by_key[("kafka", kafka_version)]
    zk_version = kafka["zookeeper_version"]
    zookeeper = by_key[("zookeeper", zk_version)]
    return Mirror(
        root=mirror_root,
        kafka_version=kafka_version,
        kafka_archive=mirror_root / kafka["path"],
        zookeeper_version=zk_version,
        zookeeper_archive=mirror_root / zookeeper["path"],
    )


def ensure_mirror(mirror_root: Path | None = None) -> Mirror:
    """Builds the mirror if needed (about a second when it is up to date)."""
    mirror_root = mirror_root or default_mirror_dir()
    run_kafka_dist(mirror_root)
    return read_mirror(mirror_root, os.environ.get("KAFKA_VERSION"))


def unpack(archive: Path, dest: Path) -> Path:
    """Unpacks a mirror tarball into dest and returns its single top directory."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tops = {Path(name).parts[0] for name in tar.getnames()}
        if len(tops) != 1:
            raise LocalClusterError(
                f"{archive} has {len(tops)} top-level entries: {sorted(tops)}"
            )
        if hasattr(tarfile, "data_filter"):
            # "data" refuses absolute paths, ".." and device files.
            tar.extractall(dest, filter="data")
        else:
            # Python before 3.11.4 (Debian 12's python3 3.11.2) has no extraction filters: the same refusals here.
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir())
                        and not (member.issym() and not Path(member.linkname).is_absolute()
                                 and ".." not in Path(member.linkname).parts)):
                    raise LocalClusterError(f"{archive}: refusing to unpack {member.name!r}")
            tar.extractall(dest)
    return dest / tops.pop()


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # If the test runner itself is killed (SIGKILL, OOM), the kernel kills the
    # JVM too instead of leaving it holding ports and temp dirs.
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


@dataclass
class JavaProcess:
    name: str
    args: list[str]
    log_path: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> "JavaProcess":
        java = os.environ.get("JAVA", "java")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [java, *self.args],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        _running.append(self)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def fail(self, what: str) -> LocalClusterError:
        state = (
            "running"
            if self.alive()
            else f"exited with {self.proc.returncode if self.proc else '?'}"
        )
        return LocalClusterError(
            f"{self.name} {what} ({state}); last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (lets Kafka do a controlled shutdown), SIGKILL after timeout."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ValueError):
            _running.remove(self)


@atexit.register
def _stop_leftovers() -> None:
    for process in reversed(list(_running)):
        process.stop(timeout=10)


def wait_for_port(process: JavaProcess, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.fail("exited during startup")
        with contextlib.suppress(OSError):
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        time.sleep(0.2)
    raise process.fail(f"did not listen on {LOOPBACK}:{port} in time")


def four_letter_word(port: int, word: str = "srvr", timeout: float = 5) -> str:
    """Sends a ZooKeeper four-letter command and returns the reply."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _write_properties(path: Path, values: dict[str, object]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


# --------------------------------------------------------------------------
# ZooKeeper
# --------------------------------------------------------------------------


@dataclass
class ZooKeeper:
    port: int
    process: JavaProcess

    @property
    def connect(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def start_zookeeper(
    classpath: str,
    work_dir: Path,
    logging_props: list[str],
    heap: str = "256m",
    startup_timeout: float = 60,
) -> ZooKeeper:
    """Standalone ZooKeeper on loopback; returns once it answers 'srvr'."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = _write_properties(
        work_dir / "zoo.cfg",
        {
            "tickTime": 2000,
            "initLimit": 10,
            "syncLimit": 5,
            "dataDir": work_dir / "data",
            "clientPort": port,
            "clientPortAddress": LOOPBACK,
            # The AdminServer would open another (Jetty) port on all interfaces.
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "srvr,ruok,stat,mntr",
            "maxClientCnxns": 0,
        },
    )
    process = JavaProcess(
        name="zookeeper",
        args=[
            "-Xms64m",
            *CLIENT_COMPILER,
            f"-Xmx{heap}",
            "-Djava.awt.headless=true",
            *logging_props,
            "-cp",
            classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(config),
        ],
        log_path=work_dir / "zookeeper.log",
        cwd=work_dir,
    ).start()
    deadline = time.monotonic() + startup_timeout
    try:
        wait_for_port(process, port, deadline)
        while "Zookeeper version" not in _try_srvr(port):
            if time.monotonic() > deadline:
                raise process.fail("did not answer 'srvr' in time")
            if not process.alive():
                raise process.fail("exited during startup")
            time.sleep(0.2)
    except BaseException:
        process.stop(timeout=5)
        raise
    return ZooKeeper(port=port, process=process)


def _try_srvr(port: int) -> str:
    try:
        return four_letter_word(port, "srvr", timeout=2)
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------


# The broker's second listener takes SASL/PLAIN with these credentials, so that refused
# credentials are tested against a broker that really checks them.
SASL_USERNAME = "admin"
SASL_PASSWORD = "admin-secret"
# A second user of that listener who is no super user: what the ACLs grant it is all it may do (the broker runs
# Kafka's AclAuthorizer; the admin and PLAINTEXT's anonymous clients are its super users, and a resource without
# any ACL stays open to all, so tests that set no ACL see a broker as open as before).
SASL_USER = "writer"
SASL_USER_PASSWORD = "writer-secret"


@dataclass
class KafkaBroker:
    bootstrap: str
    sasl_bootstrap: str
    zookeeper: str
    home: Path
    version: str
    work_dir: Path
    log_path: Path
    zookeeper_log_path: Path


def start_kafka(
    home: Path,
    zookeeper_connect: str,
    work_dir: Path,
    heap: str = "512m",
    startup_timeout: float = 120,
    extra_config: dict[str, object] | None = None,
) -> tuple[int, JavaProcess]:
    """One ZooKeeper-mode broker (broker.id 0) on loopback, PLAINTEXT on the returned port and
    SASL_PLAINTEXT (PLAIN, SASL_USERNAME/SASL_PASSWORD) on the next free one; waits until it
    serves metadata."""
    port, sasl_port = free_port(), free_port()
    config = {
        "broker.id": 0,
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},SASL_PLAINTEXT://{LOOPBACK}:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port},SASL_PLAINTEXT://{LOOPBACK}:{sasl_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        # SCRAM users are those that kafka_scram_user's tests create; none exists at the start.
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{SASL_USERNAME}" password="{SASL_PASSWORD}" user_{SASL_USERNAME}="{SASL_PASSWORD}" '
            f'user_{SASL_USER}="{SASL_USER_PASSWORD}";',
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": f"User:ANONYMOUS;User:{SASL_USERNAME}",
        "allow.everyone.if.no.acl.found": "true",
        "zookeeper.connect": zookeeper_connect,
        "zookeeper.connection.timeout.ms": 30000,
        "log.dirs": work_dir / "data",
        "num.partitions": 1,
        "default.replication.factor": 1,
        # Tests create topics on purpose; a typo must fail, not invent a topic.
        "auto.create.topics.enable": "false",
        # A single broker cannot hold the default three replicas of the
        # internal topics; fewer partitions also make the first group join fast.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "group.initial.rebalance.delay.ms": 0,
        "delete.topic.enable": "true",
        **(extra_config or {}),
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    properties = _write_properties(work_dir / "server.properties", config)
    process = JavaProcess(
        name="kafka",
        args=[
            "-Xms128m",
            *CLIENT_COMPILER,
            f"-Xmx{heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{home / 'config' / 'log4j.properties'}",
            "-cp",
            str(home / "libs" / "*"),
            "kafka.Kafka",
            str(properties),
        ],
        log_path=work_dir / "kafka.log",
        cwd=work_dir,
    ).start()
    deadline = time.monotonic() + startup_timeout
    try:
        wait_for_port(process, port, deadline)
        _wait_for_controller(process, f"{LOOPBACK}:{port}", deadline)
    except BaseException:
        process.stop(timeout=10)
        raise
    return port, sasl_port, process


def _wait_for_controller(process: JavaProcess, bootstrap: str, deadline: float) -> None:
    # Listening is not enough: topic creation needs the broker registered in
    # ZooKeeper and a controller elected, which metadata shows.
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.fail("exited during startup")
        try:
            metadata = admin.list_topics(timeout=5)
            if len(metadata.brokers) == 1 and metadata.controller_id >= 0:
                return
        except Exception:  # KafkaException while the broker is still starting
            pass
        time.sleep(0.3)
    raise process.fail("did not report itself and a controller in metadata in time")


@contextlib.contextmanager
def running_kafka(mirror: Mirror, work_dir: Path) -> Iterator[KafkaBroker]:
    """ZooKeeper + one broker from the mirror's Kafka tarball; both stopped on exit.

    ZooKeeper runs from the Kafka tarball's libs (kafka_2.13 ships the
    ZooKeeper server classes), which is how the single-host lab runs it.
    """
    home = unpack(mirror.kafka_archive, work_dir / "dist")
    log4j = [f"-Dlog4j.configuration=file:{home / 'config' / 'log4j.properties'}"]
    zookeeper = start_zookeeper(str(home / "libs" / "*"), work_dir / "zookeeper", log4j)
    kafka_process = None
    try:
        port, sasl_port, kafka_process = start_kafka(home, zookeeper.connect, work_dir / "kafka")
        yield KafkaBroker(
            bootstrap=f"{LOOPBACK}:{port}",
            sasl_bootstrap=f"{LOOPBACK}:{sasl_port}",
            zookeeper=zookeeper.connect,
            home=home,
            version=mirror.kafka_version,
            work_dir=work_dir,
            log_path=kafka_process.log_path,
            zookeeper_log_path=zookeeper.process.log_path,
        )
    finally:
        # Broker first: its controlled shutdown needs ZooKeeper still up.
        if kafka_process is not None:
            kafka_process.stop(timeout=30)
        zookeeper.process.stop(timeout=15)
