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

pytestmark = pytest.mark.unit


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
    # A client that ignored request_timeout would wait librdkafka's own 30 s or more; the rest is the module's start,
    # which took 5 s on a quiet machine and 8 s with its cores busy (10 s was exceeded once beside the lint tier).
    assert elapsed < 20, elapsed
