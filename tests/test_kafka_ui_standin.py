"""The Kafka UI stand-in that scripts/kafka-dist builds into the mirror (NOT Kafka UI: the real
kafbat jar cannot be downloaded on these machines). It must verify against its .sha256 (what the
kafka_ui role's get_url checks), rebuild to the same bytes, and behave as the role expects of
Kafka UI: configuration from spring.config.additional-location, /actuator/health, a login form,
and exit 143 on SIGTERM. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import kafka_local
from kafka_local import Mirror

pytestmark = pytest.mark.broker

PASSWORD = 's3cret with spaces & "quotes"'


def standin_jar(mirror: Mirror) -> Path:
    jars = sorted((mirror.root / "kafka-ui" / "standin").glob("kafka-ui-standin-*.jar"))
    assert len(jars) == 1, jars
    return jars[0]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def request(
    url: str, data: dict | None = None, cookie: str = ""
) -> tuple[int, Message, bytes]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(
        url, data=body, headers={"Cookie": cookie} if cookie else {}
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_standin_jar_matches_its_sha256_file_and_says_what_it_is(
    kafka_mirror: Mirror,
) -> None:
    jar = standin_jar(kafka_mirror)
    line = Path(f"{jar}.sha256").read_text()
    assert re.fullmatch(rf"[0-9a-f]{{64}}  {re.escape(jar.name)}\n", line), line
    assert line.split()[0] == sha256_of(jar)
    with zipfile.ZipFile(jar) as archive:
        manifest = archive.read("META-INF/MANIFEST.MF").decode().replace("\r\n ", "")
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 2)}
    assert "NOT Kafka UI" in manifest
    assert "Main-Class: KafkaUiStandin" in manifest


def test_standin_rebuild_is_byte_identical(
    kafka_mirror: Mirror, tmp_path: Path
) -> None:
    copy = tmp_path / "mirror"
    for archive in (kafka_mirror.kafka_archive, kafka_mirror.zookeeper_archive):
        for path in (archive, Path(f"{archive}.sha512")):
            dest = copy / path.relative_to(kafka_mirror.root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    result = kafka_local.run_kafka_dist(
        copy, "--kafka-version", kafka_mirror.kafka_version
    )
    assert re.search(
        r"^kafka-ui-standin \S+: built ", result.stdout, re.M
    ), result.stdout
    rebuilt = copy / standin_jar(kafka_mirror).relative_to(kafka_mirror.root)
    assert sha256_of(rebuilt) == sha256_of(standin_jar(kafka_mirror))
    again = kafka_local.run_kafka_dist(
        copy, "--kafka-version", kafka_mirror.kafka_version
    )
    assert re.search(
        r"^kafka-ui-standin \S+: up to date ", again.stdout, re.M
    ), again.stdout


@pytest.fixture
def standin(kafka_mirror: Mirror, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The stand-in on a free loopback port, configured the way the kafka_ui role writes it."""
    port = kafka_local.free_port()
    config = tmp_path / "application.yml"
    config.write_text(
        "# Ansible managed\n"
        f"server:\n  port: {port}\n\n"
        "kafka:\n  clusters:\n"
        '    - name: "laddr"\n'
        '      bootstrapServers: "10.0.0.11:9092,10.0.0.12:9092"\n'
        "      metrics:\n        type: JMX\n        port: 9101\n\n"
        "auth:\n  type: LOGIN_FORM\n\n"
        f'spring:\n  security:\n    user:\n      name: "admin"\n      password: {json.dumps(PASSWORD)}\n\n'
        "management:\n  endpoint:\n    health:\n      enabled: true\n"
    )
    log = open(tmp_path / "standin.log", "wb")
    proc = subprocess.Popen(
        [
            "java",
            f"-Dspring.config.additional-location={config}",
            "-jar",
            str(standin_jar(kafka_mirror)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://{kafka_local.LOOPBACK}:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            request(f"{base}/actuator/health")
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "standin.log").read_text()
            assert time.monotonic() < deadline, "stand-in did not listen within 30 s"
            time.sleep(0.2)
    yield base, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_standin_serves_health_and_wants_the_configured_login(standin) -> None:  # type: ignore[no-untyped-def]
    base, _ = standin
    status, _, body = request(f"{base}/actuator/health")
    assert (status, json.loads(body)) == (200, {"status": "UP"})

    status, headers, _ = request(f"{base}/")
    assert (status, headers.get("Location")) == (302, "/login")
    status, headers, _ = request(f"{base}/standin/config")
    assert (status, headers.get("Location")) == (302, "/login")

    status, headers, _ = request(
        f"{base}/login", {"username": "admin", "password": "wrong"}
    )
    assert (status, headers.get("Location")) == (302, "/login?error")
    assert "Set-Cookie" not in headers

    status, headers, _ = request(
        f"{base}/login", {"username": "admin", "password": PASSWORD}
    )
    assert (status, headers.get("Location")) == (302, "/")
    cookie = http.cookiejar.split_header_words([headers["Set-Cookie"]])[0][0]
    assert cookie[0] == "SESSION"
    status, _, body = request(f"{base}/standin/config", cookie=f"SESSION={cookie[1]}")
    seen = json.loads(body)
    assert status == 200 and seen["standin"] is True
    assert seen["authType"] == "LOGIN_FORM" and seen["user"] == "admin"
    assert seen["clusters"] == [
        {
            "name": "laddr",
            "bootstrapServers": "10.0.0.11:9092,10.0.0.12:9092",
            "metrics.type": "JMX",
            "metrics.port": "9101",
        }
    ]
    assert PASSWORD not in body.decode()


def test_standin_stops_on_sigterm_with_exit_143(standin) -> None:  # type: ignore[no-untyped-def]
    _, proc = standin
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143


def test_standin_refuses_to_start_without_its_configuration(
    kafka_mirror: Mirror,
) -> None:
    result = subprocess.run(
        ["java", "-jar", str(standin_jar(kafka_mirror))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "spring.config.additional-location" in result.stderr
