"""The artifact mirror built by scripts/kafka-dist, checked the way a host uses it.

Archives must verify against their .sha512 (what Ansible's get_url checks),
look like the Apache binary tarballs, rebuild identically, heal when
corrupted, and actually run ZooKeeper and a Kafka broker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import kafka_local
from kafka_local import Mirror

pytestmark = pytest.mark.broker

SHA512_LINE = re.compile(r"^([0-9a-f]{128})  (\S+)\n$")
KAFKA_39 = re.compile(r"^3\.9\.\d+$")


def sha512_of(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_sha512(archive: Path) -> str:
    """The hash from <archive>.sha512, which must be in sha512sum format for this file."""
    line = Path(f"{archive}.sha512").read_text()
    match = SHA512_LINE.match(line)
    assert match, f"{archive}.sha512 is not '<hex>  <name>': {line!r}"
    assert match.group(2) == archive.name
    return match.group(1)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def slf4j_bindings(archive: Path, lib_dir: str) -> list[str]:
    """Jars under lib_dir that slf4j 1.7 (StaticLoggerBinder) or 2.x (provider) would bind to."""
    found = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not (
                member.isfile()
                and member.name.startswith(lib_dir)
                and member.name.endswith(".jar")
            ):
                continue
            with zipfile.ZipFile(io.BytesIO(tar.extractfile(member).read())) as jar:
                names = set(jar.namelist())
            if (
                "org/slf4j/impl/StaticLoggerBinder.class" in names
                or "META-INF/services/org.slf4j.spi.SLF4JServiceProvider" in names
            ):
                found.append(Path(member.name).name)
    return found


def assert_safe_single_top(entries: dict[str, tarfile.TarInfo], top: str) -> None:
    for name, info in entries.items():
        assert not name.startswith("/"), name
        assert ".." not in Path(name).parts, name
        assert name == top or name.startswith(top + "/"), f"{name} outside {top}/"
        assert info.isfile() or info.isdir(), f"{name} is neither file nor directory"
        # Reproducibility attributes: same bytes whoever builds it, whenever.
        assert (info.uid, info.gid, info.mtime) == (0, 0, 0), name
    assert top in entries


def copy_mirror(mirror: Mirror, dest: Path) -> Mirror:
    """A private copy of the mirror, for tests that damage or delete archives."""
    for archive in (mirror.kafka_archive, mirror.zookeeper_archive):
        relative = archive.relative_to(mirror.root)
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(archive, dest / relative)
        shutil.copy2(f"{archive}.sha512", f"{dest / relative}.sha512")
    shutil.copy2(mirror.root / "index.json", dest / "index.json")
    return kafka_local.read_mirror(dest, mirror.kafka_version)


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


def run_dist(mirror: Mirror) -> subprocess.CompletedProcess[str]:
    return kafka_local.run_kafka_dist(
        mirror.root, "--kafka-version", mirror.kafka_version
    )


# --------------------------------------------------------------------------
# The Kafka tarball
# --------------------------------------------------------------------------


def test_kafka_archive_matches_its_sha512_file(kafka_mirror: Mirror) -> None:
    assert KAFKA_39.match(kafka_mirror.kafka_version)
    assert kafka_mirror.kafka_archive == (
        kafka_mirror.root
        / "kafka"
        / kafka_mirror.kafka_version
        / f"{kafka_mirror.kafka_top}.tgz"
    )
    assert sha512_of(kafka_mirror.kafka_archive) == recorded_sha512(
        kafka_mirror.kafka_archive
    )


def test_kafka_archive_is_shaped_like_the_apache_tarball(kafka_mirror: Mirror) -> None:
    top, version = kafka_mirror.kafka_top, kafka_mirror.kafka_version
    entries = members(kafka_mirror.kafka_archive)
    assert_safe_single_top(entries, top)

    libs = {
        Path(n).name
        for n in entries
        if n.startswith(f"{top}/libs/") and n.endswith(".jar")
    }
    for jar in (
        f"kafka_2.13-{version}.jar",
        f"kafka-clients-{version}.jar",
        f"kafka-tools-{version}.jar",
        f"kafka-server-common-{version}.jar",
        f"zookeeper-{kafka_mirror.zookeeper_version}.jar",
        "slf4j-reload4j-1.7.36.jar",
    ):
        assert jar in libs, f"{jar} missing from libs/ ({len(libs)} jars)"
    assert not any(
        j.startswith("logback-") for j in libs
    ), "logback would be a second slf4j binding"
    for name in (
        "config/log4j.properties",
        "config/tools-log4j.properties",
        "BUILD-INFO",
    ):
        assert f"{top}/{name}" in entries

    with tarfile.open(kafka_mirror.kafka_archive, "r:gz") as tar:
        build_info = tar.extractfile(f"{top}/BUILD-INFO").read().decode()
        log4j = tar.extractfile(f"{top}/config/log4j.properties").read().decode()
    assert "Maven Central" in build_info
    assert f"org.apache.kafka:kafka_2.13:jar:{version}:" in build_info
    assert f"org.apache.kafka:kafka-tools:jar:{version}:" in build_info
    assert f"zookeeper.version: {kafka_mirror.zookeeper_version}" in build_info
    assert "log4j.appender.console=org.apache.log4j.ConsoleAppender" in log4j


def test_kafka_archive_has_exactly_one_slf4j_binding(kafka_mirror: Mirror) -> None:
    bindings = slf4j_bindings(
        kafka_mirror.kafka_archive, f"{kafka_mirror.kafka_top}/libs/"
    )
    assert bindings == ["slf4j-reload4j-1.7.36.jar"]


def test_index_lists_the_archives_with_their_checksums(kafka_mirror: Mirror) -> None:
    index = json.loads((kafka_mirror.root / "index.json").read_text())
    by_name = {(a["name"], a["version"]): a for a in index["artifacts"]}
    kafka = by_name[("kafka", kafka_mirror.kafka_version)]
    zookeeper = by_name[("zookeeper", kafka_mirror.zookeeper_version)]
    assert kafka["zookeeper_version"] == kafka_mirror.zookeeper_version
    for entry in (kafka, zookeeper):
        archive = kafka_mirror.root / entry["path"]
        assert entry["sha512"] == recorded_sha512(archive)
        assert entry["sha512_path"] == f"{entry['path']}.sha512"


# --------------------------------------------------------------------------
# Rebuild behaviour
# --------------------------------------------------------------------------


def test_second_run_is_up_to_date_and_leaves_archives_alone(
    kafka_mirror: Mirror,
) -> None:
    archives = (kafka_mirror.kafka_archive, kafka_mirror.zookeeper_archive)
    before = [(a.stat().st_mtime_ns, a.stat().st_ino, sha512_of(a)) for a in archives]
    started = time.monotonic()
    result = run_dist(kafka_mirror)
    elapsed = time.monotonic() - started
    assert f"kafka {kafka_mirror.kafka_version}: up to date" in result.stdout
    assert f"zookeeper {kafka_mirror.zookeeper_version}: up to date" in result.stdout
    assert result.stdout.rstrip().endswith(f"mirror: {kafka_mirror.root}")
    assert elapsed < 5, f"an up-to-date run took {elapsed:.1f}s"
    after = [(a.stat().st_mtime_ns, a.stat().st_ino, sha512_of(a)) for a in archives]
    assert after == before


def test_rebuild_after_deleting_the_archive_is_byte_identical(
    kafka_mirror: Mirror, tmp_path: Path
) -> None:
    copy = copy_mirror(kafka_mirror, tmp_path / "mirror")
    copy.kafka_archive.unlink()
    result = run_dist(copy)
    assert f"kafka {copy.kafka_version}: built" in result.stdout
    # The ZooKeeper archive was intact and must not have been touched.
    assert f"zookeeper {copy.zookeeper_version}: up to date" in result.stdout
    assert sha512_of(copy.kafka_archive) == sha512_of(kafka_mirror.kafka_archive)
    assert recorded_sha512(copy.kafka_archive) == recorded_sha512(
        kafka_mirror.kafka_archive
    )


def test_corrupted_archive_is_rebuilt(kafka_mirror: Mirror, tmp_path: Path) -> None:
    copy = copy_mirror(kafka_mirror, tmp_path / "mirror")
    with open(copy.kafka_archive, "r+b") as f:
        f.seek(copy.kafka_archive.stat().st_size // 2)
        f.write(b"this is not what Maven Central served")
    assert sha512_of(copy.kafka_archive) != recorded_sha512(copy.kafka_archive)

    result = run_dist(copy)
    assert "does not match its .sha512" in result.stderr
    assert f"kafka {copy.kafka_version}: built" in result.stdout
    assert sha512_of(copy.kafka_archive) == recorded_sha512(copy.kafka_archive)
    assert sha512_of(copy.kafka_archive) == sha512_of(kafka_mirror.kafka_archive)


def test_interrupted_build_leaves_no_partial_archive(
    kafka_mirror: Mirror, tmp_path: Path
) -> None:
    root = tmp_path / "mirror"
    env = dict(os.environ, LADDR_MIRROR_DIR=str(root))
    build = subprocess.Popen(
        [str(kafka_local.KAFKA_DIST), "--kafka-version", kafka_mirror.kafka_version],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # As from a terminal: SIGINT at its default. A test run started in the background
        # (`cmd &` in a script, as CI runners may) inherits SIGINT ignored, a shell cannot
        # trap a signal ignored on entry, and the build then rightly runs to its end: the
        # failure of the clean-clone rehearsals, reproduced with `trap "" INT`.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # The signal lands once Maven runs in Kafka's build directory (its log exists), so
    # mid-build however fast the machine is (Kafka is built first); Ctrl-C in a terminal
    # signals the whole process group the same way. Not at the moment the directory
    # appears: mktemp has just made it and may not have been reaped, and a shell that
    # gets SIGINT while its child exits 0 takes it as handled by the child and goes on
    # (bash's wait-and-cooperative-exit), so the build finished whole: the CI failure.
    deadline = time.monotonic() + 120
    while not any((root / ".tmp").glob("build.*/maven.log")):
        assert build.poll() is None, "the build ended before Maven was seen running"
        assert time.monotonic() < deadline, "Maven did not start within 120 s"
        time.sleep(0.02)
    os.killpg(build.pid, signal.SIGINT)
    build.communicate(timeout=60)
    assert build.returncode != 0
    final = (
        root / "kafka" / kafka_mirror.kafka_version / f"{kafka_mirror.kafka_top}.tgz"
    )
    assert not final.exists()
    assert not any((root / ".tmp").glob("*")), "build directory left behind"


def test_unknown_kafka_version_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(kafka_local.KAFKA_DIST), "--kafka-version", "3.9"],
        env=dict(os.environ, LADDR_MIRROR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "not a release version" in result.stderr


# --------------------------------------------------------------------------
# A broker from the tarball
# --------------------------------------------------------------------------


def test_broker_from_the_tarball_round_trips_100_messages(kafka_broker) -> None:
    topic = "dist-smoke"
    create_topic(kafka_broker.bootstrap, topic)

    delivered: list[int] = []

    def on_delivery(err, msg) -> None:
        assert err is None, err
        delivered.append(msg.offset())

    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "acks": "all"})
    for i in range(100):
        producer.produce(
            topic,
            key=str(i).encode(),
            value=f"message-{i:03d}".encode(),
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0
    assert sorted(delivered) == list(range(100))

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": "dist-smoke-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[str] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(received) < 100 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            received.append(msg.value().decode())
    finally:
        consumer.close()
    assert received == [f"message-{i:03d}" for i in range(100)]


def test_broker_reports_the_kafka_version_of_the_tarball(kafka_broker) -> None:
    assert KAFKA_39.match(kafka_broker.version)
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([resource])[resource].result(30)
    major_minor = ".".join(kafka_broker.version.split(".")[:2])
    assert configs["inter.broker.protocol.version"].value.startswith(f"{major_minor}-")
    log = kafka_broker.log_path.read_text()
    assert f"Kafka version: {kafka_broker.version}" in log
    assert "multiple SLF4J bindings" not in log
    assert "SLF4J: Failed to load class" not in log


def test_perf_tools_in_the_tarball_run_against_the_broker(kafka_broker) -> None:
    topic = "dist-perf"
    create_topic(kafka_broker.bootstrap, topic)
    java = [
        os.environ.get("JAVA", "java"),
        "-Xmx256m",
        f"-Dlog4j.configuration=file:{kafka_broker.home / 'config' / 'tools-log4j.properties'}",
        "-cp",
        str(kafka_broker.home / "libs" / "*"),
    ]
    produced = subprocess.run(
        [
            *java,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic", topic,
            "--num-records", "2000",
            "--record-size", "100",
            "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={kafka_broker.bootstrap}", "acks=all",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    assert "2000 records sent" in produced.stdout

    consumed = subprocess.run(
        [
            *java,
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server", kafka_broker.bootstrap,
            "--topic", topic,
            "--messages", "2000",
            "--timeout", "60000",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    # Header line, then one CSV line whose 5th column (data.consumed.in.nMsg) is the count.
    data = consumed.stdout.strip().splitlines()[-1].split(", ")
    assert int(data[4]) >= 2000, consumed.stdout


# --------------------------------------------------------------------------
# The ZooKeeper tarball
# --------------------------------------------------------------------------


def test_zookeeper_archive_verifies_and_is_shaped_like_apache(
    kafka_mirror: Mirror,
) -> None:
    archive, top = kafka_mirror.zookeeper_archive, kafka_mirror.zookeeper_top
    version = kafka_mirror.zookeeper_version
    assert (
        archive
        == kafka_mirror.root / "zookeeper" / f"zookeeper-{version}" / f"{top}.tar.gz"
    )
    assert sha512_of(archive) == recorded_sha512(archive)
    entries = members(archive)
    assert_safe_single_top(entries, top)
    assert f"{top}/lib/zookeeper-{version}.jar" in entries
    assert f"{top}/lib/zookeeper-jute-{version}.jar" in entries
    assert f"{top}/conf/logback.xml" in entries
    assert f"{top}/BUILD-INFO" in entries
    assert slf4j_bindings(archive, f"{top}/lib/") == [
        next(
            Path(n).name for n in entries if Path(n).name.startswith("logback-classic-")
        )
    ]


def test_zookeeper_from_its_tarball_answers_srvr(
    kafka_mirror: Mirror, tmp_path: Path
) -> None:
    home = kafka_local.unpack(kafka_mirror.zookeeper_archive, tmp_path / "dist")
    zookeeper = kafka_local.start_zookeeper(
        str(home / "lib" / "*"),
        tmp_path / "zk",
        [f"-Dlogback.configurationFile={home / 'conf' / 'logback.xml'}"],
    )
    try:
        reply = kafka_local.four_letter_word(zookeeper.port, "srvr")
        assert reply.startswith(
            f"Zookeeper version: {kafka_mirror.zookeeper_version}-"
        ), reply
        assert "Mode: standalone" in reply
        # Commands outside the whitelist must stay disabled.
        assert (
            "is not executed because it is not in the whitelist"
            in kafka_local.four_letter_word(zookeeper.port, "envi")
        )
    finally:
        zookeeper.process.stop(timeout=15)
    assert zookeeper.process.proc.returncode in (0, 143, -signal.SIGTERM)
    log = zookeeper.process.log_path.read_text()
    # Our logback pattern, not logback's default (which has no comma millis).
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO  \[\w+\] ", log, re.M
    ), log[:2000]
    assert "multiple SLF4J bindings" not in log


@pytest.mark.parametrize("tool", ["mvn", "sha512sum"])
def test_missing_tool_is_named_with_the_debian_install_command(
    tool: str, tmp_path: Path
) -> None:
    # A PATH with every usual command except the one under test.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in Path(directory).iterdir():
            if entry.name != tool and not os.path.lexists(bin_dir / entry.name):
                (bin_dir / entry.name).symlink_to(entry)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(kafka_local.KAFKA_DIST)],
        env=dict(
            os.environ, PATH=str(bin_dir), LADDR_MIRROR_DIR=str(tmp_path / "mirror")
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"'{tool}' is not installed" in result.stderr
    assert "apt-get install -y maven openjdk-17-jdk-headless" in result.stderr
