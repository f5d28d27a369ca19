"""laddr_worker_info's connection check against real sockets of this process (loopback only), and its assessment."""
from __future__ import annotations

import os
import socket

import pytest

from ansible_collections.laddr.kafka.plugins.modules import laddr_worker_info as module


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def test_a_process_connected_to_the_bus_counts_as_connected(listener):
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    try:
        assert module.is_connected(os.getpid(), {("127.0.0.1", port)})
        assert not module.is_connected(os.getpid(), {("127.0.0.1", port + 1 if port < 65535 else port - 1)})
    finally:
        client.close()


def test_a_process_without_a_connection_is_not_connected(listener):
    port = listener.getsockname()[1]
    assert not module.is_connected(os.getpid(), {("127.0.0.1", port)})


def test_endpoints_must_be_host_and_port():
    assert module.parse_endpoint("127.0.0.1:6379") == ("127.0.0.1", 6379)
    with pytest.raises(ValueError, match="not address:port"):
        module.parse_endpoint("127.0.0.1")


def test_assess_reports_missing_and_unplanned_instances():
    instances = {
        "writer-1": dict(active_state="active", sub_state="running", connected=True),
        "writer-2": dict(active_state="active", sub_state="running", connected=False),
        "analyzer-1": dict(active_state="active", sub_state="running", connected=True),
    }
    not_ready, unexpected = module.assess(instances, ["writer-1", "writer-2", "writer-3"], True)
    assert not_ready == ["writer-2", "writer-3"]
    assert unexpected == ["analyzer-1"]
