"""The shared client in plugins/module_utils/kafka.py: settings it derives, and how it fails."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_tasks import run_module  # noqa: E402

from ansible_collections.laddr.kafka.plugins.module_utils import kafka  # noqa: E402


def params(**overrides):
    base = {name: spec.get("default") for name, spec in kafka.kafka_argument_spec().items()}
    base.update(overrides)
    return base


def test_plaintext_config_has_timeouts_and_no_security_settings():
    conf = kafka.client_config(params(bootstrap_servers=["a:9092", "b:9092"], request_timeout=2.5))
    assert conf["bootstrap.servers"] == "a:9092,b:9092"
    assert conf["security.protocol"] == "PLAINTEXT"
    assert conf["socket.timeout.ms"] == 2500 and conf["socket.connection.setup.timeout.ms"] == 2500
    assert not [key for key in conf if key.startswith(("sasl.", "ssl."))]


def test_sasl_ssl_config_maps_every_option():
    conf = kafka.client_config(params(
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="p",
        ssl_cafile="/ca.pem", ssl_certfile="/c.pem", ssl_keyfile="/k.pem", ssl_keyfile_password="kp",
        ssl_check_hostname=False))
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("u", "p")
    assert conf["ssl.ca.location"] == "/ca.pem"
    assert conf["ssl.certificate.location"] == "/c.pem" and conf["ssl.key.location"] == "/k.pem"
    assert conf["ssl.key.password"] == "kp"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"


def test_secret_options_are_no_log():
    spec = kafka.kafka_argument_spec()
    assert spec["sasl_password"]["no_log"] is True and spec["ssl_keyfile_password"]["no_log"] is True


def test_a_client_that_cannot_be_set_up_is_a_permanent_error(tmp_path):
    with pytest.raises(kafka.KafkaClientError) as raised:
        kafka.KafkaAdmin(params(security_protocol="SSL", ssl_cafile=str(tmp_path / "missing-ca.pem")))
    assert raised.value.permanent
    assert "Cannot set up a Kafka client" in str(raised.value)


@pytest.fixture
def silent_broker():
    """A port that accepts connections and never answers, like a hung broker."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


def test_a_broker_that_never_answers_fails_within_the_request_timeout(silent_broker):
    started = time.monotonic()
    result = run_module("kafka_cluster_info", {"bootstrap_servers": [silent_broker], "request_timeout": 3})
    elapsed = time.monotonic() - started
    assert result["failed"] is True
    # The client drops the silent connection at about the request timeout, so the message may
    # report either the silence or the dropped connection; both name the broker.
    assert re.search(rf"Kafka at {re.escape(silent_broker)} (did not answer within 3s|is not reachable)",
                     result["msg"]), result["msg"]
    assert "module_stderr" not in result
    assert elapsed < 10, elapsed
