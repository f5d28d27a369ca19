"""The shared client in plugins/module_utils/kafka.py: the settings it derives from the options, and a setup that
cannot work."""

from __future__ import annotations

import pytest

from ansible_collections.laddr.kafka.plugins.module_utils import kafka


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
